#include "engine/io/event_file_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/io/record_reader.h"
#include "golden_util.h"
#include "file_size_limit.h"
#include "support/fault_file_system.h"
#include "support/forwarding_file_system.h"

namespace tblog {
namespace {

namespace fs = std::filesystem;
using ::testing::MatchesRegex;

constexpr int64_t kStartSecs = 1700000000;

// Every file in `paths` reads to its end in whole records: no partial record
// anywhere (what a reader of the run must never meet in a file it keeps).
void ExpectWholeRecordsOnly(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) {
    auto reader = RecordReader::Open(path);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::string payload;
    RecordReader::State state;
    while ((state = (*reader)->Next(&payload)) == RecordReader::State::kRecord) {
    }
    EXPECT_EQ(state, RecordReader::State::kEnd) << path << ": " << (*reader)->error();
  }
}

class EventFileWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "event_file_writer_test_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Options with a fake clock that the test moves by hand.
  EventFileOptions FakeClockOptions() {
    EventFileOptions options;
    options.hostname = "testhost";
    options.clock = [this] { return now_; };
    return options;
  }

  // FakeClockOptions() on faults_: real files, faults as the test injects.
  EventFileOptions FaultOptions() {
    EventFileOptions options = FakeClockOptions();
    options.file_system = &faults_;
    return options;
  }

  // After a fault that is over: the next Flush starts a new file, and every
  // event through `last_step` (written now) reads back once, in order.
  void ExpectRecovered(EventFileWriter& writer, const std::string& failed_path,
                       int64_t last_step);
  // Steps 0..2 written whole in dir_ by a writer on faults_ that hands every
  // record to the OS at once; `whole` gets its file's size then.
  std::unique_ptr<EventFileWriter> WriteThreeSteps(uint64_t* whole);
  // The same after a fault at step 3 of `first_path`, which then holds steps
  // 0..2 and the next file 3..4, each file in whole records.
  void ExpectRecoveredAfterStep3(EventFileWriter& writer, const std::string& first_path);

  std::vector<std::string> Files() const {
    std::vector<std::string> files;
    if (!fs::exists(dir_)) return files;
    for (const auto& entry : fs::directory_iterator(dir_)) files.push_back(entry.path().string());
    std::sort(files.begin(), files.end());  // TensorBoard's order
    return files;
  }

  std::string dir_;
  absl::Time now_ = absl::FromUnixSeconds(kStartSecs);
  FaultFileSystem faults_;
};

tb::Event ScalarEvent(int64_t step, const std::string& padding = "") {
  tb::Event event;
  event.set_wall_time(1700000000.0 + static_cast<double>(step));
  event.set_step(step);
  tb::Summary::Value* value = event.mutable_summary()->add_value();
  value->set_tag("loss" + padding);
  value->set_simple_value(static_cast<float>(step) * 0.5f);
  return event;
}

// Steps of the summary events of `files` in order, reading each file up to
// its end or a torn tail (a failed write leaves one); corruption fails.
std::vector<int64_t> StepsAcross(const std::vector<std::string>& files) {
  std::vector<int64_t> steps;
  for (const std::string& path : files) {
    auto reader = RecordReader::Open(path);
    if (!reader.ok()) {
      ADD_FAILURE() << reader.status();
      continue;
    }
    std::string payload;
    RecordReader::State state;
    bool first = true;
    while ((state = (*reader)->Next(&payload)) == RecordReader::State::kRecord) {
      tb::Event event;
      EXPECT_TRUE(event.ParseFromString(payload)) << path;
      if (first) {
        EXPECT_EQ(event.file_version(), "brain.Event:2") << path;
      }
      first = false;
      if (event.has_summary()) steps.push_back(event.step());
    }
    EXPECT_NE(state, RecordReader::State::kCorrupt) << (*reader)->error();
  }
  return steps;
}

std::vector<int64_t> Range(int64_t begin, int64_t end) {
  std::vector<int64_t> steps;
  for (int64_t s = begin; s < end; ++s) steps.push_back(s);
  return steps;
}

