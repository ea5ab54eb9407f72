#include "daemon/record_converter.h"

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "engine/plugins/hparams_summary.h"
#include "engine/histogram/parallel.h"
#include "engine/media/png.h"
#include "engine/histogram/scalar_summary.h"
#include "engine/io/tensor_view.h"
#include "gmock/gmock.h"
#include "golden_util.h"
#include "gtest/gtest.h"
#include "tblog/tensorboard/event.pb.h"
#include "tblog/tensorboard/graph.pb.h"
#include "tblog/tensorboard/hparams.pb.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog::daemon {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr double kReceiveTime = 1800000000.0;

template <typename T>
v1::Tensor MakeTensor(v1::DType dtype, std::initializer_list<int64_t> shape,
                      const std::vector<T>& values) {
  v1::Tensor tensor;
  tensor.set_dtype(dtype);
  for (int64_t d : shape) tensor.add_shape(d);
  tensor.set_data(std::string(reinterpret_cast<const char*>(values.data()),
                              values.size() * sizeof(T)));
  return tensor;
}

v1::Tensor Floats(std::initializer_list<int64_t> shape, const std::vector<float>& values) {
  return MakeTensor(v1::DTYPE_FLOAT32, shape, values);
}

std::vector<float> Ramp(size_t n, float scale = 1.0f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) * scale;
  return v;
}

v1::Record Base(const std::string& tag, int64_t step = 3) {
  v1::Record record;
  record.set_tag(tag);
  record.set_step(step);
  record.set_wall_time(1700000000.0 + static_cast<double>(step));
  return record;
}

tb::Event ParseEvent(const EventOut& out) {
  tb::Event event;
  EXPECT_TRUE(event.ParseFromString(out.event));
  return event;
}

// The single summary value of a one-event conversion.
tb::Summary::Value OnlyValue(const Converted& converted) {
  EXPECT_EQ(converted.events.size(), 1u);
  if (converted.events.empty()) return {};
  const tb::Event event = ParseEvent(converted.events[0]);
  EXPECT_EQ(event.summary().value_size(), 1);
  return event.summary().value_size() == 1 ? event.summary().value(0) : tb::Summary::Value();
}

std::vector<int64_t> Dims(const tb::TensorProto& tensor) {
  std::vector<int64_t> dims;
  for (const auto& dim : tensor.tensor_shape().dim()) dims.push_back(dim.size());
  return dims;
}

class RecordConverterTest : public ::testing::Test {
 protected:
  Converted Ok(const v1::Record& record) {
    absl::StatusOr<Converted> out = converter_.Convert(record, kReceiveTime);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *std::move(out) : Converted{};
  }
  // Expects INVALID_ARGUMENT whose message holds every one of `parts`.
  void ExpectInvalid(const v1::Record& record, std::initializer_list<std::string> parts) {
    absl::StatusOr<Converted> out = converter_.Convert(record, kReceiveTime);
    ASSERT_FALSE(out.ok()) << record.DebugString();
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
    for (const std::string& part : parts) {
      EXPECT_THAT(std::string(out.status().message()), HasSubstr(part));
    }
  }

  Limits limits_;
  RecordConverter converter_{limits_, nullptr};
};

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
// Scalar columns

TEST_F(RecordConverterTest, ScalarColumnsBecomeOneEventPerPointInOrder) {
  v1::Record record;
  record.set_tag("ignored");
  v1::ScalarColumns* columns = record.mutable_scalars();
  columns->add_tags()->set_tag("loss");
  v1::ColumnTag* validation = columns->add_tags();
  validation->set_tag("loss");
  validation->set_subrun("validation");
  for (uint32_t index : {0u, 1u, 0u}) columns->add_tag_index(index);
  for (int64_t step : {1, 1, 2}) columns->add_steps(step);
  for (float value : {0.5f, 0.75f, 0.25f}) columns->add_values(value);
  for (double wall : {100.0, 0.0, 300.0}) columns->add_wall_times(wall);
  const Converted out = Ok(record);
  ASSERT_EQ(out.events.size(), 3u);
  EXPECT_EQ(out.events[0].subrun, "");
  EXPECT_EQ(out.events[1].subrun, "validation");
  EXPECT_EQ(out.events[2].subrun, "");
  const float values[] = {0.5f, 0.75f, 0.25f};
  const int64_t steps[] = {1, 1, 2};
  const double walls[] = {100.0, kReceiveTime, 300.0};
  for (size_t i = 0; i < 3; ++i) {
    const tb::Event event = ParseEvent(out.events[i]);
    EXPECT_EQ(event.step(), steps[i]);
    EXPECT_EQ(event.wall_time(), walls[i]);
    EXPECT_EQ(event.summary().value(0).tag(), "loss");
    EXPECT_EQ(event.summary().value(0).tensor().float_val(0), values[i]);
  }
}

