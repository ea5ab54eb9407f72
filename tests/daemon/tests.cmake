# Tests of the daemon (server/daemon), one file per unit. The converter's and
# names' tests link only tblog_daemon_convert, not the gRPC side.
tblog_add_test(names_test SOURCES daemon/names_test.cc LIBS tblog_daemon_convert)
tblog_add_test(record_converter_test SOURCES daemon/record_converter_test.cc
  LIBS tblog_daemon_convert)
foreach(unit worker_pool byte_budget checkpoint run run_registry service config metrics)
  tblog_add_test(${unit}_test SOURCES daemon/${unit}_test.cc LIBS tblog_daemon)
endforeach()
