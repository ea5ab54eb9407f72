// RecordConverter's dispatch: the fields every record kind shares, thread
// safety, and whole Events against the golden files of the reference writers.
// Each record kind has its own convert_<kind>_test.cc.
#include "daemon/record_converter.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "convert_test_util.h"
#include "engine/histogram/parallel.h"
#include "gmock/gmock.h"
#include "golden_util.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

// ---------------------------------------------------------------------------
// Common fields

TEST_F(RecordConverterTest, ScalarTensorStyleCarriesStepWallTimeAndMetadata) {
  v1::Record record = Base("loss/train", 7);
  record.set_subrun("train");
  record.set_display_name("Training loss");
  record.set_description("mean over the batch");
  record.mutable_scalar()->set_value(0.25f);
  const Converted out = Ok(record);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].subrun, "train");
  const tb::Event event = ParseEvent(out.events[0]);
  EXPECT_EQ(event.step(), 7);
  EXPECT_EQ(event.wall_time(), 1700000007.0);
  const tb::Summary::Value& value = event.summary().value(0);
  EXPECT_EQ(value.tag(), "loss/train");
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "scalars");
  EXPECT_EQ(value.metadata().display_name(), "Training loss");
  EXPECT_EQ(value.metadata().summary_description(), "mean over the batch");
  EXPECT_EQ(value.tensor().dtype(), tb::DT_FLOAT);
  ASSERT_EQ(value.tensor().float_val_size(), 1);
  EXPECT_EQ(value.tensor().float_val(0), 0.25f);
}

TEST_F(RecordConverterTest, ScalarSimpleValueStyle) {
  v1::Record record = Base("lr");
  record.mutable_scalar()->set_value(1e-3f);
  record.mutable_scalar()->set_style(v1::SCALAR_STYLE_SIMPLE_VALUE);
  const tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.value_case(), tb::Summary::Value::kSimpleValue);
  EXPECT_EQ(value.simple_value(), 1e-3f);
  EXPECT_FALSE(value.has_metadata());
}

TEST_F(RecordConverterTest, ZeroWallTimeIsReceiveTimeAndNegativeStepIsKept) {
  v1::Record record = Base("x", -5);
  record.set_wall_time(0);
  record.mutable_scalar()->set_value(std::numeric_limits<float>::quiet_NaN());
  const Converted out = Ok(record);
  const tb::Event event = ParseEvent(out.events[0]);
  EXPECT_EQ(event.wall_time(), kReceiveTime);
  EXPECT_EQ(event.step(), -5);
  EXPECT_TRUE(std::isnan(event.summary().value(0).tensor().float_val(0)));
}

TEST_F(RecordConverterTest, RejectsBadCommonFields) {
  ExpectInvalid(Base("x"), {"record", "kind"});

  v1::Record nul = Base(std::string("lo\0ss", 5));
  nul.mutable_scalar();
  ExpectInvalid(nul, {"scalar", "tag", "U+0000 at byte 2"});

  v1::Record empty_tag = Base("");
  empty_tag.mutable_scalar();
  ExpectInvalid(empty_tag, {"tag is empty"});

  v1::Record escape = Base("x");
  escape.set_subrun("../../etc");
  escape.mutable_scalar();
  ExpectInvalid(escape, {"scalar \"x\"", "subrun", "not allowed"});

  v1::Record absolute = Base("x");
  absolute.set_subrun("/tmp/x");
  absolute.mutable_scalar();
  ExpectInvalid(absolute, {"subrun", "absolute"});

  for (double bad : {std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::quiet_NaN()}) {
    v1::Record wall = Base("x");
    wall.set_wall_time(bad);
    wall.mutable_scalar();
    ExpectInvalid(wall, {"wall_time", "finite"});
  }

  v1::Record style = Base("x");
  style.mutable_scalar()->set_style(static_cast<v1::ScalarStyle>(7));
  ExpectInvalid(style, {"style", "unknown enum value 7"});

  v1::Record display = Base("x");
  display.set_display_name("a\x01");
  display.mutable_scalar();
  ExpectInvalid(display, {"display_name", "control character"});

  v1::Record description = Base("x");
  description.set_description(std::string(limits_.max_text_bytes + 1, 'd'));
  description.mutable_scalar();
  ExpectInvalid(description, {"description", "more than the limit"});
}

// ---------------------------------------------------------------------------
// Thread safety

TEST_F(RecordConverterTest, ConvertIsSafeFromManyThreads) {
  ThreadParallelRunner runner(2);
  const RecordConverter shared(limits_, &runner);
  v1::Record record = Base("concurrent");
  *record.mutable_histogram()->mutable_values() = Floats({200000}, Ramp(200000, 0.01f));
  absl::StatusOr<Converted> expected = converter_.Convert(record, kReceiveTime);
  ASSERT_TRUE(expected.ok());
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      absl::StatusOr<Converted> out = shared.Convert(record, kReceiveTime);
      if (out.ok()) results[t] = out->events[0].event;
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& result : results) EXPECT_EQ(result, expected->events[0].event);
}

// ---------------------------------------------------------------------------
// Golden files: the converter's whole Event equals the one TensorBoard's or
// PyTorch's writer wrote (every golden wall_time is 1700000000 + step), which
// checks that each API style maps onto the writer it names.

// The golden event holding `tag` at `step`, serialized; "" (and a failure) if none.
std::string GoldenEventBytes(const std::string& case_dir, const std::string& tag, int64_t step) {
  for (const tb::Event& event : ReadGoldenEvents(case_dir)) {
    if (event.step() != step || !event.has_summary()) continue;
    for (const tb::Summary::Value& value : event.summary().value()) {
      if (value.tag() == tag) return event.SerializeAsString();
    }
  }
  ADD_FAILURE() << case_dir << ": no value " << tag << " at step " << step;
  return "";
}

