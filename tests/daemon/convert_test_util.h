// What the record converter's tests share: tensors and records to convert,
// and a fixture that converts them and checks the outcome.
#ifndef TBLOG_TESTS_DAEMON_CONVERT_TEST_UTIL_H_
#define TBLOG_TESTS_DAEMON_CONVERT_TEST_UTIL_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "daemon/record_converter.h"
#include "engine/io/tensor_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tblog/tensorboard/event.pb.h"

namespace tblog::daemon {

inline constexpr double kReceiveTime = 1800000000.0;

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

inline v1::Tensor Floats(std::initializer_list<int64_t> shape,
                         const std::vector<float>& values) {
  return MakeTensor(v1::DTYPE_FLOAT32, shape, values);
}

inline std::vector<float> Ramp(size_t n, float scale = 1.0f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) * scale;
  return v;
}

inline v1::Record Base(const std::string& tag, int64_t step = 3) {
  v1::Record record;
  record.set_tag(tag);
  record.set_step(step);
  record.set_wall_time(1700000000.0 + static_cast<double>(step));
  return record;
}

inline tb::Event ParseEvent(const EventOut& out) {
  tb::Event event;
  EXPECT_TRUE(event.ParseFromString(out.event));
  return event;
}

// The single summary value of a one-event conversion.
inline tb::Summary::Value OnlyValue(const Converted& converted) {
  EXPECT_EQ(converted.events.size(), 1u);
  if (converted.events.empty()) return {};
  const tb::Event event = ParseEvent(converted.events[0]);
  EXPECT_EQ(event.summary().value_size(), 1);
  return event.summary().value_size() == 1 ? event.summary().value(0) : tb::Summary::Value();
}

inline std::vector<int64_t> Dims(const tb::TensorProto& tensor) {
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
      EXPECT_THAT(std::string(out.status().message()), ::testing::HasSubstr(part));
    }
  }

  Limits limits_;
  RecordConverter converter_{limits_, nullptr};
};

}  // namespace tblog::daemon

#endif  // TBLOG_TESTS_DAEMON_CONVERT_TEST_UTIL_H_