TEST_F(EventFileWriterTest, NamesAreUniqueWithinOneSecond) {
  EventFileOptions options = FakeClockOptions();
  options.filename_suffix = ".v2";
  std::vector<std::unique_ptr<EventFileWriter>> writers;
  for (int i = 0; i < 3; ++i) {
    auto writer = EventFileWriter::Create(dir_, options);
    ASSERT_TRUE(writer.ok()) << writer.status();
    writers.push_back(std::move(*writer));
  }
  const std::string pid = std::to_string(::getpid());
  for (const auto& writer : writers) {
    EXPECT_THAT(fs::path(writer->current_path()).filename().string(),
                MatchesRegex("events\\.out\\.tfevents\\.1700000000\\.testhost\\." + pid +
                             "\\.[0-9]+\\.v2"));
  }
  EXPECT_NE(writers[0]->current_path(), writers[1]->current_path());
  EXPECT_NE(writers[1]->current_path(), writers[2]->current_path());
  EXPECT_NE(writers[0]->current_path(), writers[2]->current_path());
  EXPECT_EQ(Files().size(), 3u);
}

TEST_F(EventFileWriterTest, FirstRecordIsFileVersionThenEventsInOrder) {
  now_ += absl::Milliseconds(250);
  auto writer = EventFileWriter::Create(dir_ + "/nested/run", FakeClockOptions());
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (int64_t step = 0; step < 10; ++step) ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
  ASSERT_TRUE((*writer)->Close().ok());
  EXPECT_TRUE((*writer)->Close().ok());  // idempotent

  const std::vector<tb::Event> events = ReadEventFile((*writer)->current_path());
  ASSERT_EQ(events.size(), 11u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_EQ(events[0].source_metadata().writer(), "tblogd");
  EXPECT_DOUBLE_EQ(events[0].wall_time(), 1700000000.25);
  for (int64_t step = 0; step < 10; ++step) {
    EXPECT_EQ(events[static_cast<size_t>(step) + 1].SerializeAsString(),
              ScalarEvent(step).SerializeAsString());
  }
  const EventFileStats& stats = (*writer)->stats();
  EXPECT_EQ(stats.records_written, 10u);
  EXPECT_EQ(stats.files_opened, 1u);
  EXPECT_EQ(stats.bytes_written, fs::file_size((*writer)->current_path()));
  EXPECT_FALSE((*writer)->Write(ScalarEvent(10)).ok());  // closed
}

TEST_F(EventFileWriterTest, WriteSerializedMatchesWrite) {
  auto writer = EventFileWriter::Create(dir_, FakeClockOptions());
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->WriteSerialized(ScalarEvent(7).SerializeAsString()).ok());
  ASSERT_TRUE((*writer)->Flush().ok());
  const std::vector<tb::Event> events = ReadEventFile((*writer)->current_path());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].step(), 7);
}

