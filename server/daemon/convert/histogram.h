// Histogram records: a tensor of values binned by the engine's
// HistogramBuilder, in TensorBoard's uniform or exponential layout. NaN and
// infinities are left out and counted, for the caller to warn about.
#ifndef TBLOG_DAEMON_CONVERT_HISTOGRAM_H_
#define TBLOG_DAEMON_CONVERT_HISTOGRAM_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "daemon/options.h"
#include "engine/histogram/histogram.h"
#include "engine/histogram/parallel.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// The histogram of `histogram.values`. A bucket_count of 0 means the engine's
// default for the uniform layout and must be 0 for the exponential one (whose
// buckets are fixed); the count is bounded by limits.max_histogram_buckets.
// `parallel` (may be null, borrowed for the call) splits a large tensor
// across threads.
absl::StatusOr<HistogramSummary> ConvertHistogram(std::string_view tag,
                                                  const v1::Histogram& histogram,
                                                  const Limits& limits, ParallelRunner* parallel);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_HISTOGRAM_H_