TEST_F(RecordConverterTest, ScalarColumnsWithoutWallTimesUseReceiveTimeAndSimpleStyle) {
  v1::Record record;
  v1::ScalarColumns* columns = record.mutable_scalars();
  columns->add_tags()->set_tag("acc");
  columns->set_style(v1::SCALAR_STYLE_SIMPLE_VALUE);
  columns->add_tag_index(0);
  columns->add_steps(10);
  columns->add_values(0.9f);
  const Converted out = Ok(record);
  ASSERT_EQ(out.events.size(), 1u);
  const tb::Event event = ParseEvent(out.events[0]);
  EXPECT_EQ(event.wall_time(), kReceiveTime);
  EXPECT_EQ(event.summary().value(0).simple_value(), 0.9f);
}

// Scalar columns' events are encoded by hand, by the engine's
// ScalarEventEncoder: scalar_event_test checks its bytes against protobuf for
// every kind of step, wall time, value and tag. Here, that the converter gives
// it each point's tag, style, step, value and wall time (0 standing for the
// receive time, and a receive time of 0 left out of the Event): the events
// are the very bytes protobuf writes for the Event built from the engine's
// scalar values.
TEST_F(RecordConverterTest, ScalarColumnsEventsAreByteIdenticalToProtobuf) {
  const std::vector<std::string> tags = {"a", std::string(256, 'y'), "\xc3\xa9t\xc3\xa9"};
  const std::vector<int64_t> steps = {0, -1, 128, std::numeric_limits<int64_t>::max()};
  const std::vector<float> values = {-0.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f,
                                     -std::numeric_limits<float>::infinity()};
  const std::vector<double> walls = {0.0, -0.0, 1700000000.125};
  for (const v1::ScalarStyle style : {v1::SCALAR_STYLE_TENSOR, v1::SCALAR_STYLE_SIMPLE_VALUE}) {
    // A receive time of 0 leaves wall_time out of the Event, as protobuf does.
    for (const double receive_time : {kReceiveTime, 0.0}) {
      v1::Record record;
      v1::ScalarColumns* columns = record.mutable_scalars();
      columns->set_style(style);
      for (const std::string& tag : tags) columns->add_tags()->set_tag(tag);
      const size_t points = steps.size() * values.size();
      for (size_t i = 0; i < points; ++i) {
        columns->add_tag_index(static_cast<uint32_t>(i % tags.size()));
        columns->add_steps(steps[i % steps.size()]);
        columns->add_values(values[(i / steps.size()) % values.size()]);
        columns->add_wall_times(walls[i % walls.size()]);
      }
      absl::StatusOr<Converted> out = converter_.Convert(record, receive_time);
      ASSERT_TRUE(out.ok()) << out.status();
      ASSERT_EQ(out->events.size(), points);
      for (size_t i = 0; i < points; ++i) {
        const std::string& tag = tags[i % tags.size()];
        const float value = columns->values(static_cast<int>(i));
        tb::Event expected;
        const double wall = walls[i % walls.size()];
        expected.set_wall_time(wall == 0 ? receive_time : wall);
        expected.set_step(steps[i % steps.size()]);
        *expected.mutable_summary()->add_value() = style == v1::SCALAR_STYLE_TENSOR
                                                       ? ScalarValue(tag, value)
                                                       : SimpleScalarValue(tag, value);
        ASSERT_EQ(out->events[i].event, expected.SerializeAsString())
            << "point " << i << " style " << style << " receive_time " << receive_time;
      }
    }
  }
}

