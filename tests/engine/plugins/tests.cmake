# Tests of the plugins component (PR curves, hparams, custom scalars, graphs),
# each against TensorBoard's or PyTorch's own files in TBLOG_GOLDEN_DIR.
tblog_add_test(pr_curve_summary_test SOURCES engine/plugins/pr_curve_summary_test.cc LIBS tblog_engine_plugins)
tblog_add_test(hparams_summary_test SOURCES engine/plugins/hparams_summary_test.cc LIBS tblog_engine_plugins)
tblog_add_test(custom_scalars_summary_test SOURCES engine/plugins/custom_scalars_summary_test.cc
  LIBS tblog_engine_plugins)
tblog_add_test(graph_summary_test SOURCES engine/plugins/graph_summary_test.cc LIBS tblog_engine_plugins)
tblog_add_test(mesh_summary_test SOURCES engine/plugins/mesh_summary_test.cc LIBS tblog_engine_plugins)
