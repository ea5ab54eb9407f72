#include "engine/plugins/pr_curve_summary.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "golden_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

TEST(PrCurveFromCountsTest, ComputesPrecisionAndRecall) {
  const std::vector<double> tp = {10, 8, 0}, fp = {5, 3, 0}, tn = {0, 2, 5}, fn = {0, 2, 10};
  absl::StatusOr<PrCurveData> curve = PrCurveFromCounts(tp, fp, tn, fn);
  ASSERT_TRUE(curve.ok()) << curve.status();
  EXPECT_EQ(curve->num_thresholds(), 3u);
  EXPECT_THAT(curve->precision, ElementsAre(10.0 / 15, 8.0 / 11, 0.0));  // 0/0 guarded to 0
  EXPECT_THAT(curve->recall, ElementsAre(1.0, 0.8, 0.0));
}

TEST(PrCurveFromCountsTest, RejectsBadRows) {
  const std::vector<double> three = {1, 2, 3}, two = {1, 2};
  EXPECT_EQ(PrCurveFromCounts(three, three, three, two).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PrCurveFromCounts({}, {}, {}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<double> negative = {1, -1, 3};
  absl::Status status = PrCurveFromCounts(three, negative, three, three).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("false_positives[1]"), absl::string_view::npos) << status;
  const std::vector<double> nan = {1, std::nan(""), 3};
  EXPECT_FALSE(PrCurveFromCounts(nan, three, three, three).ok());
}

TEST(ComputePrCurveTest, BucketsAndAccumulatesFromTheTop) {
  // T = 3: buckets floor(p * 2); 0.9 and 0.8 -> 1, 0.3 and 0.1 -> 0, 1.0 -> 2.
  const std::vector<float> labels = {1, 0, 1, 0, 1};
  const std::vector<float> predictions = {0.9f, 0.8f, 0.3f, 0.1f, 1.0f};
  absl::StatusOr<PrCurveData> curve = ComputePrCurve(labels, predictions, 3);
  ASSERT_TRUE(curve.ok()) << curve.status();
  EXPECT_THAT(curve->true_positives, ElementsAre(3, 2, 1));
  EXPECT_THAT(curve->false_positives, ElementsAre(2, 1, 0));
  EXPECT_THAT(curve->true_negatives, ElementsAre(0, 1, 2));
  EXPECT_THAT(curve->false_negatives, ElementsAre(0, 1, 2));
  EXPECT_THAT(curve->precision, ElementsAre(3.0 / 5, 2.0 / 3, 1.0));
  EXPECT_THAT(curve->recall, ElementsAre(1.0, 2.0 / 3, 1.0 / 3));
}

TEST(ComputePrCurveTest, WeightsScaleEachExample) {
  const std::vector<float> labels = {1, 0, 1, 0};
  const std::vector<float> predictions = {0.9f, 0.8f, 0.3f, 0.1f};
  const std::vector<float> weights = {2, 0.5f, 1, 3};
  absl::StatusOr<PrCurveData> curve = ComputePrCurve(labels, predictions, 3, weights);
  ASSERT_TRUE(curve.ok()) << curve.status();
  EXPECT_THAT(curve->true_positives, ElementsAre(3, 2, 0));
  EXPECT_THAT(curve->false_positives, ElementsAre(3.5, 0.5, 0));
}

TEST(ComputePrCurveTest, RejectsInvalidInput) {
  const std::vector<float> labels = {1, 0}, predictions = {0.5f, 0.5f};
  EXPECT_FALSE(ComputePrCurve(labels, predictions, 1).ok());
  EXPECT_FALSE(ComputePrCurve(labels, std::vector<float>{0.5f}, 3).ok());
  EXPECT_FALSE(ComputePrCurve(std::vector<float>{1, 0.5f}, predictions, 3).ok());
  EXPECT_FALSE(ComputePrCurve(labels, std::vector<float>{0.5f, 1.5f}, 3).ok());
  EXPECT_FALSE(ComputePrCurve(labels, std::vector<float>{0.5f, std::nanf("")}, 3).ok());
  EXPECT_FALSE(ComputePrCurve(labels, predictions, 3, std::vector<float>{1, -1}).ok());
  EXPECT_FALSE(ComputePrCurve(labels, predictions, 3, std::vector<float>{1}).ok());
  absl::Status status = ComputePrCurve(labels, std::vector<float>{0.5f, -0.25f}, 3).status();
  EXPECT_NE(status.message().find("predictions[1]"), absl::string_view::npos) << status;
}

TEST(PrCurveValueTest, BothEncodingsHoldTheSameFloats) {
  const std::vector<double> tp = {4, 1}, fp = {4, 0}, tn = {0, 4}, fn = {0, 3};
  absl::StatusOr<PrCurveData> curve = PrCurveFromCounts(tp, fp, tn, fn);
  ASSERT_TRUE(curve.ok()) << curve.status();
  absl::StatusOr<tb::Summary::Value> raw = PrCurveValue("pr", *curve, PrCurveEncoding::kTensorContent);
  absl::StatusOr<tb::Summary::Value> typed = PrCurveValue("pr", *curve, PrCurveEncoding::kFloatVal);
  ASSERT_TRUE(raw.ok() && typed.ok());
  EXPECT_EQ(raw->metadata().plugin_data().plugin_name(), "pr_curves");
  tb::PrCurvePluginData plugin_data;
  ASSERT_TRUE(plugin_data.ParseFromString(raw->metadata().plugin_data().content()));
  EXPECT_EQ(plugin_data.num_thresholds(), 2u);
  EXPECT_EQ(plugin_data.version(), 0);
  ASSERT_EQ(raw->tensor().tensor_shape().dim_size(), 2);
  EXPECT_EQ(raw->tensor().tensor_shape().dim(0).size(), 6);
  EXPECT_EQ(raw->tensor().tensor_shape().dim(1).size(), 2);
  std::vector<float> decoded(12);
  ASSERT_EQ(raw->tensor().tensor_content().size(), decoded.size() * sizeof(float));
  std::memcpy(decoded.data(), raw->tensor().tensor_content().data(), 48);
  EXPECT_THAT(decoded, ElementsAreArray(typed->tensor().float_val()));
  EXPECT_THAT(decoded, ElementsAre(4, 1, 4, 0, 0, 4, 0, 3, 0.5f, 1, 1, 0.25f));
}

TEST(PrCurveValueTest, RejectsEmptyTagAndRaggedRows) {
  PrCurveData curve;
  curve.true_positives = curve.false_positives = curve.true_negatives = {1};
  curve.false_negatives = curve.precision = curve.recall = {1};
  EXPECT_TRUE(PrCurveValue("t", curve, PrCurveEncoding::kFloatVal).ok());
  EXPECT_FALSE(PrCurveValue("", curve, PrCurveEncoding::kFloatVal).ok());
  curve.recall.push_back(0);
  EXPECT_FALSE(PrCurveValue("t", curve, PrCurveEncoding::kFloatVal).ok());
}

// TensorBoard's pr_curve raw_data_pb path from counts (tensor_content).
TEST(PrCurveGoldenTest, FromCountsMatchesTensorBoardByteForByte) {
  const std::vector<tb::Event> events = ReadGoldenEvents("pr_curve");
  const tb::Summary::Value* golden = FindValue(events, "pr/class0", 0);
  ASSERT_NE(golden, nullptr);
  absl::StatusOr<PrCurveData> curve =
      PrCurveFromCounts(std::vector<double>{10, 8, 5}, std::vector<double>{5, 3, 1},
                        std::vector<double>{0, 2, 4}, std::vector<double>{0, 2, 5});
  ASSERT_TRUE(curve.ok()) << curve.status();
  absl::StatusOr<tb::Summary::Value> value =
      PrCurveValue("pr/class0", *curve, PrCurveEncoding::kTensorContent);
  ASSERT_TRUE(value.ok()) << value.status();
  ExpectAndClearDataClass(tb::DATA_CLASS_TENSOR, &*value);
  ExpectSameBytes(*value, *golden);
}

// PyTorch's add_pr_curve: numpy over float32 predictions and float64 sums,
// stored as float_val; our arithmetic is the same, so the bytes are equal
// (no ulp tolerance needed).
TEST(PrCurveGoldenTest, FromLabelsMatchesPyTorchByteForByte) {
  const std::vector<tb::Event> events = ReadGoldenEvents("torch_pr_curve");
  const tb::Summary::Value* golden = FindValue(events, "pr", 0);
  ASSERT_NE(golden, nullptr);
  const std::vector<float> labels = ReadGoldenArray<float>("pr_labels_500.f32");
  const std::vector<float> predictions = ReadGoldenArray<float>("pr_predictions_500.f32");
  ASSERT_EQ(labels.size(), 500u);
  absl::StatusOr<PrCurveData> curve = ComputePrCurve(labels, predictions, 127);
  ASSERT_TRUE(curve.ok()) << curve.status();
  absl::StatusOr<tb::Summary::Value> value = PrCurveValue("pr", *curve, PrCurveEncoding::kFloatVal);
  ASSERT_TRUE(value.ok()) << value.status();
  ExpectAndClearDataClass(tb::DATA_CLASS_TENSOR, &*value);
  ExpectSameBytes(*value, *golden);
  ASSERT_EQ(golden->tensor().float_val_size(), 6 * 127);
  for (int i = 0; i < 6 * 127; ++i) {
    ASSERT_EQ(value->tensor().float_val(i), golden->tensor().float_val(i)) << "element " << i;
  }
}

}  // namespace
}  // namespace tblog