TEST_F(RecordConverterTest, ScalarColumnsRejectInconsistentColumns) {
  const auto make = [] {
    v1::Record record;
    v1::ScalarColumns* columns = record.mutable_scalars();
    columns->add_tags()->set_tag("a");
    columns->add_tag_index(0);
    columns->add_steps(1);
    columns->add_values(1.0f);
    return record;
  };
  v1::Record lengths = make();
  lengths.mutable_scalars()->add_steps(2);
  ExpectInvalid(lengths, {"scalars", "steps", "must agree"});

  v1::Record index = make();
  index.mutable_scalars()->set_tag_index(0, 1);
  ExpectInvalid(index, {"tag_index[0]", "out of range"});

  v1::Record tag = make();
  tag.mutable_scalars()->add_tags()->set_tag("bad\n");
  ExpectInvalid(tag, {"tags[1]", "control character"});

  v1::Record subrun = make();
  subrun.mutable_scalars()->mutable_tags(0)->set_subrun("..");
  ExpectInvalid(subrun, {"tags[0]", "subrun", "not allowed"});

  v1::Record walls = make();
  walls.mutable_scalars()->add_wall_times(1.0);
  walls.mutable_scalars()->add_wall_times(2.0);
  ExpectInvalid(walls, {"wall_times", "one per point"});

  v1::Record nan_wall = make();
  nan_wall.mutable_scalars()->add_wall_times(std::nan(""));
  ExpectInvalid(nan_wall, {"wall_times[0]", "finite"});

  v1::Record style = make();
  style.mutable_scalars()->set_style(static_cast<v1::ScalarStyle>(3));
  ExpectInvalid(style, {"style", "unknown enum value 3"});
}

// ---------------------------------------------------------------------------
// Histograms

TEST_F(RecordConverterTest, HistogramUniformAndExponential) {
  v1::Record record = Base("weights/w1");
  *record.mutable_histogram()->mutable_values() = Floats({2, 3}, {1, 2, 3, 4, 5, 6});
  tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "histograms");
  EXPECT_EQ(value.tensor().dtype(), tb::DT_DOUBLE);
  EXPECT_THAT(Dims(value.tensor()), ElementsAre(30, 3));

  record.mutable_histogram()->set_bucket_count(5);
  value = OnlyValue(Ok(record));
  EXPECT_THAT(Dims(value.tensor()), ElementsAre(5, 3));

  record.mutable_histogram()->set_bucket_count(0);
  record.mutable_histogram()->set_layout(v1::HISTOGRAM_LAYOUT_EXPONENTIAL);
  value = OnlyValue(Ok(record));
  ASSERT_TRUE(value.has_histo());
  EXPECT_EQ(value.histo().num(), 6);
  EXPECT_EQ(value.histo().max(), 6);
}

TEST_F(RecordConverterTest, HistogramWithParallelRunnerMatchesSerial) {
  ThreadParallelRunner runner(3);
  const RecordConverter parallel(limits_, &runner);
  v1::Record record = Base("big");
  *record.mutable_histogram()->mutable_values() = Floats({300000}, Ramp(300000, 0.001f));
  absl::StatusOr<Converted> serial = converter_.Convert(record, kReceiveTime);
  absl::StatusOr<Converted> split = parallel.Convert(record, kReceiveTime);
  ASSERT_TRUE(serial.ok() && split.ok());
  EXPECT_EQ(serial->events[0].event, split->events[0].event);
}

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

TEST_F(RecordConverterTest, HistogramNonFiniteValuesAreCountedInWarnings) {
  v1::Record record = Base("w");
  *record.mutable_histogram()->mutable_values() =
      Floats({3}, {1.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f});
  const Converted out = Ok(record);
  ASSERT_EQ(out.warnings.size(), 1u);
  EXPECT_THAT(out.warnings[0], HasSubstr("1 NaN/Inf"));
}

