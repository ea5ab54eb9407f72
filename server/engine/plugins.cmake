# Owned by the plugins component: PR curves, hparams, custom scalars, graphs.
# hparams.proto uses google.protobuf.Value/ListValue, which libprotobuf ships.
tblog_engine_component(tblog_engine_plugins
  pr_curve_summary.cc
  hparams_summary.cc
  custom_scalars_summary.cc
  graph_summary.cc
)
target_link_libraries(tblog_engine_plugins PUBLIC tblog_engine_io protobuf::libprotobuf)
