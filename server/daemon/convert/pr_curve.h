// PR-curve records: either the counts per threshold, written as TensorBoard's
// pr_curve raw_data_pb writes them, or labels and predictions that the engine
// bins into thresholds, written as PyTorch's add_pr_curve writes them.
#ifndef TBLOG_DAEMON_CONVERT_PR_CURVE_H_
#define TBLOG_DAEMON_CONVERT_PR_CURVE_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "daemon/options.h"
#include "engine/io/tensor_view.h"  // the tb:: alias
#include "tblog/tensorboard/summary.pb.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// Counts: four rows of one length, at most limits.max_pr_thresholds.
// Predictions: float predictions, labels (and optional weights) of as many
// elements, all finite; num_thresholds 0 means PyTorch's default of 127 and
// must lie in [2, limits.max_pr_thresholds].
absl::StatusOr<tb::Summary::Value> ConvertPrCurve(std::string_view tag, const v1::PrCurve& pr,
                                                  const Limits& limits);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_PR_CURVE_H_