TEST_F(RecordConverterTest, HistogramRejectsBadTensors) {
  v1::Record size = Base("weights/w1");
  *size.mutable_histogram()->mutable_values() = Floats({2, 3}, {1, 2, 3});
  absl::StatusOr<Converted> out = converter_.Convert(size, kReceiveTime);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(),
            "histogram \"weights/w1\": values: tensor data is 12 bytes but shape [2,3] and "
            "dtype float32 need 24");

  v1::Record unset = Base("w");
  unset.mutable_histogram();
  ExpectInvalid(unset, {"histogram \"w\"", "values", "not set"});

  v1::Record no_dtype = Base("w");
  *no_dtype.mutable_histogram()->mutable_values() = Floats({1}, {1});
  no_dtype.mutable_histogram()->mutable_values()->set_dtype(v1::DTYPE_UNSPECIFIED);
  ExpectInvalid(no_dtype, {"values", "dtype is not set"});

  v1::Record unknown_dtype = Base("w");
  *unknown_dtype.mutable_histogram()->mutable_values() = Floats({1}, {1});
  unknown_dtype.mutable_histogram()->mutable_values()->set_dtype(static_cast<v1::DType>(42));
  ExpectInvalid(unknown_dtype, {"values", "unknown enum value 42"});

  v1::Record negative = Base("w");
  *negative.mutable_histogram()->mutable_values() = Floats({-1}, {});
  ExpectInvalid(negative, {"values", "negative dim"});

  v1::Record buckets = Base("w");
  *buckets.mutable_histogram()->mutable_values() = Floats({1}, {1});
  buckets.mutable_histogram()->set_bucket_count(limits_.max_histogram_buckets + 1);
  ExpectInvalid(buckets, {"bucket_count", "limit"});

  v1::Record layout = Base("w");
  *layout.mutable_histogram()->mutable_values() = Floats({1}, {1});
  layout.mutable_histogram()->set_layout(static_cast<v1::HistogramLayout>(5));
  ExpectInvalid(layout, {"layout", "unknown enum value 5"});

  Limits small;
  small.max_tensor_elements = 4;
  const RecordConverter strict(small, nullptr);
  v1::Record big = Base("w");
  *big.mutable_histogram()->mutable_values() = Floats({5}, Ramp(5));
  out = strict.Convert(big, kReceiveTime);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("more than 4 elements"));
}

// ---------------------------------------------------------------------------
// Images

TEST_F(RecordConverterTest, ImagePixelsTensorStyle) {
  v1::Record record = Base("sample");
  std::vector<uint8_t> pixels(4 * 5 * 3, 128);
  *record.mutable_image()->mutable_pixels() = MakeTensor(v1::DTYPE_UINT8, {4, 5, 3}, pixels);
  const tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "images");
  ASSERT_EQ(value.tensor().string_val_size(), 3);
  EXPECT_EQ(value.tensor().string_val(0), "5");
  EXPECT_EQ(value.tensor().string_val(1), "4");
  absl::StatusOr<RawImage> decoded = DecodePng(value.tensor().string_val(2));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->channels, 3);
  EXPECT_EQ(decoded->pixels, pixels);
}

TEST_F(RecordConverterTest, ImageLayoutsAndSummaryImageStyle) {
  // CHW floats in [0,1], one image.
  v1::Record chw = Base("chw");
  *chw.mutable_image()->mutable_pixels() = Floats({1, 2, 3}, {0, 0.5f, 1, 1, 0.5f, 0});
  chw.mutable_image()->set_layout(v1::PIXEL_LAYOUT_CHW);
  chw.mutable_image()->set_style(v1::IMAGE_STYLE_SUMMARY_IMAGE);
  tb::Summary::Value value = OnlyValue(Ok(chw));
  ASSERT_TRUE(value.has_image());
  EXPECT_EQ(value.image().height(), 2);
  EXPECT_EQ(value.image().width(), 3);
  EXPECT_EQ(value.image().colorspace(), 1);

  // A batch of 2 NCHW images, tiled side by side.
  v1::Record batch = Base("batch");
  *batch.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_UINT8, {2, 3, 4, 5}, std::vector<uint8_t>(2 * 3 * 4 * 5, 7));
  batch.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NCHW);
  batch.mutable_image()->set_style(v1::IMAGE_STYLE_SUMMARY_IMAGE);
  value = OnlyValue(Ok(batch));
  EXPECT_EQ(value.image().height(), 4);
  EXPECT_EQ(value.image().width(), 10);

  // The same batch NHWC in tensor style keeps max_outputs images.
  v1::Record nhwc = Base("nhwc");
  *nhwc.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_UINT8, {4, 2, 2, 1}, std::vector<uint8_t>(16, 9));
  nhwc.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NHWC);
  nhwc.mutable_image()->set_max_outputs(2);
  value = OnlyValue(Ok(nhwc));
  EXPECT_EQ(value.tensor().string_val_size(), 2 + 2);
}

