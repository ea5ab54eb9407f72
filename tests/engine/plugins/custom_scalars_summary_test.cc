#include "engine/plugins/custom_scalars_summary.h"

#include <string>
#include <vector>

#include "golden_util.h"
#include "gtest/gtest.h"

namespace tblog {
namespace {

std::vector<CustomScalarCategory> GoldenCategories() {
  return {{"losses", {{"train vs val", MultilineChart{{"loss/.*"}}}}, false}};
}

TEST(CustomScalarsSummaryTest, LayoutRoundTripsThroughTheStringTensor) {
  std::vector<CustomScalarCategory> categories = GoldenCategories();
  categories.push_back(
      {"bands", {{"acc", MarginChart{{{"acc/mean", "acc/low", "acc/high"}}}}}, true});
  absl::StatusOr<tb::Layout> layout = BuildCustomScalarLayout(categories);
  ASSERT_TRUE(layout.ok()) << layout.status();
  const tb::Summary::Value value = CustomScalarsLayoutValue(*layout);
  EXPECT_EQ(value.tag(), kCustomScalarsConfigTag);
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "custom_scalars");
  EXPECT_TRUE(value.metadata().plugin_data().content().empty());
  EXPECT_EQ(value.tensor().dtype(), tb::DT_STRING);
  EXPECT_TRUE(value.tensor().has_tensor_shape());
  EXPECT_EQ(value.tensor().tensor_shape().dim_size(), 0);
  ASSERT_EQ(value.tensor().string_val_size(), 1);
  tb::Layout parsed;
  ASSERT_TRUE(parsed.ParseFromString(value.tensor().string_val(0)));
  ASSERT_EQ(parsed.category_size(), 2);
  EXPECT_TRUE(parsed.category(1).closed());
  const tb::MarginChartContent::Series& series = parsed.category(1).chart(0).margin().series(0);
  EXPECT_EQ(series.value(), "acc/mean");
  EXPECT_EQ(series.lower(), "acc/low");
  EXPECT_EQ(series.upper(), "acc/high");
  EXPECT_EQ(parsed.category(0).chart(0).multiline().tag(0), "loss/.*");
}

TEST(CustomScalarsSummaryTest, RejectsBadLayouts) {
  EXPECT_FALSE(BuildCustomScalarLayout({}).ok());
  std::vector<CustomScalarCategory> categories = GoldenCategories();
  categories[0].title = "";
  EXPECT_FALSE(BuildCustomScalarLayout(categories).ok());
  categories = GoldenCategories();
  categories[0].charts[0].title = "";
  EXPECT_FALSE(BuildCustomScalarLayout(categories).ok());
  categories = GoldenCategories();
  categories[0].charts[0].content = MultilineChart{};
  EXPECT_FALSE(BuildCustomScalarLayout(categories).ok());
  categories[0].charts[0].content = MarginChart{{{"v", "", "u"}}};
  EXPECT_FALSE(BuildCustomScalarLayout(categories).ok());
  categories[0].charts.clear();
  EXPECT_FALSE(BuildCustomScalarLayout(categories).ok());
  categories = GoldenCategories();
  categories[0].charts[0].content = MultilineChart{{"loss/.*", "acc/(train"}};
  const absl::Status status = BuildCustomScalarLayout(categories).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("acc/(train"), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("train vs val"), absl::string_view::npos) << status;
}

TEST(CustomScalarsGoldenTest, LayoutMatchesTensorBoardByteForByte) {
  const std::vector<tb::Event> events = ReadGoldenEvents("custom_scalars");
  const tb::Summary::Value* golden = FindValue(events, kCustomScalarsConfigTag, 0);
  ASSERT_NE(golden, nullptr);
  absl::StatusOr<tb::Layout> layout = BuildCustomScalarLayout(GoldenCategories());
  ASSERT_TRUE(layout.ok()) << layout.status();
  tb::Summary::Value ours = CustomScalarsLayoutValue(*layout);
  ExpectAndClearDataClass(tb::DATA_CLASS_TENSOR, &ours);
  ExpectSameBytes(ours, *golden);
}

}  // namespace
}  // namespace tblog
