# Tests of the plugins component (PR curves, hparams, custom scalars, graphs),
# each against TensorBoard's or PyTorch's own files in TBLOG_GOLDEN_DIR.
tblog_add_test(pr_curve_summary_test SOURCES engine/pr_curve_summary_test.cc LIBS tblog_engine_plugins)
tblog_add_test(hparams_summary_test SOURCES engine/hparams_summary_test.cc LIBS tblog_engine_plugins)
tblog_add_test(custom_scalars_summary_test SOURCES engine/custom_scalars_summary_test.cc
  LIBS tblog_engine_plugins)
tblog_add_test(graph_summary_test SOURCES engine/graph_summary_test.cc LIBS tblog_engine_plugins)
