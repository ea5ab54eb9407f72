// Histogram records (convert/histogram.h) through RecordConverter::Convert.
#include "daemon/record_converter.h"

#include <limits>
#include <string>

#include "convert_test_util.h"
#include "engine/histogram/parallel.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

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

}  // namespace
}  // namespace tblog::daemon
