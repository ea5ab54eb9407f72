#include "batch_builder.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace tblog {
namespace {

// A columns record's dictionary: (tag, subrun) of each entry, in order.
using Entries = std::vector<std::pair<std::string, std::string>>;
Entries Dictionary(const v1::ScalarColumns& columns) {
  Entries entries;
  for (const auto& entry : columns.tags()) entries.emplace_back(entry.tag(), entry.subrun());
  return entries;
}

// A repeated numeric field as a vector, to compare it whole.
template <typename T>
std::vector<T> Values(const google::protobuf::RepeatedField<T>& field) {
  return std::vector<T>(field.begin(), field.end());
}

TEST(BatchBuilderTest, ScalarsGoIntoOneColumnsRecordWithADictionary) {
  BatchBuilder builder;
  builder.AddScalar("loss", "", 1, 0.5f, 100.0);
  builder.AddScalar("acc", "", 1, 0.25f, 100.5);
  builder.AddScalar("loss", "", 2, 0.4f, 101.0);
  builder.AddScalar("loss", "train", 2, 0.3f, 101.0);
  EXPECT_EQ(builder.records(), 4u);
  EXPECT_EQ(builder.interned_tags(), 3u);

  const v1::WriteRequest batch = builder.TakeBatch();
  ASSERT_EQ(batch.records_size(), 1);
  ASSERT_TRUE(batch.records(0).has_scalars());
  const v1::ScalarColumns& columns = batch.records(0).scalars();
  EXPECT_EQ(Dictionary(columns), (Entries{{"loss", ""}, {"acc", ""}, {"loss", "train"}}));
  EXPECT_EQ(Values(columns.tag_index()), (std::vector<uint32_t>{0, 1, 0, 2}));
  EXPECT_EQ(Values(columns.steps()), (std::vector<int64_t>{1, 1, 2, 2}));
  EXPECT_EQ(Values(columns.values()), (std::vector<float>{0.5f, 0.25f, 0.4f, 0.3f}));
  EXPECT_EQ(Values(columns.wall_times()), (std::vector<double>{100.0, 100.5, 101.0, 101.0}));
}

// Tags are looked up by the address of their chars first: a buffer reused
// for another tag, or the same tag with another subrun, must still get its own
// dictionary entry.
TEST(BatchBuilderTest, ReusedTagBufferWithOtherContentsIsAnotherTag) {
  BatchBuilder builder;
  std::string tag = "loss";
  builder.AddScalar(tag, "", 1, 1.0f, 1.0);
  tag.assign("lost");  // same buffer (SSO), new contents
  builder.AddScalar(tag, "", 1, 2.0f, 1.0);
  builder.AddScalar(tag, "train", 1, 3.0f, 1.0);
  builder.AddScalar(tag, "", 2, 4.0f, 1.0);
  tag.assign("loss");
  builder.AddScalar(tag, "", 2, 5.0f, 1.0);
  EXPECT_EQ(builder.interned_tags(), 3u);

  const v1::WriteRequest batch = builder.TakeBatch();
  ASSERT_EQ(batch.records_size(), 1);
  const v1::ScalarColumns& columns = batch.records(0).scalars();
  EXPECT_EQ(Dictionary(columns), (Entries{{"loss", ""}, {"lost", ""}, {"lost", "train"}}));
  EXPECT_EQ(Values(columns.tag_index()), (std::vector<uint32_t>{0, 1, 2, 1, 0}));
}

TEST(BatchBuilderTest, OtherRecordsKeepTheirPlaceBetweenColumns) {
  BatchBuilder builder;
  builder.AddScalar("loss", "", 1, 1.0f, 1.0);
  v1::Record text;
  text.set_tag("notes");
  text.mutable_text()->set_markdown("hi");
  builder.AddRecord(std::move(text), 10);
  builder.AddScalar("acc", "", 2, 2.0f, 2.0);
  builder.AddScalar("loss", "", 2, 3.0f, 2.0);

  const v1::WriteRequest batch = builder.TakeBatch();
  ASSERT_EQ(batch.records_size(), 3);
  EXPECT_TRUE(batch.records(0).has_scalars());
  EXPECT_EQ(batch.records(1).tag(), "notes");
  ASSERT_TRUE(batch.records(2).has_scalars());
  // A new columns record has its own dictionary, in first-use order.
  const v1::ScalarColumns& second = batch.records(2).scalars();
  EXPECT_EQ(Dictionary(second), (Entries{{"acc", ""}, {"loss", ""}}));
  EXPECT_EQ(Values(second.tag_index()), (std::vector<uint32_t>{0, 1}));
}

TEST(BatchBuilderTest, TakeBatchStartsAnEmptyBatchAndKeepsInternedTags) {
  BatchBuilder builder(v1::SCALAR_STYLE_SIMPLE_VALUE);
  EXPECT_TRUE(builder.empty());
  builder.AddScalar("loss", "", 1, 1.0f, 1.0);
  const size_t one_point = builder.bytes();
  EXPECT_GE(one_point, BatchBuilder::kScalarPointBytes);
  builder.AddScalar("loss", "", 2, 1.0f, 1.0);
  EXPECT_EQ(builder.bytes(), one_point + BatchBuilder::kScalarPointBytes);

  v1::WriteRequest first = builder.TakeBatch();
  EXPECT_EQ(first.records(0).scalars().style(), v1::SCALAR_STYLE_SIMPLE_VALUE);
  EXPECT_TRUE(builder.empty());
  EXPECT_EQ(builder.bytes(), 0u);

  builder.AddScalar("loss", "", 3, 1.0f, 1.0);
  const v1::WriteRequest second = builder.TakeBatch();
  EXPECT_EQ(builder.interned_tags(), 1u);
  // The tag is sent again in the new batch's dictionary: batches stand alone.
  EXPECT_EQ(Dictionary(second.records(0).scalars()), (Entries{{"loss", ""}}));
  EXPECT_EQ(Values(second.records(0).scalars().tag_index()), (std::vector<uint32_t>{0}));
}

TEST(BatchBuilderTest, TagAndSubrunDoNotCollide) {
  BatchBuilder builder;
  // "a" in sub-run "b" versus "b\0a"-style concatenations: distinct keys.
  builder.AddScalar("a", "b", 1, 1.0f, 1.0);
  builder.AddScalar("b", "a", 1, 1.0f, 1.0);
  builder.AddScalar("ab", "", 1, 1.0f, 1.0);
  EXPECT_EQ(builder.interned_tags(), 3u);
}

}  // namespace
}  // namespace tblog
