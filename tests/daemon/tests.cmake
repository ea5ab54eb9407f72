# Tests of the daemon (server/daemon), one file per unit. The converter's and
# names' tests link only tblog_daemon_convert, not the gRPC side.
tblog_add_test(names_test SOURCES daemon/names_test.cc LIBS tblog_daemon_convert)
# record_converter_test covers the dispatch and the golden files, one
# convert_<kind>_test per unit under server/daemon/convert/.
foreach(unit record_converter convert_scalars convert_histogram convert_image convert_text_audio
    convert_pr_curve convert_hparams convert_graph_embedding convert_charge)
  tblog_add_test(${unit}_test SOURCES daemon/${unit}_test.cc LIBS tblog_daemon_convert)
endforeach()
foreach(unit worker_pool byte_budget checkpoint run run_registry service config metrics)
  tblog_add_test(${unit}_test SOURCES daemon/${unit}_test.cc LIBS tblog_daemon)
endforeach()
# The in-flight budget against a real tblogd: parked unary calls, no loss, a
# batch larger than the budget (README, "Memory").
tblog_add_test(budget_e2e_test SOURCES daemon/budget_e2e_test.cc
  LIBS tblog_engine tblog_api_proto tblog_daemon_process gRPC::grpc++)
