#include "engine/media/text_summary.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "golden_util.h"

namespace tblog {
namespace {

// The golden files leave data_class unset (the loaders infer TENSOR from the
// plugin name); we set it. Everything else must match byte for byte.
void ExpectSameExceptDataClass(tb::Summary::Value ours, const tb::Summary::Value& golden) {
  EXPECT_EQ(ours.metadata().data_class(), tb::DATA_CLASS_TENSOR);
  EXPECT_EQ(golden.metadata().data_class(), tb::DATA_CLASS_UNKNOWN);
  ours.mutable_metadata()->clear_data_class();
  EXPECT_EQ(ours.SerializeAsString(), golden.SerializeAsString())
      << "ours:\n" << ours.DebugString() << "golden:\n" << golden.DebugString();
}

TEST(TextSummaryTest, MatchesGoldenTextV2) {
  const auto events = ReadGoldenEvents("text_v2");
  const tb::Summary::Value* step0 = FindValue(events, "notes", 0);
  const tb::Summary::Value* step1 = FindValue(events, "notes", 1);
  ASSERT_NE(step0, nullptr);
  ASSERT_NE(step1, nullptr);
  ExpectSameExceptDataClass(*MakeTextSummary("notes", "hello **world**"), *step0);
  ExpectSameExceptDataClass(*MakeTextSummary("notes", "second step"), *step1);
}

TEST(TextSummaryTest, MatchesGoldenTorchText) {
  const auto events = ReadGoldenEvents("torch_text");
  const tb::Summary::Value* golden = FindValue(events, "notes/text_summary", 0);
  ASSERT_NE(golden, nullptr);
  absl::StatusOr<tb::Summary::Value> ours = MakeTorchTextSummary("notes", "hello **world**");
  ASSERT_TRUE(ours.ok()) << ours.status();
  ExpectSameExceptDataClass(*ours, *golden);
}

TEST(TextSummaryTest, TablesHaveRankOneOrTwo) {
  const std::vector<std::string> cells = {"a", "b", "c", "d", "e", "f"};
  absl::StatusOr<tb::Summary::Value> table = MakeTextTableSummary("t", cells, 2, 3);
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->tensor().tensor_shape().dim_size(), 2);
  EXPECT_EQ(table->tensor().tensor_shape().dim(0).size(), 2);
  EXPECT_EQ(table->tensor().tensor_shape().dim(1).size(), 3);
  EXPECT_EQ(table->tensor().string_val(4), "e");
  absl::StatusOr<tb::Summary::Value> list = MakeTextTableSummary("t", cells, 6);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->tensor().tensor_shape().dim_size(), 1);
  EXPECT_FALSE(MakeTextTableSummary("t", cells, 4, 2).ok());
  EXPECT_FALSE(MakeTextTableSummary("t", cells, 5).ok());
  EXPECT_FALSE(MakeTextTableSummary("t", {}, 0).ok());
  const std::vector<std::string> bad = {"ok", "\xC3"};
  absl::StatusOr<tb::Summary::Value> bad_cell = MakeTextTableSummary("t", bad, 2);
  ASSERT_FALSE(bad_cell.ok());
  EXPECT_NE(bad_cell.status().message().find("cell 1"), std::string_view::npos);
}

TEST(TextSummaryTest, Utf8ValidationNamesTheOffset) {
  EXPECT_TRUE(ValidateUtf8("plain ascii").ok());
  EXPECT_TRUE(ValidateUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80").ok());  // é € 😀
  struct Case {
    std::string text;
    std::string offset;
  };
  const std::vector<Case> cases = {
      {"ab\xFF", "offset 2"},                 // never a lead byte
      {"abc\xC3", "offset 3"},                // truncated
      {"a\xE2\x28\xA1", "offset 2"},          // bad continuation at byte 2
      {"\xC0\xAF", "offset 0"},               // overlong '/'
      {"x\xED\xA0\x80", "offset 1"},          // surrogate U+D800
      {"\xF4\x90\x80\x80", "offset 0"},       // above U+10FFFF
  };
  for (const Case& c : cases) {
    const absl::Status status = ValidateUtf8(c.text);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.offset;
    EXPECT_NE(status.message().find(c.offset), std::string_view::npos) << status;
  }
  EXPECT_FALSE(MakeTextSummary("notes", "bad \x80").ok());
  EXPECT_FALSE(MakeTextSummary("", "x").ok());
  EXPECT_FALSE(MakeTorchTextSummary("", "x").ok());
}

}  // namespace
}  // namespace tblog