TEST_F(EventFileWriterTest, BufferedUntilFlush) {
  EventFileOptions options = FakeClockOptions();
  options.buffer_bytes = 1 << 20;
  auto writer = EventFileWriter::Create(dir_, options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const uintmax_t empty_size = fs::file_size((*writer)->current_path());
  EXPECT_GT(empty_size, 0u);  // the file_version record is written at once
  ASSERT_TRUE((*writer)->Write(ScalarEvent(0)).ok());
  EXPECT_EQ(fs::file_size((*writer)->current_path()), empty_size);
  ASSERT_TRUE((*writer)->Flush().ok());
  EXPECT_GT(fs::file_size((*writer)->current_path()), empty_size);
}

TEST_F(EventFileWriterTest, RotatesBySizeAndKeepsOrder) {
  EventFileOptions options = FakeClockOptions();
  options.max_file_bytes = 1000;
  options.buffer_bytes = 300;
  auto writer = EventFileWriter::Create(dir_, options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string padding(40, 'p');
  for (int64_t step = 0; step < 200; ++step) {
    if (step % 50 == 0) now_ += absl::Seconds(1);
    ASSERT_TRUE((*writer)->Write(ScalarEvent(step, padding)).ok());
  }
  ASSERT_TRUE((*writer)->Close().ok());
  const std::vector<std::string> files = Files();
  EXPECT_GT(files.size(), 5u);
  EXPECT_EQ((*writer)->stats().files_opened, files.size());
  const size_t record_size = ScalarEvent(0, padding).ByteSizeLong() + 16;
  for (const std::string& path : files) {
    EXPECT_LT(fs::file_size(path), options.max_file_bytes + record_size) << path;
  }
  EXPECT_EQ(StepsAcross(files), Range(0, 200));
}

// `count` events of steps from `first`, of varying sizes, serialized back to
// back; ends[i] is where event i ends.
std::string SerializedRun(int64_t first, int count, std::vector<size_t>* ends) {
  std::string bytes;
  for (int64_t step = first; step < first + count; ++step) {
    const std::string padding(static_cast<size_t>(step % 37), 'p');
    bytes += ScalarEvent(step, padding).SerializeAsString();
    ends->push_back(bytes.size());
  }
  return bytes;
}

// Bulk framing changes nothing on disk: the same files, byte for byte, with
// the buffer written and the file rotated at the same events.
TEST_F(EventFileWriterTest, ARunIsWrittenAsItsEventsOneByOne) {
  EventFileOptions options = FakeClockOptions();
  options.max_file_bytes = 1000;
  options.buffer_bytes = 300;
  std::vector<size_t> ends;
  const std::string bytes = SerializedRun(0, 200, &ends);
  std::vector<std::vector<std::string>> contents;
  for (const bool run : {false, true}) {
    const std::string dir = dir_ + (run ? "/run" : "/one");
    auto writer = EventFileWriter::Create(dir, options);
    ASSERT_TRUE(writer.ok()) << writer.status();
    if (run) {
      // In three calls, so that a run also starts with a partly full buffer.
      size_t begin = 0;
      for (const auto& [first_event, last] : {std::pair{0, 1}, {1, 120}, {120, 200}}) {
        const int first = first_event;  // a lambda may not capture a binding (clang 14)
        size_t accepted = 0;
        const size_t base = begin;
        ASSERT_TRUE((*writer)
                        ->WriteSerializedRun(
                            std::string_view(bytes).substr(base, ends[last - 1] - base),
                            static_cast<size_t>(last - first),
                            [&](size_t i) { return ends[first + i] - base; }, &accepted)
                        .ok());
        EXPECT_EQ(accepted, static_cast<size_t>(last - first));
        begin = ends[last - 1];
      }
    } else {
      for (size_t i = 0; i < ends.size(); ++i) {
        const size_t begin = i == 0 ? 0 : ends[i - 1];
        const std::string_view event = std::string_view(bytes).substr(begin, ends[i] - begin);
        ASSERT_TRUE((*writer)->WriteSerialized(event).ok());
      }
    }
    EXPECT_EQ((*writer)->stats().records_written, 200u);
    ASSERT_TRUE((*writer)->Close().ok());
    std::vector<std::string> paths;
    for (const auto& entry : fs::directory_iterator(dir)) paths.push_back(entry.path().string());
    std::sort(paths.begin(), paths.end());
    EXPECT_EQ(StepsAcross(paths), Range(0, 200));
    contents.emplace_back();
    for (const std::string& path : paths) contents.back().push_back(ReadFileBytes(path));
  }
  EXPECT_GT(contents[0].size(), 5u);
  EXPECT_EQ(contents[0], contents[1]);
}

TEST_F(EventFileWriterTest, DeletedFileIsNoticedOnFlush) {
  auto writer = EventFileWriter::Create(dir_, FakeClockOptions());
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (int64_t step = 0; step < 5; ++step) ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
  ASSERT_TRUE((*writer)->Flush().ok());
  const std::string first_path = (*writer)->current_path();
  ASSERT_TRUE(fs::remove(first_path));

  for (int64_t step = 5; step < 8; ++step) ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
  ASSERT_TRUE((*writer)->Flush().ok());
  EXPECT_NE((*writer)->current_path(), first_path);
  EXPECT_EQ((*writer)->stats().records_lost, 5u);
  EXPECT_EQ((*writer)->stats().files_opened, 2u);
  EXPECT_EQ(StepsAcross(Files()), Range(5, 8));
}

TEST_F(EventFileWriterTest, MovedFileIsNoticedOnFlush) {
  auto writer = EventFileWriter::Create(dir_, FakeClockOptions());
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Write(ScalarEvent(0)).ok());
  ASSERT_TRUE((*writer)->Flush().ok());
  const std::string first_path = (*writer)->current_path();
  // Another file now has the name: the inode tells them apart.
  fs::rename(first_path, dir_ + "/moved_away");
  { std::ofstream(first_path) << "impostor"; }
  ASSERT_TRUE((*writer)->Write(ScalarEvent(1)).ok());
  ASSERT_TRUE((*writer)->Flush().ok());
  EXPECT_NE((*writer)->current_path(), first_path);
  EXPECT_EQ((*writer)->stats().records_lost, 1u);
  EXPECT_EQ(StepsAcross({(*writer)->current_path()}), Range(1, 2));
}

TEST_F(EventFileWriterTest, DeletedDirectoryIsRecreated) {
  auto writer = EventFileWriter::Create(dir_ + "/run", FakeClockOptions());
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Flush().ok());
  fs::remove_all(dir_);
  ASSERT_TRUE((*writer)->Write(ScalarEvent(3)).ok());
  ASSERT_TRUE((*writer)->Flush().ok());
  EXPECT_EQ(StepsAcross({(*writer)->current_path()}), Range(3, 4));
}

