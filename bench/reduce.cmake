# Owned by the reduce benchmark: tblog-reduce-bench, the daemon's CPU per
# reduced contribution and the time from a step's last contribution to its
# written point, for 8, 64 and 512 contributors (tblog.proto, "Reductions
# across writers"). Raw gRPC stubs against a tblogd child per row.
if(TARGET tblogd)
  add_executable(tblog_reduce_bench reduce_bench.cc machine.cc)
  set_target_properties(tblog_reduce_bench PROPERTIES OUTPUT_NAME tblog-reduce-bench)
  target_link_libraries(tblog_reduce_bench PRIVATE tblog_api_proto tblog_daemon_process
    gRPC::grpc++ CLI11::CLI11 absl::strings absl::str_format Threads::Threads)
  tblog_set_warnings(tblog_reduce_bench)
endif()
