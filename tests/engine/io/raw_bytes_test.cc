// RawBytes (engine/io/raw_bytes.h): the buffer the event file writer and the
// daemon's packed scalar events grow without zero-filling.
#include "engine/io/raw_bytes.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>

namespace tblog {
namespace {

TEST(RawBytesTest, GrowingKeepsTheBytesWritten) {
  RawBytes bytes;
  EXPECT_TRUE(bytes.empty());
  std::string expected;
  for (int i = 0; i < 2000; ++i) {
    const std::string part = std::to_string(i) + ",";
    bytes += part;
    expected += part;
    ASSERT_EQ(bytes.view(), expected);
    ASSERT_GE(bytes.capacity(), bytes.size());
  }
  const size_t at = bytes.size();
  bytes.resize_for_overwrite(at + 5);
  std::memcpy(bytes.data() + at, "tail!", 5);
  EXPECT_EQ(bytes.view(), expected + "tail!");
  bytes.resize_for_overwrite(3);  // shrinking keeps the front and the capacity
  EXPECT_EQ(bytes.view(), expected.substr(0, 3));
  EXPECT_GE(bytes.capacity(), at + 5);
}

TEST(RawBytesTest, ReserveAndEraseFront) {
  RawBytes bytes;
  bytes.reserve(100);
  EXPECT_EQ(bytes.capacity(), 100u);
  EXPECT_EQ(bytes.size(), 0u);
  bytes += "0123456789";
  const char* data = bytes.data();
  bytes.reserve(50);  // already holds it: no reallocation
  EXPECT_EQ(bytes.data(), data);
  bytes.erase_front(0);
  EXPECT_EQ(bytes.view(), "0123456789");
  bytes.erase_front(4);
  EXPECT_EQ(bytes.view(), "456789");
  EXPECT_EQ(bytes.capacity(), 100u);
  bytes.erase_front(6);
  EXPECT_TRUE(bytes.empty());
  bytes.reserve(200);  // grows exactly, keeping (no) bytes
  EXPECT_EQ(bytes.capacity(), 200u);
}

TEST(RawBytesTest, CopiesAreDeepAndMovesLeaveEmpty) {
  RawBytes a;
  a += "abc";
  RawBytes copy = a;
  copy += "d";
  EXPECT_EQ(a.view(), "abc");
  EXPECT_EQ(copy.view(), "abcd");
  copy = a;
  EXPECT_EQ(copy.view(), "abc");
  RawBytes moved = std::move(a);
  EXPECT_EQ(moved.view(), "abc");
  EXPECT_EQ(a.size(), 0u);      // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(a.capacity(), 0u);  // NOLINT(bugprone-use-after-move)
  a = std::move(moved);
  EXPECT_EQ(a.view(), "abc");
  EXPECT_EQ(std::string_view(a), "abc");
}

}  // namespace
}  // namespace tblog
