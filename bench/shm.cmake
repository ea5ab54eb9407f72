# Owned by the shared-memory path: tblog-shm-bench, 1M- and 16M-float
# histograms through a tblogd child over shared memory, its unix socket and
# TCP, next to in-process (issue 13). Reuses the load generator's in-process
# run and machine lines.
if(TARGET tblogd AND TARGET tblog_client)
  add_executable(tblog_shm_bench shm_bench.cc loadgen_in_process.cc machine.cc)
  set_target_properties(tblog_shm_bench PROPERTIES OUTPUT_NAME tblog-shm-bench)
  target_link_libraries(tblog_shm_bench PRIVATE tblog_client tblog_engine tblog_api_proto
    tblog_daemon_process CLI11::CLI11 absl::strings absl::str_format absl::time
    Threads::Threads)
  tblog_set_warnings(tblog_shm_bench)
endif()
