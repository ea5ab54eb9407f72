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

// The stream dictionary entries a batch defines, and the first id.
Entries Definitions(const v1::WriteRequest& batch) {
  Entries entries;
  for (const auto& entry : batch.stream_tags()) entries.emplace_back(entry.tag(), entry.subrun());
  return entries;
}

// A repeated numeric field as a vector, to compare it whole.
template <typename T>
std::vector<T> Values(const google::protobuf::RepeatedField<T>& field) {
  return std::vector<T>(field.begin(), field.end());
}

TEST(BatchBuilderTest, ScalarsGoIntoOneColumnsRecordThatDefinesItsNewTags) {
  BatchBuilder builder;
  builder.AddScalar("loss", "", 1, 0.5f, 100.0);
  builder.AddScalar("acc", "", 1, 0.25f, 100.5);
  builder.AddScalar("loss", "", 2, 0.4f, 101.0);
  builder.AddScalar("loss", "train", 2, 0.3f, 101.0);
  EXPECT_EQ(builder.records(), 4u);
  EXPECT_EQ(builder.interned_tags(), 3u);
  EXPECT_EQ(builder.stream_tags(), 3u);

  const v1::WriteRequest batch = builder.TakeBatch();
  EXPECT_EQ(batch.stream_tags_first_id(), 0u);
  EXPECT_EQ(Definitions(batch), (Entries{{"loss", ""}, {"acc", ""}, {"loss", "train"}}));
  ASSERT_EQ(batch.records_size(), 1);
  ASSERT_TRUE(batch.records(0).has_scalars());
  const v1::ScalarColumns& columns = batch.records(0).scalars();
  EXPECT_TRUE(columns.stream_tag_ids());
  EXPECT_EQ(columns.tags_size(), 0);
  EXPECT_EQ(Values(columns.tag_index()), (std::vector<uint32_t>{0, 1, 0, 2}));
  EXPECT_EQ(Values(columns.steps()), (std::vector<int64_t>{1, 1, 2, 2}));
  EXPECT_EQ(Values(columns.values()), (std::vector<float>{0.5f, 0.25f, 0.4f, 0.3f}));
  EXPECT_EQ(Values(columns.wall_times()), (std::vector<double>{100.0, 100.5, 101.0, 101.0}));
}

// Tags are looked up by the address of their chars first: a buffer reused
// for another tag, or the same tag with another subrun, must still get its own
// id.
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
  EXPECT_EQ(Definitions(batch), (Entries{{"loss", ""}, {"lost", ""}, {"lost", "train"}}));
  ASSERT_EQ(batch.records_size(), 1);
  const v1::ScalarColumns& columns = batch.records(0).scalars();
  EXPECT_EQ(Values(columns.tag_index()), (std::vector<uint32_t>{0, 1, 2, 1, 0}));
}

// Past the recent-tags cache (thousands of tags in rotation), by address.
TEST(BatchBuilderTest, ManyTagsInRotationKeepTheirIds) {
  BatchBuilder builder;
  std::vector<std::string> tags;
  for (int t = 0; t < 3000; ++t) tags.push_back("t" + std::to_string(t));
  for (int round = 0; round < 3; ++round) {
    for (const std::string& tag : tags) builder.AddScalar(tag, "", round, 1.0f, 1.0);
  }
  builder.AddScalar(std::string("t17"), "", 3, 1.0f, 1.0);  // another address
  EXPECT_EQ(builder.interned_tags(), 3000u);
  const v1::WriteRequest batch = builder.TakeBatch();
  const v1::ScalarColumns& columns = batch.records(0).scalars();
  ASSERT_EQ(columns.tag_index_size(), 9001);
  for (int i = 0; i < 9000; ++i) ASSERT_EQ(columns.tag_index(i), static_cast<uint32_t>(i % 3000));
  EXPECT_EQ(columns.tag_index(9000), 17u);
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
  EXPECT_EQ(Definitions(batch), (Entries{{"loss", ""}, {"acc", ""}}));
  const v1::ScalarColumns& second = batch.records(2).scalars();
  EXPECT_EQ(Values(second.tag_index()), (std::vector<uint32_t>{1, 0}));
}

TEST(BatchBuilderTest, TakeBatchStartsAnEmptyBatchAndKeepsTheDictionary) {
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

  builder.AddScalar("acc", "", 3, 1.0f, 1.0);
  builder.AddScalar("loss", "", 3, 1.0f, 1.0);
  const v1::WriteRequest second = builder.TakeBatch();
  EXPECT_EQ(builder.interned_tags(), 2u);
  // Only the new tag is defined: "loss" was, by the first batch.
  EXPECT_EQ(second.stream_tags_first_id(), 1u);
  EXPECT_EQ(Definitions(second), (Entries{{"acc", ""}}));
  EXPECT_EQ(Values(second.records(0).scalars().tag_index()), (std::vector<uint32_t>{1, 0}));

  // A new stream starts with every id defined so far.
  v1::WriteRequest bind;
  std::vector<v1::WriteRequest> more;
  StreamTagMessages(builder, &bind, &more);
  EXPECT_EQ(bind.stream_tags_first_id(), 0u);
  EXPECT_EQ(Definitions(bind), (Entries{{"loss", ""}, {"acc", ""}}));
  EXPECT_TRUE(more.empty());
}

// Past the dictionary's cap (tblog.proto: 1 MiB of names, 65536 ids), tags
// go into columns with a batch-local dictionary; the order stays.
TEST(BatchBuilderTest, TagsPastTheCapUseBatchLocalDictionaries) {
  BatchBuilder builder;
  const std::string long_tag(250, 'x');
  int past_cap = 0;  // the first tag the dictionary had no room for
  for (int t = 0; builder.stream_tags() == static_cast<uint32_t>(t); ++t) {
    builder.AddScalar(long_tag + std::to_string(t), "", 1, 1.0f, 1.0);
    past_cap = t;
  }
  EXPECT_LT(builder.stream_tags(), 65536u);
  EXPECT_LE(Definitions(builder.TakeBatch()).size() * 250, size_t{1} << 20);
  builder.AddScalar(long_tag + "0", "", 2, 1.0f, 1.0);      // a stream id
  builder.AddScalar(long_tag + std::to_string(past_cap), "", 2, 1.0f, 1.0);  // past the cap
  builder.AddScalar("short", "", 2, 1.0f, 1.0);             // past it too: ids stay in order
  const v1::WriteRequest batch = builder.TakeBatch();
  EXPECT_EQ(batch.stream_tags_size(), 0);
  ASSERT_EQ(batch.records_size(), 2);
  EXPECT_TRUE(batch.records(0).scalars().stream_tag_ids());
  const v1::ScalarColumns& local = batch.records(1).scalars();
  EXPECT_FALSE(local.stream_tag_ids());
  EXPECT_EQ(Dictionary(local),
            (Entries{{long_tag + std::to_string(past_cap), ""}, {"short", ""}}));
  EXPECT_EQ(Values(local.tag_index()), (std::vector<uint32_t>{0, 1}));
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
