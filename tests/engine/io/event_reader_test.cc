#include "engine/io/event_reader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/io/record_writer.h"
#include "temp_dir_util.h"

namespace tblog {
namespace {

namespace fs = std::filesystem;
using std::string_literals::operator""s;
using State = EventFileReader::State;

class EventReaderTest : public TempDirTest {
 protected:
  // Writes framed `payloads` to dir_/rel, creating parent directories.
  std::string WriteRecords(const std::string& rel, const std::vector<std::string>& payloads,
                           const std::string& tail = "") {
    const fs::path path = fs::path(dir_) / rel;
    fs::create_directories(path.parent_path());
    std::string bytes;
    for (const std::string& p : payloads) AppendFramedRecord(p, &bytes);
    bytes += tail;
    std::ofstream(path, std::ios::binary) << bytes;
    return path.string();
  }
};

// Whether the reader's error names the byte offset of the bad record.
::testing::AssertionResult ErrorNamesOffset(const EventFileReader& reader, uint64_t offset) {
  if (reader.error().find("offset " + std::to_string(offset)) != std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "error \"" << reader.error() << "\" names no offset "
                                       << offset;
}

std::string EventBytes(int64_t step) {
  tb::Event event;
  event.set_step(step);
  event.set_wall_time(1700000000.0 + static_cast<double>(step));
  return event.SerializeAsString();
}

TEST_F(EventReaderTest, ReadsEventsThenEnd) {
  const std::string path = WriteRecords("a.tfevents", {EventBytes(1), EventBytes(2)});
  auto reader = EventFileReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  tb::Event event;
  ASSERT_EQ((*reader)->Next(&event), State::kEvent);
  EXPECT_EQ(event.step(), 1);
  ASSERT_EQ((*reader)->Next(&event), State::kEvent);
  EXPECT_EQ(event.step(), 2);
  EXPECT_EQ((*reader)->Next(&event), State::kEnd);
  EXPECT_TRUE((*reader)->error().empty());
  EXPECT_EQ((*reader)->path(), path);
}

TEST_F(EventReaderTest, TornTailNamesTheOffset) {
  std::string partial;
  AppendFramedRecord(EventBytes(2), &partial);
  const std::string path =
      WriteRecords("a.tfevents", {EventBytes(1)}, partial.substr(0, partial.size() - 1));
  auto reader = EventFileReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  tb::Event event;
  ASSERT_EQ((*reader)->Next(&event), State::kEvent);
  const uint64_t offset = (*reader)->offset();
  EXPECT_EQ((*reader)->Next(&event), State::kTornTail);
  EXPECT_TRUE(ErrorNamesOffset(**reader, offset));
  EXPECT_EQ((*reader)->offset(), offset);
}

TEST_F(EventReaderTest, CorruptIsSticky) {
  std::string bytes;
  AppendFramedRecord(EventBytes(1), &bytes);
  bytes[bytes.size() - 1] = static_cast<char>(bytes[bytes.size() - 1] ^ 0x40);
  const std::string path = WriteRecords("a.tfevents", {}, bytes);
  auto reader = EventFileReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  tb::Event event;
  EXPECT_EQ((*reader)->Next(&event), State::kCorrupt);
  EXPECT_NE((*reader)->error().find("CRC"), std::string::npos);
  EXPECT_EQ((*reader)->Next(&event), State::kCorrupt);
}

TEST_F(EventReaderTest, UndecodableRecordIsReportedWithOffset) {
  // Field 1 declared as a 100-byte string with 1 byte present: not an Event.
  const std::string path =
      WriteRecords("a.tfevents", {EventBytes(1), "\x0a\x64x"s, EventBytes(3)});
  auto reader = EventFileReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  tb::Event event;
  ASSERT_EQ((*reader)->Next(&event), State::kEvent);
  const uint64_t offset = (*reader)->offset();
  EXPECT_EQ((*reader)->Next(&event), State::kUndecodable);
  EXPECT_TRUE(ErrorNamesOffset(**reader, offset));
  EXPECT_EQ((*reader)->Next(&event), State::kUndecodable);
}

TEST_F(EventReaderTest, OpenMissingFileFails) {
  auto reader = EventFileReader::Open(dir_ + "/missing.tfevents");
  ASSERT_FALSE(reader.ok());
  EXPECT_NE(reader.status().message().find("missing.tfevents"), absl::string_view::npos);
}

TEST(IsEventFileNameTest, LooksAtTheBasename) {
  EXPECT_TRUE(IsEventFileName("events.out.tfevents.1700000000.host.1.0"));
  EXPECT_TRUE(IsEventFileName("/a/b/x.tfevents.golden"));
  EXPECT_TRUE(IsEventFileName("tfevents"));
  EXPECT_FALSE(IsEventFileName("/tfevents/events.out"));
  EXPECT_FALSE(IsEventFileName("projector_config.pbtxt"));
}

TEST_F(EventReaderTest, ListRunsLikeTensorBoard) {
  WriteRecords("events.out.tfevents.1", {EventBytes(0)});
  WriteRecords("train/events.out.tfevents.2", {EventBytes(0)});
  WriteRecords("train/events.out.tfevents.10", {EventBytes(0)});
  WriteRecords("train/notes.txt", {});
  WriteRecords("a/b/c/events.out.tfevents.3.v2", {EventBytes(0)});
  WriteRecords("empty/nothing_here.txt", {});
  fs::create_directories(dir_ + "/bare");
  // A symlink cycle is walked once.
  fs::create_directory_symlink(dir_ + "/a", dir_ + "/a/b/loop");

  auto runs = ListRuns(dir_);
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ((*runs)[0].name, ".");
  EXPECT_EQ((*runs)[0].dir, dir_);
  EXPECT_EQ((*runs)[0].files, std::vector<std::string>{dir_ + "/events.out.tfevents.1"});
  EXPECT_EQ((*runs)[1].name, "a/b/c");
  EXPECT_EQ((*runs)[2].name, "train");
  // Lexicographic, as TensorBoard reads them.
  EXPECT_EQ((*runs)[2].files, (std::vector<std::string>{dir_ + "/train/events.out.tfevents.10",
                                                         dir_ + "/train/events.out.tfevents.2"}));
}

TEST_F(EventReaderTest, ListRunsFollowsSymlinkedRun) {
  WriteRecords("elsewhere/events.out.tfevents.1", {EventBytes(0)});
  fs::create_directories(dir_ + "/logdir");
  fs::create_directory_symlink(dir_ + "/elsewhere", dir_ + "/logdir/linked");
  auto runs = ListRuns(dir_ + "/logdir");
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].name, "linked");
}

TEST_F(EventReaderTest, ListRunsErrors) {
  auto missing = ListRuns(dir_ + "/missing");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing"), absl::string_view::npos);
  const std::string file = WriteRecords("plain_file", {});
  EXPECT_EQ(ListRuns(file).status().code(), absl::StatusCode::kFailedPrecondition);
  auto empty = ListRuns(dir_);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

}  // namespace
}  // namespace tblog