TEST_F(EventFileWriterTest, SyncPolicies) {
  {
    EventFileOptions options = FakeClockOptions();
    options.sync = SyncPolicy::kNever;
    auto writer = EventFileWriter::Create(dir_, options);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Flush().ok());
    EXPECT_EQ((*writer)->stats().syncs, 0u);
    ASSERT_TRUE((*writer)->Flush(/*sync=*/true).ok());
    EXPECT_EQ((*writer)->stats().syncs, 1u);
  }
  {
    EventFileOptions options = FakeClockOptions();
    options.sync = SyncPolicy::kOnFlush;
    auto writer = EventFileWriter::Create(dir_, options);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Flush().ok());
    ASSERT_TRUE((*writer)->Flush().ok());
    EXPECT_EQ((*writer)->stats().syncs, 2u);
  }
  {
    EventFileOptions options = FakeClockOptions();
    options.sync = SyncPolicy::kInterval;
    options.sync_interval = absl::Seconds(5);
    auto writer = EventFileWriter::Create(dir_, options);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Flush().ok());
    EXPECT_EQ((*writer)->stats().syncs, 0u);
    now_ += absl::Seconds(4);
    ASSERT_TRUE((*writer)->Flush().ok());
    EXPECT_EQ((*writer)->stats().syncs, 0u);
    now_ += absl::Seconds(2);
    ASSERT_TRUE((*writer)->Flush().ok());
    EXPECT_EQ((*writer)->stats().syncs, 1u);
    ASSERT_TRUE((*writer)->Flush().ok());
    EXPECT_EQ((*writer)->stats().syncs, 1u);
  }
}

TEST_F(EventFileWriterTest, WriteFaultIsStickyAndRecoveredOnFlush) {
  EventFileOptions options = FakeClockOptions();
  options.buffer_bytes = 1 << 20;
  auto writer = EventFileWriter::Create(dir_, options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string first_path = (*writer)->current_path();
  const std::string padding(60, 'p');
  for (int64_t step = 0; step < 50; ++step) {
    ASSERT_TRUE((*writer)->Write(ScalarEvent(step, padding)).ok());
  }

  FileSizeLimit limit(2000);
  ASSERT_TRUE(limit.ok());
  const absl::Status failed = (*writer)->Flush();
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find(first_path), absl::string_view::npos) << failed;
  EXPECT_NE(failed.message().find("File too large"), absl::string_view::npos) << failed;
  // Sticky: the next write fails the same way rather than write after a hole.
  EXPECT_EQ((*writer)->Write(ScalarEvent(50, padding)), failed);
  EXPECT_EQ((*writer)->stats().records_written, 50u);
  EXPECT_GE((*writer)->stats().write_errors, 1u);

  ExpectWholeRecordsOnly(Files());  // the write stopped at 2000 bytes, mid-record
  EXPECT_GE((*writer)->stats().partial_records_cut, 1u);

  // Still limited: a fresh file fills up too, and the error stays.
  EXPECT_FALSE((*writer)->Flush().ok());
  EXPECT_FALSE((*writer)->Write(ScalarEvent(50, padding)).ok());
  ExpectWholeRecordsOnly(Files());

  limit.Lift();
  ASSERT_TRUE((*writer)->Flush().ok());
  EXPECT_NE((*writer)->current_path(), first_path);
  for (int64_t step = 50; step < 60; ++step) {
    ASSERT_TRUE((*writer)->Write(ScalarEvent(step, padding)).ok());
  }
  ASSERT_TRUE((*writer)->Close().ok());
  // Every accepted event is in exactly one file, in order: those written
  // whole before the fault in the old files, the rest carried to the new one.
  EXPECT_EQ(StepsAcross(Files()), Range(0, 60));
  EXPECT_EQ((*writer)->stats().records_lost, 0u);
  ExpectWholeRecordsOnly(Files());
}