TEST_F(RecordConverterTest, ImageEncodedPassesThrough) {
  RawImage raw{2, 3, 3, std::vector<uint8_t>(18, 200)};
  absl::StatusOr<std::string> png = EncodePng(raw);
  ASSERT_TRUE(png.ok());
  v1::Record record = Base("png");
  record.mutable_image()->set_encoded(*png);
  record.mutable_image()->set_style(v1::IMAGE_STYLE_SUMMARY_IMAGE);
  tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.image().encoded_image_string(), *png);
  EXPECT_EQ(value.image().height(), 2);
  EXPECT_EQ(value.image().width(), 3);

  record.mutable_image()->set_style(v1::IMAGE_STYLE_TENSOR);
  value = OnlyValue(Ok(record));
  ASSERT_EQ(value.tensor().string_val_size(), 3);
  EXPECT_EQ(value.tensor().string_val(2), *png);
}

TEST_F(RecordConverterTest, ImageRejectsBadInput) {
  v1::Record nan = Base("img");
  *nan.mutable_image()->mutable_pixels() =
      Floats({1, 2}, {0.5f, std::numeric_limits<float>::quiet_NaN()});
  ExpectInvalid(nan, {"image \"img\"", "pixels"});

  v1::Record rank = Base("img");
  *rank.mutable_image()->mutable_pixels() = Floats({2, 2}, {0, 0, 0, 0});
  rank.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NHWC);
  ExpectInvalid(rank, {"pixels", "rank 2", "needs 4"});

  v1::Record dtype = Base("img");
  *dtype.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_INT32, {1, 1}, std::vector<int32_t>{1});
  ExpectInvalid(dtype, {"pixels", "dtype int32"});

  v1::Record gif = Base("img");
  gif.mutable_image()->set_encoded("GIF89a\x01\x00\x01\x00");
  ExpectInvalid(gif, {"encoded", "neither PNG nor JPEG"});

  v1::Record none = Base("img");
  none.mutable_image();
  ExpectInvalid(none, {"source", "neither pixels nor encoded"});

  v1::Record layout = Base("img");
  *layout.mutable_image()->mutable_pixels() = Floats({1, 1}, {0});
  layout.mutable_image()->set_layout(static_cast<v1::PixelLayout>(9));
  ExpectInvalid(layout, {"layout", "unknown enum value 9"});

  // Empty dims are refused by the engine, never divided by.
  for (v1::ImageStyle style : {v1::IMAGE_STYLE_TENSOR, v1::IMAGE_STYLE_SUMMARY_IMAGE}) {
    v1::Record zero = Base("img");
    *zero.mutable_image()->mutable_pixels() = MakeTensor(v1::DTYPE_UINT8, {2, 0, 4, 5},
                                                         std::vector<uint8_t>{});
    zero.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NCHW);
    zero.mutable_image()->set_style(style);
    ExpectInvalid(zero, {"image \"img\"", "pixels"});
  }

  v1::Record grid = Base("img");
  *grid.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_UINT8, {2, 2, 3, 1}, std::vector<uint8_t>(12));
  grid.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NHWC);
  grid.mutable_image()->set_style(v1::IMAGE_STYLE_SUMMARY_IMAGE);
  Limits tight;
  tight.max_image_pixels = 8;
  const RecordConverter tight_converter(tight, nullptr);
  absl::StatusOr<Converted> tiled = tight_converter.Convert(grid, kReceiveTime);
  ASSERT_FALSE(tiled.ok());
  EXPECT_THAT(std::string(tiled.status().message()), HasSubstr("tiled grid would have 12 pixels"));

  Limits small;
  small.max_image_pixels = 10;
  small.max_images_per_record = 2;
  const RecordConverter strict(small, nullptr);
  v1::Record large = Base("img");
  *large.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_UINT8, {4, 4}, std::vector<uint8_t>(16));
  absl::StatusOr<Converted> out = strict.Convert(large, kReceiveTime);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("16 pixels is more than the limit"));
  v1::Record many = Base("img");
  *many.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_UINT8, {3, 1, 1, 1}, std::vector<uint8_t>(3));
  many.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NHWC);
  out = strict.Convert(many, kReceiveTime);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("batch of 3 images"));
}

// ---------------------------------------------------------------------------
// Text and audio

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

// ---------------------------------------------------------------------------
// PR curves

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

// ---------------------------------------------------------------------------
// HParams

