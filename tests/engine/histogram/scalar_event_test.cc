#include "engine/histogram/scalar_event.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "engine/histogram/scalar_summary.h"
#include "tblog/tensorboard/event.pb.h"

namespace tblog {
namespace {

// What protobuf writes for the same point: the reference the hand-written
// bytes must equal.
std::string ProtobufEvent(std::string_view tag, ScalarStyle style, double wall_time, int64_t step,
                          float value) {
  tb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  *event.mutable_summary()->add_value() =
      style == ScalarStyle::kTensor ? ScalarValue(tag, value) : SimpleScalarValue(tag, value);
  return event.SerializeAsString();
}

// Every combination of step (0, negative, varint lengths 1 to 10), wall time
// (+0 left out, -0 kept, denormals), value (NaN, -0, infinities, denormals)
// and tag length (empty, 1- and 2-byte length prefixes, UTF-8), in both
// styles: the encoder's bytes are protobuf's.
TEST(ScalarEventEncoderTest, EventsAreByteIdenticalToProtobuf) {
  const std::vector<std::string> tags = {"",
                                         "a",
                                         "loss/train",
                                         std::string(100, 'x'),
                                         std::string(256, 'y'),
                                         "\xc3\xa9t\xc3\xa9/\xe2\x88\x86"};
  const std::vector<int64_t> steps = {0,   1,   -1,  127, 128, 16383, 16384, -128,
                                      std::numeric_limits<int64_t>::max(),
                                      std::numeric_limits<int64_t>::min(), 1LL << 40};
  const std::vector<float> values = {0.0f,
                                     -0.0f,
                                     1.0f,
                                     -2.5f,
                                     std::numeric_limits<float>::quiet_NaN(),
                                     -std::numeric_limits<float>::quiet_NaN(),
                                     std::numeric_limits<float>::infinity(),
                                     -std::numeric_limits<float>::infinity(),
                                     std::numeric_limits<float>::denorm_min(),
                                     std::numeric_limits<float>::max(),
                                     1e-30f};
  const std::vector<double> walls = {0.0, -0.0, 1.5, 1700000000.125, -3.0,
                                     std::numeric_limits<double>::denorm_min(), 1e300};
  for (const ScalarStyle style : {ScalarStyle::kTensor, ScalarStyle::kSimpleValue}) {
    for (const std::string& tag : tags) {
      const ScalarEventEncoder encoder(tag, style);
      for (const int64_t step : steps) {
        for (const float value : values) {
          for (const double wall : walls) {
            const std::string event = encoder.Encode(wall, step, value);
            ASSERT_EQ(event, ProtobufEvent(tag, style, wall, step, value))
                << "tag size " << tag.size() << " style " << static_cast<int>(style) << " step "
                << step << " value " << value << " wall " << wall;
            // TagOffset finds the tag in the bytes, whatever the prefix's length.
            ASSERT_EQ(encoder.tag_size(), tag.size());
            ASSERT_EQ(event.substr(encoder.TagOffset(event), encoder.tag_size()), tag);
          }
        }
      }
    }
  }
}

// The bytes parse back to the point, with the metadata of the style.
TEST(ScalarEventEncoderTest, EventReadsBackAsThePoint) {
  tb::Event event;
  ASSERT_TRUE(event.ParseFromString(
      ScalarEventEncoder("loss", ScalarStyle::kTensor).Encode(1700000000.5, 42, 0.25f)));
  EXPECT_EQ(event.wall_time(), 1700000000.5);
  EXPECT_EQ(event.step(), 42);
  ASSERT_EQ(event.summary().value_size(), 1);
  EXPECT_EQ(event.summary().value(0).tag(), "loss");
  EXPECT_EQ(event.summary().value(0).tensor().float_val(0), 0.25f);
  EXPECT_EQ(event.summary().value(0).metadata().plugin_data().plugin_name(), "scalars");

  ASSERT_TRUE(event.ParseFromString(
      ScalarEventEncoder("lr", ScalarStyle::kSimpleValue).Encode(2.0, -3, 1e-3f)));
  EXPECT_EQ(event.step(), -3);
  EXPECT_EQ(event.summary().value(0).simple_value(), 1e-3f);
  EXPECT_FALSE(event.summary().value(0).has_metadata());
}

}  // namespace
}  // namespace tblog