TEST_F(EventFileWriterTest, NewFilesAndDirectoriesAreSyncedUnlessPolicyIsNever) {
  for (SyncPolicy policy : {SyncPolicy::kNever, SyncPolicy::kOnFlush, SyncPolicy::kInterval}) {
    SCOPED_TRACE(static_cast<int>(policy));
    fs::remove_all(dir_);
    EventFileOptions options = FakeClockOptions();
    options.sync = policy;
    options.max_file_bytes = 200;
    options.buffer_bytes = 1;  // written at once, so rotation sees the bytes
    // dir_ and one sub-directory are created; each needs its parent synced.
    auto writer = EventFileWriter::Create(dir_ + "/train", options);
    ASSERT_TRUE(writer.ok()) << writer.status();
    const uint64_t expected_at_create = policy == SyncPolicy::kNever ? 0 : 3;
    EXPECT_EQ((*writer)->stats().directory_syncs, expected_at_create);
    for (int64_t step = 0; step < 20; ++step) {
      ASSERT_TRUE((*writer)->Write(ScalarEvent(step, std::string(40, 'p'))).ok());
    }
    ASSERT_TRUE((*writer)->Close().ok());
    const uint64_t files = (*writer)->stats().files_opened;
    ASSERT_GT(files, 2u);  // rotated
    EXPECT_EQ((*writer)->stats().directory_syncs,
              policy == SyncPolicy::kNever ? 0 : 2 + files);  // one per file, no more
    std::vector<std::string> paths;
    for (const auto& entry : fs::directory_iterator(dir_ + "/train")) {
      paths.push_back(entry.path().string());
    }
    std::sort(paths.begin(), paths.end());
    EXPECT_EQ(StepsAcross(paths), Range(0, 20));
  }
}

TEST_F(EventFileWriterTest, DeferredDirectorySyncsComeWithTheFilesFsync) {
  EventFileOptions options = FaultOptions();
  options.sync = SyncPolicy::kInterval;
  options.defer_directory_syncs = true;
  auto writer = EventFileWriter::Create(dir_, options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Write(ScalarEvent(0)).ok());
  ASSERT_TRUE((*writer)->Flush().ok());  // the interval has not passed: no fsync
  EXPECT_EQ(faults_.calls(FileOp::kSyncDir), 0);
  EXPECT_EQ((*writer)->stats().directory_syncs, 0u);

  // A failing directory fsync fails the sync (the file's own fsync, first,
  // went through), leaves the file usable, and is retried by the next one.
  faults_.Inject(Fault(FileOp::kSyncDir, EIO).Skip(1));
  EXPECT_FALSE((*writer)->Flush(/*sync=*/true).ok());
  EXPECT_EQ((*writer)->stats().syncs, 0u);
  ASSERT_TRUE((*writer)->Write(ScalarEvent(1)).ok());
  const int file_syncs = faults_.calls(FileOp::kSync);
  ASSERT_TRUE((*writer)->Flush(/*sync=*/true).ok());
  // dir_'s parent (for dir_) and dir_ (for the file), each once.
  EXPECT_EQ((*writer)->stats().directory_syncs, 2u);
  EXPECT_EQ((*writer)->stats().syncs, 1u);
  EXPECT_EQ(faults_.calls(FileOp::kSync), file_syncs + 1);
  ASSERT_TRUE((*writer)->Flush(/*sync=*/true).ok());
  EXPECT_EQ((*writer)->stats().directory_syncs, 2u);  // nothing new to name
  ASSERT_TRUE((*writer)->Close().ok());
  EXPECT_EQ(StepsAcross(Files()), Range(0, 2));
}

