// PR-curve summaries for TensorBoard's "pr_curves" plugin: a DT_FLOAT [6, T]
// tensor whose rows are TP, FP, TN, FN, precision and recall at T thresholds
// (shared docs/tensorboard-format.md §3 "PR curves").
#ifndef TBLOG_ENGINE_PLUGINS_PR_CURVE_SUMMARY_H_
#define TBLOG_ENGINE_PLUGINS_PR_CURVE_SUMMARY_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog {

// The six rows of a PR curve, one entry per threshold; all rows have the same
// length T. Threshold i is i / (T - 1): counts at index i are over the
// predictions >= that threshold.
struct PrCurveData {
  std::vector<double> true_positives;
  std::vector<double> false_positives;
  std::vector<double> true_negatives;
  std::vector<double> false_negatives;
  std::vector<double> precision;
  std::vector<double> recall;

  size_t num_thresholds() const { return true_positives.size(); }
};

// Guards a division by zero, as TensorBoard and PyTorch do:
// precision = tp / max(kPrCurveMinimumCount, tp + fp), likewise recall.
inline constexpr double kPrCurveMinimumCount = 1e-7;

// Curve from per-threshold counts (TensorBoard's raw_data_pb inputs); precision
// and recall are computed from them with the formula above. INVALID_ARGUMENT
// when the rows are empty, differ in length or hold a negative or non-finite count.
absl::StatusOr<PrCurveData> PrCurveFromCounts(std::span<const double> true_positives,
                                              std::span<const double> false_positives,
                                              std::span<const double> true_negatives,
                                              std::span<const double> false_negatives);

// Curve computed from binary labels (0 or 1) and predictions in [0, 1], the
// way TensorBoard's pr_curve.pb and PyTorch's add_pr_curve do: prediction p
// falls in bucket floor(float32(p * (T - 1))), buckets are summed (weighted by
// `weights` when not empty) and accumulated from the top. Same arithmetic as
// their numpy code (float32 bucketing, float64 sums), so results are equal to
// theirs. PyTorch caps T at 127; that cap is the caller's choice here.
// INVALID_ARGUMENT on T < 2, mismatched lengths or values out of range.
absl::StatusOr<PrCurveData> ComputePrCurve(std::span<const float> labels,
                                           std::span<const float> predictions,
                                           uint32_t num_thresholds,
                                           std::span<const float> weights = {});

// How the [6, T] float32 tensor is stored: TensorBoard's make_tensor_proto
// writes raw tensor_content; PyTorch's add_pr_curve writes float_val.
enum class PrCurveEncoding { kTensorContent, kFloatVal };

// The summary value for `tag`: plugin "pr_curves", content
// PrCurvePluginData{num_thresholds = T}, the [6, T] DT_FLOAT tensor (values
// rounded to float32). data_class is left unset, as both TensorBoard's and
// PyTorch's writers leave it; both loaders infer TENSOR from the plugin name.
// INVALID_ARGUMENT on an empty tag or rows of unequal or zero length.
absl::StatusOr<tb::Summary::Value> PrCurveValue(std::string_view tag, const PrCurveData& curve,
                                                PrCurveEncoding encoding);

}  // namespace tblog

#endif  // TBLOG_ENGINE_PLUGINS_PR_CURVE_SUMMARY_H_
