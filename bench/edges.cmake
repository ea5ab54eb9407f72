# Owned by the edges benchmark: tblog-edges-bench, how soon a lone scalar is in
# the event file, and what Writer::Open, flush() and close() cost the caller,
# through a real tblogd (bench/README.md).
if(TARGET tblogd AND TARGET tblog_client)
  add_executable(tblog_edges_bench edges_bench.cc machine.cc)
  set_target_properties(tblog_edges_bench PROPERTIES OUTPUT_NAME tblog-edges-bench)
  target_link_libraries(tblog_edges_bench PRIVATE tblog_client tblog_daemon_process
    CLI11::CLI11 absl::strings absl::str_format absl::status Threads::Threads)
  tblog_set_warnings(tblog_edges_bench)
endif()
