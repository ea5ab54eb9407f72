# Owned by the C++ client: the cost of a record call on the training thread.
add_executable(client_bench client_bench.cc)
target_link_libraries(client_bench PRIVATE tblog_client benchmark::benchmark)
tblog_set_warnings(client_bench)
