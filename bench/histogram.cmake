# Owned by the histogram component: histogram throughput against a plain sum.
add_executable(histogram_bench histogram_bench.cc)
target_link_libraries(histogram_bench PRIVATE tblog_engine_histogram benchmark::benchmark)
tblog_set_warnings(histogram_bench)
