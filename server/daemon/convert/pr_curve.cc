#include "daemon/convert/summaries.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/fields.h"
#include "engine/plugins/pr_curve_summary.h"

namespace tblog::daemon::convert {
namespace {

// PyTorch's add_pr_curve default.
constexpr uint32_t kDefaultPrThresholds = 127;

}  // namespace

absl::StatusOr<tb::Summary::Value> ConvertPrCurve(std::string_view tag, const v1::PrCurve& pr,
                                                  const Limits& limits) {
  switch (pr.data_case()) {
    case v1::PrCurve::kCounts: {
      const v1::PrCounts& c = pr.counts();
      const int t = c.true_positives_size();
      if (c.false_positives_size() != t || c.true_negatives_size() != t ||
          c.false_negatives_size() != t) {
        return Bad("counts", absl::StrCat("rows differ in length: true_positives ", t,
                                          ", false_positives ", c.false_positives_size(),
                                          ", true_negatives ", c.true_negatives_size(),
                                          ", false_negatives ", c.false_negatives_size()));
      }
      if (static_cast<uint64_t>(t) > limits.max_pr_thresholds) {
        return Bad("counts", absl::StrCat(t, " thresholds is more than the limit of ",
                                          limits.max_pr_thresholds));
      }
      const auto doubles = [](const google::protobuf::RepeatedField<float>& row) {
        return std::vector<double>(row.begin(), row.end());
      };
      const std::vector<double> tp = doubles(c.true_positives()), fp = doubles(c.false_positives()),
                                tn = doubles(c.true_negatives()), fn = doubles(c.false_negatives());
      absl::StatusOr<PrCurveData> curve = PrCurveFromCounts(tp, fp, tn, fn);
      if (!curve.ok()) return Annotate(curve.status(), "counts");
      // TensorBoard's pr_curve raw_data_pb writes the tensor as tensor_content.
      return PrCurveValue(tag, *curve, PrCurveEncoding::kTensorContent);
    }
    case v1::PrCurve::kPredictions: {
      const v1::PrPredictions& p = pr.predictions();
      if (!p.has_labels()) return Bad("predictions.labels", "not set");
      if (!p.has_predictions()) return Bad("predictions.predictions", "not set");
      absl::StatusOr<TensorView> labels = ViewTensor(p.labels(), "predictions.labels", limits);
      if (!labels.ok()) return labels.status();
      absl::StatusOr<TensorView> predictions =
          ViewTensor(p.predictions(), "predictions.predictions", limits);
      if (!predictions.ok()) return predictions.status();
      TBLOG_RETURN_IF_ERROR(RequireFloat(*predictions, "predictions.predictions"));
      const int64_t n = predictions->num_elements();
      if (labels->num_elements() != n) {
        return Bad("predictions.labels", absl::StrCat("has ", labels->num_elements(),
                                                      " elements but predictions has ", n));
      }
      const uint32_t thresholds =
          p.num_thresholds() == 0 ? kDefaultPrThresholds : p.num_thresholds();
      if (thresholds < 2 || thresholds > limits.max_pr_thresholds) {
        return Bad("predictions.num_thresholds",
                   absl::StrCat(thresholds, " is outside [2, ", limits.max_pr_thresholds, "]"));
      }
      absl::StatusOr<std::vector<float>> label_values =
          FiniteFloats(*labels, "predictions.labels");
      if (!label_values.ok()) return label_values.status();
      absl::StatusOr<std::vector<float>> prediction_values =
          FiniteFloats(*predictions, "predictions.predictions");
      if (!prediction_values.ok()) return prediction_values.status();
      std::vector<float> weight_values;
      if (p.has_weights()) {
        absl::StatusOr<TensorView> weights =
            ViewTensor(p.weights(), "predictions.weights", limits);
        if (!weights.ok()) return weights.status();
        if (weights->num_elements() != n) {
          return Bad("predictions.weights", absl::StrCat("has ", weights->num_elements(),
                                                         " elements but predictions has ", n));
        }
        absl::StatusOr<std::vector<float>> w = FiniteFloats(*weights, "predictions.weights");
        if (!w.ok()) return w.status();
        weight_values = *std::move(w);
      }
      absl::StatusOr<PrCurveData> curve =
          ComputePrCurve(*label_values, *prediction_values, thresholds, weight_values);
      if (!curve.ok()) return Annotate(curve.status(), "predictions");
      // PyTorch's add_pr_curve writes the tensor as float_val.
      return PrCurveValue(tag, *curve, PrCurveEncoding::kFloatVal);
    }
    case v1::PrCurve::DATA_NOT_SET: break;
  }
  return Bad("data", "neither counts nor predictions is set");
}

}  // namespace tblog::daemon::convert