v1::HParams SampleHParams() {
  v1::HParams hparams;
  (*hparams.mutable_values())["lr"].set_number(0.01);
  (*hparams.mutable_values())["optimizer"].set_text("adam");
  (*hparams.mutable_values())["dropout"].set_flag(true);
  v1::MetricSpec* metric = hparams.add_metrics();
  metric->set_tag("accuracy");
  metric->set_subrun("validation");
  metric->set_dataset_type(v1::DATASET_TYPE_VALIDATION);
  return hparams;
}

hp::HParamsPluginData PluginData(const tb::Summary::Value& value) {
  hp::HParamsPluginData data;
  EXPECT_TRUE(data.ParseFromString(value.metadata().plugin_data().content()));
  return data;
}

TEST_F(RecordConverterTest, HParamsRecordTensorBoardAndTorchStyles) {
  v1::Record record = Base("");
  record.set_subrun("trial-1");
  *record.mutable_hparams() = SampleHParams();
  Converted out = Ok(record);
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_EQ(out.events[0].subrun, "trial-1");
  tb::Summary::Value experiment = ParseEvent(out.events[0]).summary().value(0);
  EXPECT_EQ(experiment.tag(), "_hparams_/experiment");
  const hp::Experiment config = PluginData(experiment).experiment();
  ASSERT_EQ(config.hparam_infos_size(), 3);
  EXPECT_EQ(config.hparam_infos(0).name(), "dropout");  // name order
  EXPECT_EQ(config.hparam_infos(0).type(), hp::DATA_TYPE_BOOL);
  EXPECT_EQ(config.hparam_infos(1).type(), hp::DATA_TYPE_FLOAT64);
  ASSERT_EQ(config.metric_infos_size(), 1);
  EXPECT_EQ(config.metric_infos(0).name().group(), "validation");
  const tb::Summary::Value start = ParseEvent(out.events[1]).summary().value(0);
  EXPECT_EQ(start.tag(), "_hparams_/session_start_info");
  EXPECT_EQ(PluginData(start).session_start_info().hparams().at("optimizer").string_value(),
            "adam");

  record.mutable_hparams()->mutable_metrics(0)->clear_subrun();
  record.mutable_hparams()->set_torch_style(true);
  out = Ok(record);
  ASSERT_EQ(out.events.size(), 3u);
  const tb::Summary::Value end = ParseEvent(out.events[2]).summary().value(0);
  EXPECT_EQ(end.tag(), "_hparams_/session_end_info");
  EXPECT_EQ(PluginData(end).session_end_info().status(), hp::STATUS_SUCCESS);
}

TEST_F(RecordConverterTest, HParamsDomains) {
  v1::Record record = Base("");
  *record.mutable_hparams() = SampleHParams();
  v1::HParamDomain& lr = (*record.mutable_hparams()->mutable_domains())["lr"];
  lr.mutable_interval()->set_min(1e-4);
  lr.mutable_interval()->set_max(1.0);
  v1::HParamDomain& layers = (*record.mutable_hparams()->mutable_domains())["layers"];
  layers.mutable_discrete()->add_values()->set_number(2);
  layers.mutable_discrete()->add_values()->set_number(4);
  const Converted out = Ok(record);
  const hp::Experiment config =
      PluginData(ParseEvent(out.events[0]).summary().value(0)).experiment();
  ASSERT_EQ(config.hparam_infos_size(), 4);
  EXPECT_EQ(config.hparam_infos(1).name(), "layers");
  EXPECT_EQ(config.hparam_infos(1).domain_discrete().values_size(), 2);
  EXPECT_EQ(config.hparam_infos(2).name(), "lr");
  EXPECT_EQ(config.hparam_infos(2).domain_interval().max_value(), 1.0);
}

TEST_F(RecordConverterTest, HParamsRejectBadInput) {
  v1::Record nan = Base("");
  (*nan.mutable_hparams()->mutable_values())["lr"].set_number(std::nan(""));
  ExpectInvalid(nan, {"hparams", "values[\"lr\"]", "finite"});

  v1::Record unset = Base("");
  (*unset.mutable_hparams()->mutable_values())["lr"];
  ExpectInvalid(unset, {"values[\"lr\"]", "no value set"});

  v1::Record metric = Base("");
  metric.mutable_hparams()->add_metrics()->set_tag("bad\x7f");
  ExpectInvalid(metric, {"metrics[0]", "control character"});

  v1::Record dataset = Base("");
  v1::MetricSpec* spec = dataset.mutable_hparams()->add_metrics();
  spec->set_tag("acc");
  spec->set_dataset_type(static_cast<v1::DatasetType>(6));
  ExpectInvalid(dataset, {"metrics[0].dataset_type", "unknown enum value 6"});

  v1::Record interval = Base("");
  v1::HParamDomain& d = (*interval.mutable_hparams()->mutable_domains())["lr"];
  d.mutable_interval()->set_min(2);
  d.mutable_interval()->set_max(1);
  ExpectInvalid(interval, {"domains[\"lr\"]", "min <= max"});

  v1::Record empty = Base("");
  empty.mutable_hparams();
  ExpectInvalid(empty, {"hparams", "no hparams"});
}

