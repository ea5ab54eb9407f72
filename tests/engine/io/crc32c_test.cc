#include "engine/io/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>

namespace tblog {
namespace {

using std::string_literals::operator""s;

TEST(Crc32cTest, StandardVectors) {
  EXPECT_EQ(crc32c::Value("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c::Value(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c::Value(""), 0u);
  EXPECT_EQ(crc32c::ExtendPortable(0, "123456789", 9), 0xE3069283u);
}

TEST(Crc32cTest, MaskedVectorFromTensorBoard) {
  const std::string data = "\x1a\x11"s + "CRC test, one two";
  EXPECT_EQ(crc32c::Mask(crc32c::Value(data)), 0x5794D08Au);
}

TEST(Crc32cTest, MaskRoundTrips) {
  for (uint32_t crc : {0u, 1u, 0xE3069283u, 0xffffffffu, 0x80000000u}) {
    EXPECT_EQ(crc32c::Unmask(crc32c::Mask(crc)), crc);
    EXPECT_NE(crc32c::Mask(crc), crc);
  }
}

// The CRCs inside the file_version record of tensorboard-format.md §1.
TEST(Crc32cTest, FileVersionRecordCrcs) {
  const std::string length = "\x0f\x00\x00\x00\x00\x00\x00\x00"s;
  const std::string payload = "\x1a\x0d"s + "brain.Event:2";
  EXPECT_EQ(crc32c::Mask(crc32c::Value(length)), 0x092b536du);   // bytes 6d532b09
  EXPECT_EQ(crc32c::Mask(crc32c::Value(payload)), 0x295198fcu);  // bytes fc985129
}

TEST(Crc32cTest, ExtendIsIncremental) {
  const std::string data = "The quick brown fox jumps over the lazy dog";
  for (size_t split = 0; split <= data.size(); ++split) {
    const uint32_t first = crc32c::Extend(0, data.data(), split);
    EXPECT_EQ(crc32c::Extend(first, data.data() + split, data.size() - split),
              crc32c::Value(data))
        << "split at " << split;
  }
}

TEST(Crc32cTest, HardwareMatchesPortableOnRandomBuffers) {
  std::mt19937 rng(1234);
  std::string buffer(300 + 16, '\0');
  for (char& c : buffer) c = static_cast<char>(rng());
  for (size_t start = 0; start < 8; ++start) {
    for (size_t n = 0; n <= 300; ++n) {
      const char* p = buffer.data() + start;
      ASSERT_EQ(crc32c::Extend(0, p, n), crc32c::ExtendPortable(0, p, n))
          << "start " << start << " length " << n;
      ASSERT_EQ(crc32c::Extend(0x12345678u, p, n), crc32c::ExtendPortable(0x12345678u, p, n))
          << "start " << start << " length " << n;
    }
  }
  RecordProperty("hardware", crc32c::IsHardwareAccelerated() ? "yes" : "no");
}

// Extend switches to ISA-L from 256 bytes: large buffers at every alignment,
// and a large buffer CRC'd in pieces that straddle the switch both ways, give
// the table's CRC.
TEST(Crc32cTest, LargeBuffersMatchPortableAcrossTheIsalSwitch) {
  std::mt19937 rng(99);
  std::string buffer((size_t{1} << 20) + 64, '\0');
  for (char& c : buffer) c = static_cast<char>(rng());
  for (size_t start = 0; start < 16; ++start) {
    for (size_t n : {size_t{255}, size_t{256}, size_t{257}, size_t{1000}, size_t{4096} + 3,
                     size_t{65536}, size_t{1} << 20}) {
      const char* p = buffer.data() + start;
      ASSERT_EQ(crc32c::Extend(0xdeadbeefu, p, n), crc32c::ExtendPortable(0xdeadbeefu, p, n))
          << "start " << start << " length " << n;
    }
  }
  const std::string_view all(buffer.data(), size_t{1} << 20);
  const uint32_t whole = crc32c::ExtendPortable(0, all.data(), all.size());
  for (size_t split : {size_t{1}, size_t{100}, size_t{255}, size_t{256}, size_t{70000}}) {
    const uint32_t head = crc32c::Extend(0, all.data(), split);
    EXPECT_EQ(crc32c::Extend(head, all.data() + split, all.size() - split), whole) << split;
  }
}

}  // namespace
}  // namespace tblog