TEST_F(EventFileWriterTest, AnEventAcceptedBeforeAFaultIsKeptAndARefusedOneIsNot) {
  EventFileOptions options = FakeClockOptions();
  options.buffer_bytes = 1;  // every Write hands its record to the OS at once
  auto writer = EventFileWriter::Create(dir_, options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string padding(60, 'p');
  for (int64_t step = 0; step < 5; ++step) {
    ASSERT_TRUE((*writer)->Write(ScalarEvent(step, padding)).ok());
  }
  FileSizeLimit limit(fs::file_size((*writer)->current_path()) + 10);
  ASSERT_TRUE(limit.ok());
  // Accepted (kept buffered) although write() failed half way: OK.
  EXPECT_TRUE((*writer)->Write(ScalarEvent(5, padding)).ok());
  EXPECT_GE((*writer)->stats().write_errors, 1u);
  // Refused: the caller keeps it and offers it again after recovery.
  EXPECT_FALSE((*writer)->Write(ScalarEvent(6, padding)).ok());
  ExpectWholeRecordsOnly(Files());  // the 10 bytes that got through are cut
  limit.Lift();
  ASSERT_TRUE((*writer)->Flush().ok());
  ASSERT_TRUE((*writer)->Write(ScalarEvent(6, padding)).ok());
  ASSERT_TRUE((*writer)->Close().ok());
  EXPECT_EQ(StepsAcross(Files()), Range(0, 7));
}

// Faults injected per call through FaultFileSystem: real files underneath.

// Expects `path` to hold the summary events of `steps`, whole, and then to
// stop in state `end` (kEnd, or kTornTail after a short write).
void ExpectFileHolds(const std::string& path, const std::vector<int64_t>& steps,
                     RecordReader::State end) {
  auto reader = RecordReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<int64_t> read;
  std::string payload;
  RecordReader::State state;
  while ((state = (*reader)->Next(&payload)) == RecordReader::State::kRecord) {
    tb::Event event;
    EXPECT_TRUE(event.ParseFromString(payload));
    if (event.has_summary()) read.push_back(event.step());
  }
  EXPECT_EQ(state, end) << (*reader)->error();
  EXPECT_EQ(read, steps) << path;
}

std::unique_ptr<EventFileWriter> EventFileWriterTest::WriteThreeSteps(uint64_t* whole) {
  EventFileOptions options = FaultOptions();
  options.buffer_bytes = 1;
  auto writer = EventFileWriter::Create(dir_, options);
  EXPECT_TRUE(writer.ok()) << writer.status();
  if (!writer.ok()) return nullptr;
  for (int64_t step = 0; step < 3; ++step) EXPECT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
  *whole = fs::file_size((*writer)->current_path());
  return *std::move(writer);
}

void EventFileWriterTest::ExpectRecoveredAfterStep3(EventFileWriter& writer,
                                                    const std::string& first_path) {
  ExpectRecovered(writer, first_path, 4);
  for (const std::string& path : Files()) {
    ExpectFileHolds(path, path == first_path ? Range(0, 3) : Range(3, 5),
                    RecordReader::State::kEnd);
  }
}

void EventFileWriterTest::ExpectRecovered(EventFileWriter& writer,
                                          const std::string& failed_path, int64_t last_step) {
  ASSERT_TRUE(writer.Flush().ok());
  EXPECT_NE(writer.current_path(), failed_path);
  ASSERT_TRUE(writer.Write(ScalarEvent(last_step)).ok());
  ASSERT_TRUE(writer.Close().ok());
  EXPECT_EQ(StepsAcross(Files()), Range(0, last_step + 1));
  EXPECT_EQ(writer.stats().records_lost, 0u);
}

TEST_F(EventFileWriterTest, OneAppendPerFlushedBuffer) {
  EventFileOptions options = FaultOptions();
  auto writer = EventFileWriter::Create(dir_, options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ(faults_.calls(FileOp::kAppend), 1);  // the file_version record
  for (int64_t step = 0; step < 100; ++step) ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
  EXPECT_EQ(faults_.calls(FileOp::kAppend), 1);  // buffered
  ASSERT_TRUE((*writer)->Flush().ok());
  EXPECT_EQ(faults_.calls(FileOp::kAppend), 2);
  EXPECT_EQ(faults_.calls(FileOp::kSync), 1);  // kOnFlush (Create syncs the directory only)
  ASSERT_TRUE((*writer)->Close().ok());
  EXPECT_EQ(StepsAcross(Files()), Range(0, 100));
}

TEST_F(EventFileWriterTest, NoSpaceOnTheNthWriteIsReportedAndNothingIsCorrupt) {
  EventFileOptions options = FaultOptions();
  options.buffer_bytes = 1;  // every Write is one Append
  auto writer = EventFileWriter::Create(dir_, options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string first_path = (*writer)->current_path();
  // The 6th Append after the file_version one fails: steps 0..4 are written.
  faults_.Inject(Fault(FileOp::kAppend, ENOSPC).Skip(5));
  for (int64_t step = 0; step < 6; ++step) {
    ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());  // step 5 stays buffered
  }
  EXPECT_EQ((*writer)->stats().write_errors, 1u);
  const absl::Status refused = (*writer)->Write(ScalarEvent(6));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find(first_path), absl::string_view::npos) << refused;
  EXPECT_NE(refused.message().find("No space left on device"), absl::string_view::npos) << refused;
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);

  // Nothing written after the fault: the file ends cleanly after step 4.
  ExpectFileHolds(first_path, Range(0, 5), RecordReader::State::kEnd);

  // Space again: the next Flush carries step 5 to a fresh file.
  ExpectRecovered(**writer, first_path, 6);
}