TEST_F(RecordConverterTest, OpenRunWritesPurgeStartThenHParams) {
  v1::OpenRunRequest request;
  request.set_purge_step(42);
  *request.mutable_hparams() = SampleHParams();
  absl::StatusOr<Converted> out = converter_.OpenRunEvents(request, 1234.5);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->events.size(), 3u);
  const tb::Event purge = ParseEvent(out->events[0]);
  EXPECT_EQ(purge.step(), 42);
  EXPECT_EQ(purge.wall_time(), 1234.5);
  EXPECT_EQ(purge.session_log().status(), tb::SessionLog::START);
  EXPECT_EQ(ParseEvent(out->events[1]).summary().value(0).tag(), "_hparams_/experiment");
  const tb::Event start = ParseEvent(out->events[2]);
  EXPECT_EQ(start.step(), 0);
  EXPECT_EQ(start.summary().value(0).tag(), "_hparams_/session_start_info");
  EXPECT_EQ(PluginData(start.summary().value(0)).session_start_info().start_time_secs(), 1234.5);

  v1::OpenRunRequest plain;
  out = converter_.OpenRunEvents(plain, 1.0);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->events.empty());

  v1::OpenRunRequest bad;
  (*bad.mutable_hparams()->mutable_values())["x"].set_number(INFINITY);
  out = converter_.OpenRunEvents(bad, 1.0);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("hparams: values[\"x\"]"));
}

TEST_F(RecordConverterTest, CloseRunWritesSessionEndOnlyWithHParams) {
  EXPECT_TRUE(converter_.CloseRunEvents(v1::SESSION_STATUS_SUCCESS, v1::HParams(), 1.0)
                  .events.empty());
  const struct {
    v1::SessionStatus in;
    hp::Status out;
  } cases[] = {{v1::SESSION_STATUS_UNSPECIFIED, hp::STATUS_SUCCESS},
               {v1::SESSION_STATUS_FAILURE, hp::STATUS_FAILURE},
               {v1::SESSION_STATUS_RUNNING, hp::STATUS_RUNNING},
               {static_cast<v1::SessionStatus>(99), hp::STATUS_UNKNOWN}};
  for (const auto& c : cases) {
    const Converted out = converter_.CloseRunEvents(c.in, SampleHParams(), 99.0);
    ASSERT_EQ(out.events.size(), 1u);
    const tb::Event event = ParseEvent(out.events[0]);
    EXPECT_EQ(event.wall_time(), 99.0);
    const tb::Summary::Value& value = event.summary().value(0);
    EXPECT_EQ(value.tag(), "_hparams_/session_end_info");
    EXPECT_EQ(PluginData(value).session_end_info().status(), c.out);
    EXPECT_EQ(PluginData(value).session_end_info().end_time_secs(), 99.0);
  }
}

// ---------------------------------------------------------------------------
// Graphs, embeddings, custom scalars

TEST_F(RecordConverterTest, GraphFromNodesAndFromGraphDef) {
  v1::Record record = Base("", 0);
  v1::NodeList* nodes = record.mutable_graph()->mutable_nodes();
  v1::Node* input = nodes->add_node();
  input->set_name("input");
  input->set_op("Placeholder");
  (*input->mutable_attrs())["shape"].mutable_shape()->add_dims(-1);
  (*input->mutable_attrs())["dims"].mutable_list()->add_i(3);
  v1::Node* relu = nodes->add_node();
  relu->set_name("relu");
  relu->set_op("Relu");
  relu->add_inputs("input");
  const Converted out = Ok(record);
  ASSERT_EQ(out.events.size(), 1u);
  const tb::Event event = ParseEvent(out.events[0]);
  EXPECT_EQ(event.wall_time(), 1700000000.0);
  tb::GraphDef graph;
  ASSERT_TRUE(graph.ParseFromString(event.graph_def()));
  ASSERT_EQ(graph.node_size(), 2);
  EXPECT_EQ(graph.node(1).input(0), "input");
  EXPECT_EQ(graph.node(0).attr().at("dims").list().i(0), 3);

  v1::Record passthrough = Base("", 1);
  passthrough.mutable_graph()->set_graph_def(event.graph_def());
  const Converted again = Ok(passthrough);
  EXPECT_EQ(ParseEvent(again.events[0]).graph_def(), event.graph_def());
}

