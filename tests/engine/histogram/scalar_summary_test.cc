#include "engine/histogram/scalar_summary.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "golden_util.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {
namespace {

TEST(ScalarValueTest, LayoutIsRankZeroFloatWithScalarsPlugin) {
  const tb::Summary::Value value = ScalarValue("loss", 0.25f);
  EXPECT_EQ(value.tag(), "loss");
  ASSERT_TRUE(value.has_tensor());
  EXPECT_EQ(value.tensor().dtype(), tb::DT_FLOAT);
  EXPECT_TRUE(value.tensor().has_tensor_shape());
  EXPECT_EQ(value.tensor().tensor_shape().dim_size(), 0);
  ASSERT_EQ(value.tensor().float_val_size(), 1);
  EXPECT_EQ(value.tensor().float_val(0), 0.25f);
  EXPECT_TRUE(value.tensor().tensor_content().empty());
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "scalars");
  tb::ScalarPluginData content;
  ASSERT_TRUE(content.ParseFromString(value.metadata().plugin_data().content()));
  EXPECT_EQ(content.version(), 0);  // the only version TensorBoard accepts
  EXPECT_EQ(value.metadata().data_class(), tb::DATA_CLASS_SCALAR);
}

TEST(ScalarValueTest, KeepsNonFiniteValues) {
  EXPECT_TRUE(std::isnan(ScalarValue("x", std::nanf("")).tensor().float_val(0)));
  EXPECT_EQ(ScalarValue("x", -std::numeric_limits<float>::infinity()).tensor().float_val(0),
            -std::numeric_limits<float>::infinity());
}

TEST(SimpleScalarValueTest, LayoutIsSimpleValueWithoutMetadata) {
  const tb::Summary::Value value = SimpleScalarValue("acc", 0.75f);
  EXPECT_EQ(value.tag(), "acc");
  EXPECT_EQ(value.value_case(), tb::Summary::Value::kSimpleValue);
  EXPECT_EQ(value.simple_value(), 0.75f);
  EXPECT_FALSE(value.has_metadata());
}

// scalars_v2 was written by TensorBoard's scalar_pb: epoch_loss = 1/(step+1).
// TensorBoard leaves data_class unset where we set SCALAR (the format doc asks
// for it explicitly); with that one field cleared the bytes must be identical.
TEST(ScalarValueTest, MatchesGoldenScalarsV2) {
  const auto events = ReadGoldenEvents("scalars_v2");
  int compared = 0;
  for (int64_t step = 0; step < 5; ++step) {
    const tb::Summary::Value* golden = FindValue(events, "epoch_loss", step);
    ASSERT_NE(golden, nullptr) << "step " << step;
    tb::Summary::Value ours = ScalarValue("epoch_loss", static_cast<float>(1.0 / (step + 1)));
    ExpectAndClearDataClass(tb::DATA_CLASS_SCALAR, &ours);
    EXPECT_EQ(ours.SerializeAsString(), golden->SerializeAsString()) << "step " << step;
    ++compared;
  }
  EXPECT_EQ(compared, 5);
}

// scalars_v1 was written by torch's add_scalar: loss = 1/(step+1),
// accuracy = 0.5 + 0.1*step (computed in double, stored as float).
TEST(SimpleScalarValueTest, MatchesGoldenScalarsV1ByteForByte) {
  const auto events = ReadGoldenEvents("scalars_v1");
  for (int64_t step = 0; step < 5; ++step) {
    const tb::Summary::Value* loss = FindValue(events, "loss", step);
    const tb::Summary::Value* accuracy = FindValue(events, "accuracy", step);
    ASSERT_NE(loss, nullptr) << "step " << step;
    ASSERT_NE(accuracy, nullptr) << "step " << step;
    EXPECT_EQ(SimpleScalarValue("loss", static_cast<float>(1.0 / (step + 1))).SerializeAsString(),
              loss->SerializeAsString())
        << "step " << step;
    EXPECT_EQ(
        SimpleScalarValue("accuracy", static_cast<float>(0.5 + 0.1 * static_cast<double>(step)))
            .SerializeAsString(),
        accuracy->SerializeAsString())
        << "step " << step;
  }
}

}  // namespace
}  // namespace tblog