std::string ConvertedEventBytes(const v1::Record& record) {
  const Limits limits;
  absl::StatusOr<Converted> out = RecordConverter(limits, nullptr).Convert(record, kReceiveTime);
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok() || out->events.size() != 1) return "";
  return out->events[0].event;
}

// `event_bytes` with data_class cleared on its values. The engine sets
// data_class TENSOR on text and PR-curve values, which the reference writers
// leave unset (the loaders infer the same class); everything else must match.
std::string WithoutDataClass(const std::string& event_bytes) {
  tb::Event event;
  EXPECT_TRUE(event.ParseFromString(event_bytes));
  for (tb::Summary::Value& value : *event.mutable_summary()->mutable_value()) {
    EXPECT_EQ(value.metadata().data_class(), tb::DATA_CLASS_TENSOR) << value.tag();
    value.mutable_metadata()->clear_data_class();
  }
  return event.SerializeAsString();
}

TEST(RecordConverterGoldenTest, ScalarsSimpleValueMatchTorch) {
  for (int64_t step = 0; step < 5; ++step) {
    v1::Record record = Base("loss", step);
    record.mutable_scalar()->set_value(static_cast<float>(1.0 / static_cast<double>(step + 1)));
    record.mutable_scalar()->set_style(v1::SCALAR_STYLE_SIMPLE_VALUE);
    EXPECT_EQ(ConvertedEventBytes(record), GoldenEventBytes("scalars_v1", "loss", step));
  }
}

TEST(RecordConverterGoldenTest, ExponentialHistogramMatchesTorch) {
  v1::Record record = Base("weights/normal", 0);
  *record.mutable_histogram()->mutable_values() =
      Floats({10000}, ReadGoldenArray<float>("normal_10000.f32"));
  record.mutable_histogram()->set_layout(v1::HISTOGRAM_LAYOUT_EXPONENTIAL);
  EXPECT_EQ(ConvertedEventBytes(record), GoldenEventBytes("histogram_v1", "weights/normal", 0));
}

TEST(RecordConverterGoldenTest, PrCurvesMatchTensorBoardAndTorch) {
  v1::Record counts = Base("pr/class0", 0);
  v1::PrCounts* c = counts.mutable_pr_curve()->mutable_counts();
  for (float v : {10.f, 8.f, 5.f}) c->add_true_positives(v);
  for (float v : {5.f, 3.f, 1.f}) c->add_false_positives(v);
  for (float v : {0.f, 2.f, 4.f}) c->add_true_negatives(v);
  for (float v : {0.f, 2.f, 5.f}) c->add_false_negatives(v);
  EXPECT_EQ(WithoutDataClass(ConvertedEventBytes(counts)),
            GoldenEventBytes("pr_curve", "pr/class0", 0));

  v1::Record predictions = Base("pr", 0);
  v1::PrPredictions* p = predictions.mutable_pr_curve()->mutable_predictions();
  *p->mutable_labels() = Floats({500}, ReadGoldenArray<float>("pr_labels_500.f32"));
  *p->mutable_predictions() = Floats({500}, ReadGoldenArray<float>("pr_predictions_500.f32"));
  EXPECT_EQ(WithoutDataClass(ConvertedEventBytes(predictions)),
            GoldenEventBytes("torch_pr_curve", "pr", 0));
}

TEST(RecordConverterGoldenTest, TorchTextAndAudio) {
  const std::vector<tb::Event> text_events = ReadGoldenEvents("torch_text");
  const tb::Summary::Value* golden_text = FindValue(text_events, "notes/text_summary", 0);
  ASSERT_NE(golden_text, nullptr);
  v1::Record text = Base("notes", 0);
  text.mutable_text()->set_markdown(golden_text->tensor().string_val(0));
  text.mutable_text()->set_torch_style(true);
  EXPECT_EQ(WithoutDataClass(ConvertedEventBytes(text)),
            GoldenEventBytes("torch_text", "notes/text_summary", 0));

  v1::Record audio = Base("sine", 0);
  *audio.mutable_audio()->mutable_samples() =
      Floats({1600}, ReadGoldenArray<float>("sine_440hz_16k_1600.f32"));
  audio.mutable_audio()->set_sample_rate(16000);
  audio.mutable_audio()->set_torch_style(true);
  EXPECT_EQ(ConvertedEventBytes(audio), GoldenEventBytes("torch_audio", "sine", 0));
}

TEST(RecordConverterGoldenTest, EmbeddingFilesMatchTorch) {
  const std::string dir = std::string(TBLOG_GOLDEN_DIR) + "/torch_embedding/";
  v1::Record record = Base("emb", 0);
  *record.mutable_embedding()->mutable_matrix() =
      Floats({10, 4}, ReadGoldenArray<float>("embedding_10x4.f32"));
  const std::string metadata = ReadFileBytes(dir + "00000/emb/metadata.tsv");
  for (absl::string_view label : absl::StrSplit(metadata, '\n', absl::SkipEmpty())) {
    record.mutable_embedding()->add_metadata(std::string(label));
  }
  const Limits limits;
  absl::StatusOr<Converted> out = RecordConverter(limits, nullptr).Convert(record, kReceiveTime);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->files.size(), 3u);
  for (const SideFile& file : out->files) {
    EXPECT_EQ(file.contents, ReadFileBytes(dir + file.relative_path)) << file.relative_path;
  }
}

}  // namespace
}  // namespace tblog::daemon