TEST_F(RecordConverterTest, GraphRejectsBadInput) {
  v1::Record garbage = Base("");
  garbage.mutable_graph()->set_graph_def("\xff\xff\xff");
  ExpectInvalid(garbage, {"graph", "graph_def"});

  v1::Record dangling = Base("");
  v1::Node* node = dangling.mutable_graph()->mutable_nodes()->add_node();
  node->set_name("a");
  node->set_op("Relu");
  node->add_inputs("missing");
  ExpectInvalid(dangling, {"nodes", "missing"});

  v1::Record attr = Base("");
  v1::Node* n = attr.mutable_graph()->mutable_nodes()->add_node();
  n->set_name("a");
  n->set_op("Const");
  (*n->mutable_attrs())["value"];
  ExpectInvalid(attr, {"nodes[0].attrs[\"value\"]", "no value set"});

  v1::Record none = Base("");
  none.mutable_graph();
  ExpectInvalid(none, {"source", "neither graph_def nor nodes"});
}

TEST_F(RecordConverterTest, EmbeddingBecomesProjectorFiles) {
  v1::Record record = Base("emb", 0);
  *record.mutable_embedding()->mutable_matrix() = Floats({3, 2}, Ramp(6, 0.5f));
  for (const char* label : {"cat", "dog", "cow"}) record.mutable_embedding()->add_metadata(label);
  const Converted out = Ok(record);
  EXPECT_TRUE(out.events.empty());
  std::vector<std::string> paths;
  for (const SideFile& file : out.files) paths.push_back(file.relative_path);
  EXPECT_THAT(paths, ::testing::UnorderedElementsAre("00000/emb/tensors.tsv",
                                                     "00000/emb/metadata.tsv",
                                                     "projector_config.pbtxt"));
  for (const SideFile& file : out.files) {
    EXPECT_EQ(file.append_unique, file.relative_path == "projector_config.pbtxt");
    if (file.relative_path == "00000/emb/tensors.tsv") {
      EXPECT_EQ(file.contents, "0.0\t0.5\n1.0\t1.5\n2.0\t2.5\n");
    }
    if (file.relative_path == "00000/emb/metadata.tsv") {
      EXPECT_EQ(file.contents, "cat\ndog\ncow\n");
    }
  }
}

TEST_F(RecordConverterTest, EmbeddingRejectsBadInput) {
  v1::Record negative = Base("emb", -1);
  *negative.mutable_embedding()->mutable_matrix() = Floats({1, 1}, {0});
  ExpectInvalid(negative, {"embedding \"emb\"", "step", "negative"});

  v1::Record rank = Base("emb");
  *rank.mutable_embedding()->mutable_matrix() = Floats({2}, {0, 1});
  ExpectInvalid(rank, {"matrix", "[points, dims]"});

  v1::Record labels = Base("emb");
  *labels.mutable_embedding()->mutable_matrix() = Floats({2, 1}, {0, 1});
  labels.mutable_embedding()->add_metadata("only one");
  ExpectInvalid(labels, {"embedding \"emb\""});
}

TEST_F(RecordConverterTest, CustomScalarLayout) {
  v1::Record record = Base("", 0);
  v1::Category* category = record.mutable_custom_scalars()->add_categories();
  category->set_title("losses");
  v1::Chart* chart = category->add_charts();
  chart->set_title("all");
  chart->mutable_multiline()->add_tags("loss/.*");
  const tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.tag(), "custom_scalars__config__");
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "custom_scalars");
  tb::Layout layout;
  ASSERT_TRUE(layout.ParseFromString(value.tensor().string_val(0)));
  EXPECT_EQ(layout.category(0).chart(0).multiline().tag(0), "loss/.*");

  chart->clear_multiline();
  ExpectInvalid(record, {"custom_scalars", "categories[0].charts[0]", "neither multiline"});
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
