#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "base/wire.h"
#include "engine/io/crc32c.h"
#include "engine/io/record_reader.h"
#include "engine/io/record_writer.h"

namespace tblog {
namespace {

using std::string_literals::operator""s;
using State = RecordReader::State;

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "record_test_" + std::to_string(::getpid()) + "_" + name;
}

void WriteBytes(const std::string& path, const std::string& bytes, bool append = false) {
  std::ofstream out(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::vector<std::string> Payloads() {
  return {"", "a", "hello world", std::string(1000, 'x'), "\0\1\2\3"s, std::string(70000, 'z')};
}

std::string Framed(const std::vector<std::string>& payloads) {
  std::string bytes;
  for (const std::string& p : payloads) AppendFramedRecord(p, &bytes);
  return bytes;
}

TEST(RecordWriterTest, FileVersionRecordMatchesTensorBoardBytes) {
  std::string bytes;
  AppendFramedRecord("\x1a\x0d"s + "brain.Event:2", &bytes);
  const std::string expected = "\x0f\x00\x00\x00\x00\x00\x00\x00"s + "\x6d\x53\x2b\x09"s +
                               "\x1a\x0d"s + "brain.Event:2" + "\xfc\x98\x51\x29"s;
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(bytes.size(), FramedRecordSize(15));
}

TEST(RecordWriterTest, AppendsAfterExistingBytes) {
  std::string bytes = "prefix";
  AppendFramedRecord("abc", &bytes);
  EXPECT_EQ(bytes.substr(0, 6), "prefix");
  EXPECT_EQ(bytes.size(), 6 + FramedRecordSize(3));
}

// The length's CRC is looked up below 512 bytes and computed from there on:
// both agree with the portable table's CRC of the 8 length bytes, on either
// side of the boundary.
TEST(RecordWriterTest, LengthCrcsMatchThePortableCrcAtEveryLength) {
  for (size_t n = 0; n < 1100; ++n) {
    const std::string payload(n, 'p');
    std::string framed(FramedRecordSize(n), '\0');
    ASSERT_EQ(FrameRecordTo(payload, framed.data()), framed.data() + framed.size());
    const uint32_t expected = crc32c::Mask(crc32c::ExtendPortable(0, framed.data(), 8));
    ASSERT_EQ(wire::LoadLittleEndian(framed, 8, 4), expected) << "length " << n;
  }
}

TEST(RecordReaderTest, RoundTrip) {
  const std::string path = TempPath("round_trip");
  const std::vector<std::string> payloads = Payloads();
  WriteBytes(path, Framed(payloads));
  auto reader = RecordReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string payload;
  uint64_t offset = 0;
  for (const std::string& expected : payloads) {
    EXPECT_EQ((*reader)->offset(), offset);
    ASSERT_EQ((*reader)->Next(&payload), State::kRecord) << (*reader)->error();
    EXPECT_EQ(payload, expected);
    offset += FramedRecordSize(expected.size());
  }
  EXPECT_EQ((*reader)->Next(&payload), State::kEnd);
  EXPECT_EQ((*reader)->Next(&payload), State::kEnd);
  EXPECT_EQ((*reader)->offset(), offset);
  std::remove(path.c_str());
}

TEST(RecordReaderTest, OpenMissingFileNamesThePath) {
  auto reader = RecordReader::Open(TempPath("does_not_exist"));
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(reader.status().message().find("does_not_exist"), absl::string_view::npos);
}

TEST(RecordReaderTest, TornTailAtEveryCutPoint) {
  const std::string path = TempPath("torn");
  const std::string first = Framed({"first record"});
  const std::string second = Framed({"second, torn record"});
  for (size_t cut = 1; cut < second.size(); ++cut) {
    WriteBytes(path, first + second.substr(0, cut));
    auto reader = RecordReader::Open(path);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::string payload;
    ASSERT_EQ((*reader)->Next(&payload), State::kRecord);
    EXPECT_EQ(payload, "first record");
    ASSERT_EQ((*reader)->Next(&payload), State::kTornTail) << "cut " << cut;
    EXPECT_NE((*reader)->error().find("offset " + std::to_string(first.size())),
              std::string::npos)
        << (*reader)->error();
    EXPECT_EQ((*reader)->offset(), first.size());
    // The writer finishes the record: the reader picks it up whole.
    WriteBytes(path, second.substr(cut), /*append=*/true);
    ASSERT_EQ((*reader)->Next(&payload), State::kRecord) << "cut " << cut;
    EXPECT_EQ(payload, "second, torn record");
    EXPECT_EQ((*reader)->Next(&payload), State::kEnd);
  }
  std::remove(path.c_str());
}

TEST(RecordReaderTest, FlippedBitAnywhereIsCorrupt) {
  const std::string path = TempPath("flip");
  const std::string good = Framed({"a good record"});
  const std::string victim = Framed({"the victim record"});
  // Every bit of the length, its CRC, the payload and the payload CRC.
  for (size_t byte = 0; byte < victim.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = victim;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      WriteBytes(path, good + bad + good);
      auto reader = RecordReader::Open(path);
      ASSERT_TRUE(reader.ok()) << reader.status();
      std::string payload;
      ASSERT_EQ((*reader)->Next(&payload), State::kRecord);
      const State state = (*reader)->Next(&payload);
      // A flipped length bit may claim more bytes than the file holds; the
      // length CRC catches it before the size is trusted.
      ASSERT_EQ(state, State::kCorrupt) << "byte " << byte << " bit " << bit;
      EXPECT_NE((*reader)->error().find("CRC mismatch"), std::string::npos);
      EXPECT_NE((*reader)->error().find("offset " + std::to_string(good.size())),
                std::string::npos)
          << (*reader)->error();
      // Corruption is sticky: the good record after it is not read.
      EXPECT_EQ((*reader)->Next(&payload), State::kCorrupt);
    }
  }
  std::remove(path.c_str());
}

TEST(RecordReaderTest, TailsAGrowingFile) {
  const std::string path = TempPath("tail");
  WriteBytes(path, "");
  auto reader = RecordReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string payload;
  EXPECT_EQ((*reader)->Next(&payload), State::kEnd);
  for (int i = 0; i < 20; ++i) {
    const std::string expected = "record " + std::to_string(i);
    WriteBytes(path, Framed({expected}), /*append=*/true);
    ASSERT_EQ((*reader)->Next(&payload), State::kRecord) << i;
    EXPECT_EQ(payload, expected);
    EXPECT_EQ((*reader)->Next(&payload), State::kEnd);
  }
  std::remove(path.c_str());
}

// Many records through the buffer, which refills inside records of every
// kind: all come back in order, each at its offset.
TEST(RecordReaderTest, ReadsALargeFileInOrder) {
  const std::string path = TempPath("large");
  constexpr int kRecords = 200000;
  const auto payload_of = [](int i) {
    return std::to_string(i) + std::string(static_cast<size_t>(i % 97), static_cast<char>(i));
  };
  {
    std::string bytes;
    for (int i = 0; i < kRecords; ++i) AppendFramedRecord(payload_of(i), &bytes);
    WriteBytes(path, bytes);
    ASSERT_GT(bytes.size(), 4 * RecordReader::kBufferBytes);
  }
  auto reader = RecordReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string payload;
  uint64_t offset = 0;
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_EQ((*reader)->offset(), offset) << i;
    ASSERT_EQ((*reader)->Next(&payload), State::kRecord) << i << ": " << (*reader)->error();
    ASSERT_EQ(payload, payload_of(i));
    offset += FramedRecordSize(payload.size());
  }
  EXPECT_EQ((*reader)->Next(&payload), State::kEnd);
  EXPECT_EQ((*reader)->offset(), offset);
  std::remove(path.c_str());
}

// Records around and beyond the buffer size, read whole and torn.
TEST(RecordReaderTest, RecordsLargerThanTheBuffer) {
  const std::string path = TempPath("huge");
  const size_t buffer = RecordReader::kBufferBytes;
  std::vector<std::string> payloads;
  for (size_t size : {buffer - 17, buffer - 16, buffer - 15, buffer, 3 * buffer + 5}) {
    payloads.push_back(std::string(size, static_cast<char>('a' + payloads.size())));
    payloads.push_back("small " + std::to_string(size));
  }
  const std::string bytes = Framed(payloads);
  WriteBytes(path, bytes);
  {
    auto reader = RecordReader::Open(path);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::string payload;
    for (const std::string& expected : payloads) {
      ASSERT_EQ((*reader)->Next(&payload), State::kRecord) << (*reader)->error();
      EXPECT_EQ(payload, expected);
    }
    EXPECT_EQ((*reader)->Next(&payload), State::kEnd);
  }
  // Cut inside the last big record, then finish it: torn, then read whole.
  const std::string head = Framed({payloads.begin(), payloads.end() - 2});
  const std::string last = Framed({payloads.end() - 2, payloads.end() - 1});
  for (size_t cut : {size_t{5}, size_t{12}, buffer, last.size() - 1}) {
    WriteBytes(path, head + last.substr(0, cut));
    auto reader = RecordReader::Open(path);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::string payload;
    for (size_t i = 0; i + 2 < payloads.size(); ++i) {
      ASSERT_EQ((*reader)->Next(&payload), State::kRecord) << (*reader)->error();
    }
    EXPECT_EQ((*reader)->Next(&payload), State::kTornTail) << "cut " << cut;
    EXPECT_EQ((*reader)->offset(), head.size());
    WriteBytes(path, last.substr(cut), /*append=*/true);
    ASSERT_EQ((*reader)->Next(&payload), State::kRecord) << "cut " << cut;
    EXPECT_EQ(payload, payloads[payloads.size() - 2]);
    EXPECT_EQ((*reader)->Next(&payload), State::kEnd);
  }
  std::remove(path.c_str());
}

// A torn tail repaired by truncation and rewritten differently (as a
// restarted daemon does) is read from the file again, not from the buffer.
TEST(RecordReaderTest, RereadsARewrittenTornTail) {
  const std::string path = TempPath("rewrite");
  const std::string first = Framed({"first"});
  WriteBytes(path, first + Framed({"lost record"}).substr(0, 10));
  auto reader = RecordReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string payload;
  ASSERT_EQ((*reader)->Next(&payload), State::kRecord);
  ASSERT_EQ((*reader)->Next(&payload), State::kTornTail);
  WriteBytes(path, first + Framed({"replacement"}));
  ASSERT_EQ((*reader)->Next(&payload), State::kRecord) << (*reader)->error();
  EXPECT_EQ(payload, "replacement");
  EXPECT_EQ((*reader)->Next(&payload), State::kEnd);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tblog
