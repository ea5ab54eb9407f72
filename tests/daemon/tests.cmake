# Tests of the daemon (server/daemon), one file per unit. The converter's and
# names' tests link only tblog_daemon_convert, not the gRPC side.
tblog_add_test(names_test SOURCES daemon/names_test.cc LIBS tblog_daemon_convert)
# record_converter_test covers the dispatch and the golden files, one
# convert_<kind>_test per unit under server/daemon/convert/.
foreach(unit record_converter convert_scalars convert_histogram convert_image convert_text_audio
    convert_pr_curve convert_hparams convert_graph_embedding)
  tblog_add_test(${unit}_test SOURCES daemon/${unit}_test.cc LIBS tblog_daemon_convert)
endforeach()
foreach(unit worker_pool byte_budget checkpoint run run_registry service config metrics)
  tblog_add_test(${unit}_test SOURCES daemon/${unit}_test.cc LIBS tblog_daemon)
endforeach()
# The attacks of issue 10 (foreign writer ids, reserved names, nested runs,
# unparsable requests) on a real tblogd child process; ownership with tokens
# through the caller-identity seam, in process.
tblog_add_test(ownership_test SOURCES daemon/ownership_test.cc
  LIBS tblog_daemon tblog_daemon_process)
tblog_add_test(run_owner_test SOURCES daemon/run_owner_test.cc LIBS tblog_daemon)
