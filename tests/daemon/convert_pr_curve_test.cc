// PR-curve records (convert/summaries.h) through RecordConverter::Convert.
#include "daemon/record_converter.h"

#include <cmath>
#include <vector>

#include "convert_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

using ::testing::ElementsAre;

TEST_F(RecordConverterTest, PrCurveFromCountsAndPredictions) {
  v1::Record counts = Base("pr");
  v1::PrCounts* c = counts.mutable_pr_curve()->mutable_counts();
  for (float v : {10.f, 6.f, 2.f}) c->add_true_positives(v);
  for (float v : {10.f, 3.f, 0.f}) c->add_false_positives(v);
  for (float v : {0.f, 7.f, 10.f}) c->add_true_negatives(v);
  for (float v : {0.f, 4.f, 8.f}) c->add_false_negatives(v);
  tb::Summary::Value value = OnlyValue(Ok(counts));
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "pr_curves");
  EXPECT_THAT(Dims(value.tensor()), ElementsAre(6, 3));

  v1::Record predictions = Base("pr");
  v1::PrPredictions* p = predictions.mutable_pr_curve()->mutable_predictions();
  *p->mutable_labels() = MakeTensor(v1::DTYPE_BOOL, {4}, std::vector<uint8_t>{1, 0, 1, 0});
  *p->mutable_predictions() = Floats({4}, {0.9f, 0.1f, 0.6f, 0.4f});
  value = OnlyValue(Ok(predictions));
  EXPECT_THAT(Dims(value.tensor()), ElementsAre(6, 127));
  ASSERT_EQ(value.tensor().float_val_size(), 6 * 127);
  EXPECT_EQ(value.tensor().float_val(0), 2.0f);  // both positives are >= threshold 0

  *p->mutable_weights() = Floats({4}, {2, 1, 1, 1});
  p->set_num_thresholds(5);
  value = OnlyValue(Ok(predictions));
  EXPECT_THAT(Dims(value.tensor()), ElementsAre(6, 5));
  EXPECT_EQ(value.tensor().float_val(0), 3.0f);
}

TEST_F(RecordConverterTest, PrCurveRejectsBadInput) {
  v1::Record counts = Base("pr");
  counts.mutable_pr_curve()->mutable_counts()->add_true_positives(1);
  ExpectInvalid(counts, {"pr_curve \"pr\"", "counts", "differ in length"});

  const auto predictions = [] {
    v1::Record record = Base("pr");
    v1::PrPredictions* p = record.mutable_pr_curve()->mutable_predictions();
    *p->mutable_labels() = Floats({2}, {1, 0});
    *p->mutable_predictions() = Floats({2}, {0.5f, 0.25f});
    return record;
  };
  v1::Record nan = predictions();
  *nan.mutable_pr_curve()->mutable_predictions()->mutable_predictions() =
      Floats({2}, {0.5f, std::nanf("")});
  ExpectInvalid(nan, {"predictions.predictions", "element 1", "finite"});

  v1::Record count = predictions();
  *count.mutable_pr_curve()->mutable_predictions()->mutable_labels() = Floats({3}, {1, 0, 1});
  ExpectInvalid(count, {"predictions.labels", "3 elements"});

  v1::Record thresholds = predictions();
  thresholds.mutable_pr_curve()->mutable_predictions()->set_num_thresholds(1);
  ExpectInvalid(thresholds, {"num_thresholds", "outside [2,"});

  v1::Record weights = predictions();
  *weights.mutable_pr_curve()->mutable_predictions()->mutable_weights() = Floats({1}, {1});
  ExpectInvalid(weights, {"predictions.weights", "1 elements"});

  v1::Record none = Base("pr");
  none.mutable_pr_curve();
  ExpectInvalid(none, {"data", "neither counts nor predictions"});
}

}  // namespace
}  // namespace tblog::daemon