// A write that fails inside a run: the events before it are taken (the one
// whose buffer failed stays buffered for the next file), the call says how
// many, and the rest are refused with the error.
TEST_F(EventFileWriterTest, ARunStopsAtAFaultAndSaysHowManyItTook) {
  EventFileOptions options = FaultOptions();
  options.buffer_bytes = 1;  // every event is one Append
  auto writer = EventFileWriter::Create(dir_, options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string first_path = (*writer)->current_path();
  faults_.Inject(Fault(FileOp::kAppend, ENOSPC).Skip(5));
  std::vector<size_t> ends;
  const std::string bytes = SerializedRun(0, 10, &ends);
  size_t accepted = 0;
  const absl::Status refused = (*writer)->WriteSerializedRun(
      bytes, ends.size(), [&](size_t i) { return ends[i]; }, &accepted);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_EQ(accepted, 6u);  // steps 0..4 written, 5 buffered
  EXPECT_EQ((*writer)->stats().records_written, 6u);
  ExpectFileHolds(first_path, Range(0, 5), RecordReader::State::kEnd);
  ExpectRecovered(**writer, first_path, 6);
}

// A write that puts part of the buffer in the file and then fails (a disk
// that fills in the middle of a record) is not retried: the writer reports
// it and cuts the partial record off at once, so the file, which stays in the
// run, ends with a whole record; the cut record goes, whole, to the next file.
TEST_F(EventFileWriterTest, AShortWriteIsCutBackAndItsRecordCarriedToTheNextFile) {
  for (const int error : {ENOSPC, EFBIG}) {
    SCOPED_TRACE(error);
    fs::remove_all(dir_);
    uint64_t whole = 0;
    auto writer = WriteThreeSteps(&whole);
    ASSERT_NE(writer, nullptr);
    const std::string first_path = writer->current_path();
    faults_.Inject(Fault(FileOp::kAppend, error).KeepBytes(10));
    EXPECT_TRUE(writer->Write(ScalarEvent(3)).ok());  // accepted, then the write fails
    EXPECT_EQ(fs::file_size(first_path), whole);      // the 10 bytes are gone
    EXPECT_EQ(writer->stats().bytes_written, whole);
    EXPECT_EQ(writer->stats().partial_records_cut, 1u);
    EXPECT_FALSE(writer->Write(ScalarEvent(4)).ok());
    ExpectFileHolds(first_path, Range(0, 3), RecordReader::State::kEnd);

    ExpectRecoveredAfterStep3(*writer, first_path);
  }
}

// The cut fails too (the truncate gets EIO): the writer stays in error and
// opens no new file, so the torn file is never left behind in the run; the
// next Flush that can cut it moves on.
TEST_F(EventFileWriterTest, AFailedCutIsRetriedBeforeTheWriterMovesOn) {
  uint64_t whole = 0;
  auto writer = WriteThreeSteps(&whole);
  ASSERT_NE(writer, nullptr);
  const std::string first_path = writer->current_path();
  faults_.Inject(Fault(FileOp::kTruncate, EIO).Times(2));
  faults_.Inject(Fault(FileOp::kAppend, ENOSPC).KeepBytes(10));
  EXPECT_TRUE(writer->Write(ScalarEvent(3)).ok());
  EXPECT_EQ(fs::file_size(first_path), whole + 10);  // the cut failed
  const absl::Status failed = writer->Flush();       // so does its retry
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("truncating " + first_path), absl::string_view::npos) << failed;
  EXPECT_NE(failed.message().find("cutting a partial record"), absl::string_view::npos) << failed;
  EXPECT_EQ(writer->current_path(), first_path);
  EXPECT_EQ(Files().size(), 1u);
  EXPECT_EQ(faults_.calls(FileOp::kTruncate), 2);

  ExpectRecoveredAfterStep3(*writer, first_path);  // the third cut works
  EXPECT_EQ(writer->stats().partial_records_cut, 1u);
}

// After a failed fsync the page cache's state is unknown: the error is
// reported and sticky, and the next Flush starts a new file rather than
// trusting the old one's tail.
TEST_F(EventFileWriterTest, AnFsyncErrorIsReportedAndTheNextFlushStartsANewFile) {
  EventFileOptions options = FaultOptions();
  options.sync = SyncPolicy::kOnFlush;
  auto writer = EventFileWriter::Create(dir_, options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string first_path = (*writer)->current_path();
  for (int64_t step = 0; step < 3; ++step) ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
  faults_.Inject(Fault(FileOp::kSync, EIO));
  const absl::Status failed = (*writer)->Flush();
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("syncing " + first_path), absl::string_view::npos) << failed;
  EXPECT_NE(failed.message().find("Input/output error"), absl::string_view::npos) << failed;
  EXPECT_EQ((*writer)->stats().syncs, 0u);
  EXPECT_EQ((*writer)->stats().write_errors, 1u);
  EXPECT_EQ((*writer)->Write(ScalarEvent(3)), failed);  // sticky

  ExpectRecovered(**writer, first_path, 3);  // the fault was once
  EXPECT_EQ((*writer)->stats().syncs, 2u);   // the recovering Flush and Close's
}

