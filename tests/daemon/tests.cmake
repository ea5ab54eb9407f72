# Tests of the daemon (server/daemon), one file per unit. The converter's and
# names' tests link only tblog_daemon_convert, not the gRPC side.
tblog_add_test(names_test SOURCES daemon/names_test.cc LIBS tblog_daemon_convert)
# record_converter_test covers the dispatch and the golden files, one
# convert_<kind>_test per unit under server/daemon/convert/.
foreach(unit record_converter convert_scalars convert_histogram convert_image convert_text_audio
    convert_pr_curve convert_hparams convert_graph_embedding)
  tblog_add_test(${unit}_test SOURCES daemon/${unit}_test.cc LIBS tblog_daemon_convert)
endforeach()
foreach(unit worker_pool byte_budget checkpoint run run_leases run_registry service config metrics)
  tblog_add_test(${unit}_test SOURCES daemon/${unit}_test.cc LIBS tblog_daemon)
endforeach()
# Leases against the real tblogd: writers are the C++ client, one of them a
# child process that the test kills with SIGKILL.
add_executable(lease_writer_child daemon/lease_writer_child.cc)
target_link_libraries(lease_writer_child PRIVATE tblog_client)
tblog_set_warnings(lease_writer_child)
tblog_add_test(leases_e2e_test SOURCES daemon/leases_e2e_test.cc
  LIBS tblog_client tblog_engine tblog_daemon_process)
target_compile_definitions(leases_e2e_test PRIVATE
  LEASE_WRITER_CHILD="$<TARGET_FILE:lease_writer_child>")
add_dependencies(leases_e2e_test lease_writer_child tblogd)
