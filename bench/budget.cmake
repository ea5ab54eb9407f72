# Owned by the budget benchmark: tblog-budget-bench, the daemon's peak RSS
# under floods of large records next to --max-inflight-bytes (README,
# "Memory"). Raw gRPC stubs, so it controls streams and unary calls exactly.
if(TARGET tblogd)
  add_executable(tblog_budget_bench budget_bench.cc machine.cc)
  set_target_properties(tblog_budget_bench PROPERTIES OUTPUT_NAME tblog-budget-bench)
  target_link_libraries(tblog_budget_bench PRIVATE tblog_api_proto tblog_daemon_process
    gRPC::grpc++ CLI11::CLI11 absl::strings absl::str_format Threads::Threads)
  tblog_set_warnings(tblog_budget_bench)
endif()