TEST_F(EventFileWriterTest, DirectoryFaultsAreReportedWithThePath) {
  EventFileOptions options = FaultOptions();
  faults_.Inject(Fault(FileOp::kCreateDir, EIO).OnPathsWith("/train"));
  auto failed = EventFileWriter::Create(dir_ + "/train", options);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("creating directory " + dir_ + "/train: "),
            absl::string_view::npos)
      << failed.status();
  EXPECT_FALSE(fs::exists(dir_ + "/train"));

  faults_.Inject(Fault(FileOp::kSyncDir, EIO));
  failed = EventFileWriter::Create(dir_ + "/train", options);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("syncing directory"), absl::string_view::npos)
      << failed.status();
  EXPECT_TRUE(EventFileWriter::Create(dir_ + "/train", options).ok());
}

}  // namespace
}  // namespace tblog

namespace tblog {
namespace {

// Records the StartWriteback calls reaching the files it opens (on the real
// file system underneath).
class WritebackLog : public testing::ForwardingFileSystem {
 public:
  struct Call {
    uint64_t offset;
    uint64_t length;
    bool operator==(const Call&) const = default;
  };
  std::vector<Call> calls;

 private:
  class File : public testing::ForwardingWritableFile {
   public:
    File(WritebackLog* log, std::unique_ptr<WritableFile> base)
        : ForwardingWritableFile(std::move(base)), log_(log) {}
    void StartWriteback(uint64_t offset, uint64_t length) override {
      log_->calls.push_back({offset, length});
      ForwardingWritableFile::StartWriteback(offset, length);  // the real sync_file_range
    }

   private:
    WritebackLog* log_;
  };

  std::unique_ptr<WritableFile> Wrap(const std::string&,
                                     std::unique_ptr<WritableFile> file) override {
    return std::make_unique<File>(this, std::move(file));
  }
};

TEST_F(EventFileWriterTest, WritebackStartsEveryWritebackBytesHandedToTheOs) {
  WritebackLog log;
  EventFileOptions options = FakeClockOptions();
  options.file_system = &log;
  options.sync = SyncPolicy::kInterval;
  options.buffer_bytes = 1000;   // a write to the OS every ~1000 bytes
  options.writeback_bytes = 4000;
  auto writer = EventFileWriter::Create(dir_, options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (int64_t step = 0; step < 500; ++step) {
    ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
  }
  ASSERT_TRUE((*writer)->Flush().ok());
  const uint64_t size = fs::file_size(Files().at(0));
  // Contiguous ranges from the start of the file, each at least
  // writeback_bytes and less than that plus one buffer; what is left after
  // the last is under writeback_bytes.
  ASSERT_FALSE(log.calls.empty());
  uint64_t next = 0;
  for (const WritebackLog::Call& call : log.calls) {
    EXPECT_EQ(call.offset, next);
    EXPECT_GE(call.length, options.writeback_bytes);
    EXPECT_LT(call.length, options.writeback_bytes + options.buffer_bytes + 200);
    next = call.offset + call.length;
  }
  EXPECT_LT(size - next, options.writeback_bytes);
  ASSERT_TRUE((*writer)->Close().ok());
  EXPECT_EQ(StepsAcross(Files()), Range(0, 500));
}

TEST_F(EventFileWriterTest, NoWritebackWhenOffOrWhenThePolicyNeverSyncs) {
  for (const auto& [writeback, sync] : {std::pair<uint64_t, SyncPolicy>{0, SyncPolicy::kOnFlush},
                                        {4000, SyncPolicy::kNever}}) {
    WritebackLog log;
    EventFileOptions options = FakeClockOptions();
    options.file_system = &log;
    options.sync = sync;
    options.buffer_bytes = 1000;
    options.writeback_bytes = writeback;
    auto writer = EventFileWriter::Create(dir_ + "/" + std::to_string(writeback), options);
    ASSERT_TRUE(writer.ok()) << writer.status();
    for (int64_t step = 0; step < 500; ++step) {
      ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
    }
    ASSERT_TRUE((*writer)->Close().ok());
    EXPECT_TRUE(log.calls.empty()) << writeback;
  }
}

}  // namespace
}  // namespace tblog
