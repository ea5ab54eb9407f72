# Owned by the histogram component: scalar and histogram summaries, and the
# ParallelRunner seam they split large inputs through.
tblog_engine_component(tblog_engine_histogram
  scalar_summary.cc
  histogram.cc
  parallel.cc
)
target_link_libraries(tblog_engine_histogram PUBLIC tblog_engine_io absl::function_ref)
# Bucket edges must be computed exactly as numpy does (i*step + min, two
# roundings): forbid contracting them into a fused multiply-add.
set_source_files_properties(histogram.cc PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
