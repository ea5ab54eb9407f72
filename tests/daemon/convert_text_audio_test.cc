// Text and audio records (convert/summaries.h) through
// RecordConverter::Convert.
#include "daemon/record_converter.h"

#include <cmath>
#include <vector>

#include "convert_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

using ::testing::ElementsAre;

TEST_F(RecordConverterTest, TextMarkdownTorchAndTable) {
  v1::Record record = Base("notes");
  record.mutable_text()->set_markdown("# Hello\n*world*");
  tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.tag(), "notes");
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "text");
  EXPECT_TRUE(Dims(value.tensor()).empty());
  EXPECT_EQ(value.tensor().string_val(0), "# Hello\n*world*");

  record.mutable_text()->set_torch_style(true);
  value = OnlyValue(Ok(record));
  EXPECT_EQ(value.tag(), "notes/text_summary");
  EXPECT_THAT(Dims(value.tensor()), ElementsAre(1));

  v1::Record table = Base("table");
  v1::StringTable* cells = table.mutable_text()->mutable_table();
  cells->add_shape(2);
  cells->add_shape(2);
  for (const char* cell : {"a", "b", "c", "d"}) cells->add_cells(cell);
  value = OnlyValue(Ok(table));
  EXPECT_THAT(Dims(value.tensor()), ElementsAre(2, 2));
  EXPECT_EQ(value.tensor().string_val(3), "d");
}

TEST_F(RecordConverterTest, TextRejectsBadInput) {
  v1::Record utf8 = Base("t");
  utf8.mutable_text()->set_markdown("bad \xff");
  ExpectInvalid(utf8, {"text \"t\"", "markdown", "invalid UTF-8 at byte 4"});

  v1::Record none = Base("t");
  none.mutable_text();
  ExpectInvalid(none, {"content", "neither markdown nor table"});

  v1::Record mismatch = Base("t");
  mismatch.mutable_text()->mutable_table()->add_shape(3);
  mismatch.mutable_text()->mutable_table()->add_cells("only one");
  ExpectInvalid(mismatch, {"table.cells", "has 1 cells", "needs 3"});

  v1::Record rank = Base("t");
  for (int i = 0; i < 3; ++i) rank.mutable_text()->mutable_table()->add_shape(1);
  rank.mutable_text()->mutable_table()->add_cells("x");
  ExpectInvalid(rank, {"table.shape", "rank 1 or 2"});

  v1::Record torch_table = Base("t");
  torch_table.mutable_text()->mutable_table()->add_shape(1);
  torch_table.mutable_text()->mutable_table()->add_cells("x");
  torch_table.mutable_text()->set_torch_style(true);
  ExpectInvalid(torch_table, {"torch_style"});
}

TEST_F(RecordConverterTest, AudioBothStyles) {
  v1::Record record = Base("speech");
  *record.mutable_audio()->mutable_samples() = Floats({100}, Ramp(100, 0.01f));
  record.mutable_audio()->set_sample_rate(16000);
  tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "audio");
  ASSERT_EQ(value.tensor().string_val_size(), 1);
  EXPECT_EQ(value.tensor().string_val(0).substr(0, 4), "RIFF");
  EXPECT_EQ(value.tensor().string_val(0).size(), 44u + 200u);

  record.mutable_audio()->set_torch_style(true);
  value = OnlyValue(Ok(record));
  ASSERT_TRUE(value.has_audio());
  EXPECT_EQ(value.audio().sample_rate(), 16000);
  EXPECT_EQ(value.audio().length_frames(), 100);
  EXPECT_EQ(value.audio().num_channels(), 1);
}

TEST_F(RecordConverterTest, AudioRejectsBadInput) {
  v1::Record nan = Base("a");
  *nan.mutable_audio()->mutable_samples() = Floats({2}, {0.0f, std::nanf("")});
  nan.mutable_audio()->set_sample_rate(8000);
  ExpectInvalid(nan, {"audio \"a\"", "samples"});

  v1::Record rate = Base("a");
  *rate.mutable_audio()->mutable_samples() = Floats({2}, {0, 0});
  ExpectInvalid(rate, {"sample_rate", "> 0"});

  v1::Record dtype = Base("a");
  *dtype.mutable_audio()->mutable_samples() =
      MakeTensor(v1::DTYPE_INT16, {2}, std::vector<int16_t>{1, 2});
  dtype.mutable_audio()->set_sample_rate(8000);
  ExpectInvalid(dtype, {"samples", "dtype int16"});

  v1::Record rank = Base("a");
  *rank.mutable_audio()->mutable_samples() = Floats({1, 1, 1}, {0});
  rank.mutable_audio()->set_sample_rate(8000);
  ExpectInvalid(rank, {"samples", "[frames] or [frames, channels]"});

  v1::Record unset = Base("a");
  unset.mutable_audio()->set_sample_rate(8000);
  ExpectInvalid(unset, {"samples", "not set"});
}

}  // namespace
}  // namespace tblog::daemon
