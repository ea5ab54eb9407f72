#include "engine/plugins/pr_curve_summary.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {
namespace {

constexpr char kPluginName[] = "pr_curves";
// numpy.histogram sums weights in blocks of this many elements and adds the
// block sums; summing the same way keeps weighted float64 totals bit-equal.
constexpr size_t kNumpyHistogramBlock = 65536;
// Above 2^24, T - 1 is not exact in float32, the type the bucketing uses.
constexpr uint32_t kMaxNumThresholds = 1u << 24;

// Fills precision and recall from the four count rows.
void ComputePrecisionRecall(PrCurveData* curve) {
  const size_t n = curve->num_thresholds();
  curve->precision.resize(n);
  curve->recall.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const double tp = curve->true_positives[i];
    curve->precision[i] =
        tp / std::max(kPrCurveMinimumCount, tp + curve->false_positives[i]);
    curve->recall[i] = tp / std::max(kPrCurveMinimumCount, tp + curve->false_negatives[i]);
  }
}

absl::Status CheckCounts(std::string_view row, std::span<const double> counts) {
  for (size_t i = 0; i < counts.size(); ++i) {
    if (!std::isfinite(counts[i]) || counts[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("pr curve: ", Sv(row), "[", i, "] is ",
                                                     counts[i], ", not a finite count >= 0"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PrCurveData> PrCurveFromCounts(std::span<const double> true_positives,
                                              std::span<const double> false_positives,
                                              std::span<const double> true_negatives,
                                              std::span<const double> false_negatives) {
  const size_t n = true_positives.size();
  if (n == 0) return absl::InvalidArgumentError("pr curve: no thresholds (empty count rows)");
  if (false_positives.size() != n || true_negatives.size() != n || false_negatives.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pr curve: count rows differ in length: true_positives ", n, ", false_positives ",
        false_positives.size(), ", true_negatives ", true_negatives.size(),
        ", false_negatives ", false_negatives.size()));
  }
  TBLOG_RETURN_IF_ERROR(CheckCounts("true_positives", true_positives));
  TBLOG_RETURN_IF_ERROR(CheckCounts("false_positives", false_positives));
  TBLOG_RETURN_IF_ERROR(CheckCounts("true_negatives", true_negatives));
  TBLOG_RETURN_IF_ERROR(CheckCounts("false_negatives", false_negatives));
  PrCurveData curve;
  curve.true_positives.assign(true_positives.begin(), true_positives.end());
  curve.false_positives.assign(false_positives.begin(), false_positives.end());
  curve.true_negatives.assign(true_negatives.begin(), true_negatives.end());
  curve.false_negatives.assign(false_negatives.begin(), false_negatives.end());
  ComputePrecisionRecall(&curve);
  return curve;
}

absl::StatusOr<PrCurveData> ComputePrCurve(std::span<const float> labels,
                                           std::span<const float> predictions,
                                           uint32_t num_thresholds,
                                           std::span<const float> weights) {
  if (num_thresholds < 2 || num_thresholds > kMaxNumThresholds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pr curve: num_thresholds is ", num_thresholds, ", must be in [2, ", kMaxNumThresholds, "]"));
  }
  if (labels.size() != predictions.size()) {
    return absl::InvalidArgumentError(absl::StrCat("pr curve: ", labels.size(), " labels but ",
                                                   predictions.size(), " predictions"));
  }
  if (!weights.empty() && weights.size() != predictions.size()) {
    return absl::InvalidArgumentError(absl::StrCat("pr curve: ", weights.size(), " weights but ",
                                                   predictions.size(), " predictions"));
  }
  const size_t n = predictions.size();
  for (size_t i = 0; i < n; ++i) {
    if (labels[i] != 0.0f && labels[i] != 1.0f) {
      return absl::InvalidArgumentError(
          absl::StrCat("pr curve: labels[", i, "] is ", labels[i], ", not 0 or 1"));
    }
    // The negated test also rejects NaN.
    if (!(predictions[i] >= 0.0f && predictions[i] <= 1.0f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("pr curve: predictions[", i, "] is ", predictions[i], ", not in [0, 1]"));
    }
    if (!weights.empty() && !(std::isfinite(weights[i]) && weights[i] >= 0.0f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("pr curve: weights[", i, "] is ", weights[i], ", not finite and >= 0"));
    }
  }

  // Per-bucket sums of label * weight (positives) and (1 - label) * weight
  // (negatives). numpy multiplies float32 predictions by the integer T - 1 in
  // float32 and floors; the bucket index is then exact, so bucket k = index k.
  const float scale = static_cast<float>(num_thresholds - 1);
  std::vector<double> positive_buckets(num_thresholds, 0.0);
  std::vector<double> negative_buckets(num_thresholds, 0.0);
  std::vector<double> block_positive(num_thresholds);
  std::vector<double> block_negative(num_thresholds);
  for (size_t block_start = 0; block_start < n; block_start += kNumpyHistogramBlock) {
    std::fill(block_positive.begin(), block_positive.end(), 0.0);
    std::fill(block_negative.begin(), block_negative.end(), 0.0);
    const size_t block_end = std::min(n, block_start + kNumpyHistogramBlock);
    for (size_t i = block_start; i < block_end; ++i) {
      const float scaled = predictions[i] * scale;
      const auto bucket = static_cast<size_t>(std::floor(scaled));
      const double label = labels[i];
      const double weight = weights.empty() ? 1.0 : static_cast<double>(weights[i]);
      block_positive[bucket] += label * weight;
      block_negative[bucket] += (1.0 - label) * weight;
    }
    for (uint32_t k = 0; k < num_thresholds; ++k) {
      positive_buckets[k] += block_positive[k];
      negative_buckets[k] += block_negative[k];
    }
  }

  PrCurveData curve;
  curve.true_positives.resize(num_thresholds);
  curve.false_positives.resize(num_thresholds);
  double tp = 0.0;
  double fp = 0.0;
  for (size_t k = num_thresholds; k-- > 0;) {
    tp += positive_buckets[k];
    fp += negative_buckets[k];
    curve.true_positives[k] = tp;
    curve.false_positives[k] = fp;
  }
  curve.true_negatives.resize(num_thresholds);
  curve.false_negatives.resize(num_thresholds);
  for (size_t k = 0; k < num_thresholds; ++k) {
    curve.true_negatives[k] = curve.false_positives[0] - curve.false_positives[k];
    curve.false_negatives[k] = curve.true_positives[0] - curve.true_positives[k];
  }
  ComputePrecisionRecall(&curve);
  return curve;
}

absl::StatusOr<tb::Summary::Value> PrCurveValue(std::string_view tag, const PrCurveData& curve,
                                                PrCurveEncoding encoding) {
  if (tag.empty()) return absl::InvalidArgumentError("pr curve: empty tag");
  const size_t n = curve.num_thresholds();
  const std::vector<double>* rows[] = {&curve.true_positives, &curve.false_positives,
                                       &curve.true_negatives, &curve.false_negatives,
                                       &curve.precision,      &curve.recall};
  for (const std::vector<double>* row : rows) {
    if (n == 0 || row->size() != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pr curve '", Sv(tag), "': rows must be non-empty and of equal length, got ", n,
          " true positives and a row of ", row->size()));
    }
  }
  if (n > kMaxNumThresholds) {
    return absl::InvalidArgumentError(absl::StrCat("pr curve '", Sv(tag), "': ", n,
                                                   " thresholds, more than ", kMaxNumThresholds));
  }

  tb::Summary::Value value;
  value.set_tag(std::string(tag));
  tb::PrCurvePluginData plugin_data;
  plugin_data.set_num_thresholds(static_cast<uint32_t>(n));
  tb::SummaryMetadata::PluginData* plugin = value.mutable_metadata()->mutable_plugin_data();
  plugin->set_plugin_name(kPluginName);
  plugin->set_content(plugin_data.SerializeAsString());
  // TensorBoard's writer leaves data_class unset and the loaders infer TENSOR;
  // setting it makes both loaders trust the shape as is.
  value.mutable_metadata()->set_data_class(tb::DATA_CLASS_TENSOR);

  tb::TensorProto* tensor = value.mutable_tensor();
  tensor->set_dtype(tb::DT_FLOAT);
  tensor->mutable_tensor_shape()->add_dim()->set_size(6);
  tensor->mutable_tensor_shape()->add_dim()->set_size(static_cast<int64_t>(n));
  std::vector<float> values;
  values.reserve(6 * n);
  for (const std::vector<double>* row : rows) {
    for (double x : *row) values.push_back(static_cast<float>(x));
  }
  if (encoding == PrCurveEncoding::kTensorContent) {
    // Little-endian host assumed, as throughout the engine.
    std::string* content = tensor->mutable_tensor_content();
    content->resize(values.size() * sizeof(float));
    std::memcpy(content->data(), values.data(), content->size());
  } else {
    tensor->mutable_float_val()->Assign(values.begin(), values.end());
  }
  return value;
}

}  // namespace tblog
