# Owned by the histogram component.
tblog_add_test(scalar_summary_test SOURCES engine/histogram/scalar_summary_test.cc LIBS tblog_engine_histogram)
tblog_add_test(scalar_event_test SOURCES engine/histogram/scalar_event_test.cc LIBS tblog_engine_histogram)
tblog_add_test(histogram_test SOURCES engine/histogram/histogram_test.cc LIBS tblog_engine_histogram)
tblog_add_test(parallel_test SOURCES engine/histogram/parallel_test.cc LIBS tblog_engine_histogram)
