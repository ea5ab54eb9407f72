# Owned by the load generator: tblog-loadgen, end-to-end rates through tblogd
# (via the C++ client) next to the same work done in-process with the engine,
# with a read-back check of what was written. Needs the daemon and the client.
if(TARGET tblogd AND TARGET tblog_client)
  add_executable(tblog_loadgen tblog_loadgen.cc loadgen_in_process.cc machine.cc)
  set_target_properties(tblog_loadgen PROPERTIES OUTPUT_NAME tblog-loadgen)
  target_link_libraries(tblog_loadgen PRIVATE tblog_client tblog_engine tblog_api_proto
    tblog_daemon_process CLI11::CLI11 absl::strings absl::str_format absl::synchronization
    absl::time Threads::Threads)
  tblog_set_warnings(tblog_loadgen)

  # A tiny run that proves the whole path works: every count read back must
  # match what was sent (the loadgen exits 1 otherwise). Rates are printed,
  # never asserted.
  if(TBLOG_BUILD_TESTS)
    add_test(NAME loadgen_smoke
      COMMAND tblog_loadgen --spawn-daemon $<TARGET_FILE:tblogd>
        --scalars 20000 --histograms 3 --images 3 --writers 2 --writer-scalars 5000)
    set_tests_properties(loadgen_smoke PROPERTIES TIMEOUT 300)
  endif()
endif()
