#include "daemon/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/io/event_file_writer.h"
#include "engine/io/event_reader.h"
#include "gtest/gtest.h"
#include "support/fault_file_system.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;

fs::path TempDir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / ("checkpoint_test_" + name + "_" +
                                                   std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

int CountEvents(const std::string& path) {
  auto reader = EventFileReader::Open(path);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return -1;
  tensorboard::Event event;
  int n = 0;
  EventFileReader::State state;
  while ((state = (*reader)->Next(&event)) == EventFileReader::State::kEvent) ++n;
  EXPECT_EQ(state, EventFileReader::State::kEnd) << (*reader)->error();
  return n;
}

tensorboard::Event ScalarEvent(int64_t step) {
  tensorboard::Event event;
  event.set_step(step);
  event.set_wall_time(1700000000.0 + static_cast<double>(step));
  auto* value = event.mutable_summary()->add_value();
  value->set_tag("loss");
  value->set_simple_value(static_cast<float>(step));
  return event;
}

// Expects ReadCheckpoint(run) to find `expected`.
void ExpectCheckpoint(const fs::path& run, const CheckpointState& expected) {
  auto read = ReadCheckpoint(run.string());
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ(**read, expected);
}

// Writes steps 0..steps-1 to a new event file in `dir` and closes it;
// returns its path ("" on failure, reported).
std::string WriteClosedEventFile(const fs::path& dir, int steps) {
  auto writer = EventFileWriter::Create(dir.string(), EventFileOptions{});
  EXPECT_TRUE(writer.ok()) << writer.status();
  if (!writer.ok()) return "";
  for (int step = 0; step < steps; ++step) EXPECT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
  EXPECT_TRUE((*writer)->Close().ok());
  return (*writer)->current_path();
}

TEST(CheckpointTest, EncodeDecodeRoundTripWithOddNames) {
  CheckpointState state;
  state.writer_sequences["plain"] = 7;
  state.writer_sequences["with space\nand%percent"] = 123456789012345ull;
  state.writer_sequences["."] = 1;
  state.files.push_back({"", "events.out.tfevents.1.host.1.000001", 1234});
  state.files.push_back({"eval/top 1", "events.out.tfevents.2.host.1.000002.v2", 0});
  const std::string text = EncodeCheckpoint(state);
  auto decoded = DecodeCheckpoint(text);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, state);

  // Trailing bytes of an older, longer checkpoint are ignored.
  EXPECT_TRUE(DecodeCheckpoint(text + "writer x 9\ngarbage").ok());
  // A flipped byte or a cut is detected.
  std::string corrupt = text;
  corrupt[text.find("1234")] = '9';
  EXPECT_EQ(DecodeCheckpoint(corrupt).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeCheckpoint(text.substr(0, text.size() / 2)).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(CheckpointTest, FileRewritesInPlaceAndReadsBack) {
  const fs::path run = TempDir("file");
  auto file = CheckpointFile::Open(run.string());
  ASSERT_TRUE(file.ok()) << file.status();
  auto none = ReadCheckpoint(run.string());
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());  // created, not yet written

  CheckpointState big;
  for (int i = 0; i < 50; ++i) big.writer_sequences["writer-" + std::to_string(i)] = 10;
  ASSERT_TRUE((*file)->Write(big, /*sync=*/false).ok());
  CheckpointState small;
  small.writer_sequences["w"] = 3;
  ASSERT_TRUE((*file)->Write(small, /*sync=*/true).ok());
  ExpectCheckpoint(run, small);
}

TEST(CheckpointTest, ResumeCutsRecordsWrittenAfterTheCheckpoint) {
  const fs::path run = TempDir("resume");
  std::string path;
  uint64_t checkpointed_length = 0;
  {
    auto writer = EventFileWriter::Create((run / "train").string(), EventFileOptions{});
    ASSERT_TRUE(writer.ok()) << writer.status();
    for (int step = 0; step < 3; ++step) ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
    ASSERT_TRUE((*writer)->Flush().ok());
    path = (*writer)->current_path();
    checkpointed_length = fs::file_size(path);
    auto checkpoint = CheckpointFile::Open(run.string());
    ASSERT_TRUE(checkpoint.ok());
    CheckpointState state;
    state.writer_sequences["w1"] = 2;
    state.files.push_back({"train", fs::path(path).filename().string(), checkpointed_length});
    ASSERT_TRUE((*checkpoint)->Write(state, true).ok());
    // Batch 3 reaches the file but the daemon dies before the checkpoint.
    for (int step = 3; step < 5; ++step) ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
    ASSERT_TRUE((*writer)->Flush().ok());
  }
  {  // and a torn half record on top
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << "\x20\x00\x00";
  }
  ASSERT_GT(fs::file_size(path), checkpointed_length);
  auto repair = RepairRunForResume(run.string());
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_TRUE(repair->had_checkpoint);
  EXPECT_EQ(repair->writer_sequences.at("w1"), 2u);
  EXPECT_EQ(repair->files_truncated, 1);
  EXPECT_EQ(fs::file_size(path), checkpointed_length);
  EXPECT_EQ(CountEvents(path), 4);  // file_version + steps 0..2
}

TEST(CheckpointTest, ResumeWithoutCheckpointCutsATornTail) {
  const fs::path run = TempDir("torn");
  const std::string path = WriteClosedEventFile(run, 4);
  ASSERT_FALSE(path.empty());
  const uint64_t whole = fs::file_size(path);
  {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    const std::string half_record = ScalarEvent(9).SerializeAsString().substr(0, 7);
    out << std::string("\x30\0\0\0\0\0\0\0", 8) << half_record;
  }
  auto repair = RepairRunForResume(run.string());
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_FALSE(repair->had_checkpoint);
  EXPECT_TRUE(repair->writer_sequences.empty());
  EXPECT_EQ(repair->files_truncated, 1);
  EXPECT_EQ(fs::file_size(path), whole);
  EXPECT_EQ(CountEvents(path), 5);

  // A clean file is left alone.
  auto again = RepairRunForResume(run.string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->files_truncated, 0);
}

TEST(CheckpointTest, CorruptCheckpointFallsBackToScanning) {
  const fs::path run = TempDir("corrupt");
  fs::create_directories(run / kCheckpointDir);
  std::ofstream(run / kCheckpointDir / kCheckpointFile) << "tblogd-checkpoint 1\nwriter w 5\n";
  auto repair = RepairRunForResume(run.string());
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_FALSE(repair->had_checkpoint);
  EXPECT_TRUE(repair->writer_sequences.empty());
  ASSERT_FALSE(repair->warnings.empty());
}

// Event files rotated or sub-runs opened between the checkpoint and a crash
// hold only batches the checkpoint does not count: they go; files older than
// the checkpoint, and other writers' files, stay.
TEST(CheckpointTest, ResumeRemovesTblogdFilesCreatedAfterTheCheckpoint) {
  const fs::path run = TempDir("rotated");
  absl::Time now = absl::FromUnixSeconds(1700000000);
  EventFileOptions options;
  options.clock = [&now] { return now; };
  options.max_file_bytes = 150;
  options.buffer_bytes = 1;
  std::vector<std::string> events_per_dir;
  auto old_writer = EventFileWriter::Create((run / "old").string(), options);  // before
  ASSERT_TRUE(old_writer.ok());
  ASSERT_TRUE((*old_writer)->Write(ScalarEvent(0)).ok());
  ASSERT_TRUE((*old_writer)->Close().ok());
  const std::string old_path = (*old_writer)->current_path();

  now += absl::Seconds(1);
  auto writer = EventFileWriter::Create((run / "train").string(), options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (int step = 0; step < 6; ++step) ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
  ASSERT_TRUE((*writer)->Flush().ok());
  ASSERT_GT((*writer)->stats().files_opened, 1u);  // rotated before the checkpoint: kept
  const std::string checkpointed = (*writer)->current_path();
  const uint64_t checkpointed_length = fs::file_size(checkpointed);
  {
    auto checkpoint = CheckpointFile::Open(run.string());
    ASSERT_TRUE(checkpoint.ok());
    CheckpointState state;
    state.writer_sequences["w1"] = 6;
    state.files.push_back({"train", fs::path(checkpointed).filename().string(),
                           checkpointed_length});
    state.time = absl::ToDoubleSeconds(now - absl::UnixEpoch());
    ASSERT_TRUE((*checkpoint)->Write(state, true).ok());
  }
  std::vector<std::string> kept;
  for (const auto& entry : fs::recursive_directory_iterator(run)) {
    if (entry.is_regular_file() && IsEventFileName(entry.path().filename().string())) {
      kept.push_back(entry.path().string());
    }
  }
  // After the checkpoint, within the same second as it: rotations in train/,
  // a new sub-run, and a file of another writer.
  now += absl::Milliseconds(1);
  for (int step = 6; step < 12; ++step) ASSERT_TRUE((*writer)->Write(ScalarEvent(step)).ok());
  ASSERT_TRUE((*writer)->Flush().ok());
  now += absl::Milliseconds(1);
  auto eval = EventFileWriter::Create((run / "eval").string(), options);
  ASSERT_TRUE(eval.ok());
  ASSERT_TRUE((*eval)->Write(ScalarEvent(6)).ok());
  ASSERT_TRUE((*eval)->Close().ok());
  EventFileOptions foreign_options = options;
  foreign_options.source_writer = "pytorch";
  auto foreign = EventFileWriter::Create((run / "train").string(), foreign_options);
  ASSERT_TRUE(foreign.ok());
  ASSERT_TRUE((*foreign)->Write(ScalarEvent(99)).ok());
  ASSERT_TRUE((*foreign)->Close().ok());
  kept.push_back((*foreign)->current_path());
  const uint64_t train_files = (*writer)->stats().files_opened;
  ASSERT_TRUE((*writer)->Close().ok());  // the crash: no checkpoint since

  auto repair = RepairRunForResume(run.string());
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_TRUE(repair->had_checkpoint);
  std::vector<std::string> left;
  for (const auto& entry : fs::recursive_directory_iterator(run)) {
    if (entry.is_regular_file() && IsEventFileName(entry.path().filename().string())) {
      left.push_back(entry.path().string());
    }
  }
  std::sort(kept.begin(), kept.end());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, kept);
  EXPECT_EQ(fs::file_size(checkpointed), checkpointed_length);
  EXPECT_EQ(CountEvents(old_path), 2);
  // Removed: train's files opened after the checkpointed one, and eval's.
  const auto train_files_before = static_cast<int>(
      std::count_if(kept.begin(), kept.end(), [](const std::string& path) {
        return path.find("/train/") != std::string::npos;
      })) - 1;  // the foreign one
  EXPECT_EQ(repair->files_removed, static_cast<int>(train_files) - train_files_before + 1);
  EXPECT_GE(repair->files_removed, 2);
  bool said_so = false;
  for (const std::string& warning : repair->warnings) {
    said_so = said_so || warning.find("created after the checkpoint") != std::string::npos;
  }
  EXPECT_TRUE(said_so);

  // Idempotent: a second resume (say, after another crash) removes nothing.
  auto again = RepairRunForResume(run.string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->files_removed, 0);
}

TEST(CheckpointTest, TimeRoundTripsAndNeverGoesBack) {
  const fs::path run = TempDir("time");
  CheckpointState state;
  state.time = 1700000000.123456789;
  auto decoded = DecodeCheckpoint(EncodeCheckpoint(state));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->time, state.time);  // bit-exact
  {
    auto file = CheckpointFile::Open(run.string());
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->Write(state, false).ok());
  }
  auto reopened = CheckpointFile::Open(run.string());  // a resumed run
  ASSERT_TRUE(reopened.ok());
  CheckpointState earlier;
  earlier.time = 1600000000.0;  // the clock was stepped back
  ASSERT_TRUE((*reopened)->Write(earlier, false).ok());
  auto read = ReadCheckpoint(run.string());
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->time, state.time);
}

// Faults injected per call (FaultFileSystem over real files).

CheckpointState StateWithSequence(uint64_t sequence) {
  CheckpointState state;
  state.writer_sequences["w"] = sequence;
  state.files.push_back({"", "events.out.tfevents.1.host.1.000001", 100 * sequence});
  return state;
}

TEST(CheckpointTest, AFailedWriteCutOrFsyncIsReportedAndLeavesAWholeCheckpoint) {
  const fs::path run = TempDir("write_fault");
  FaultFileSystem faults;
  auto opened = CheckpointFile::Open(run.string(), /*sync_directories=*/true, &faults);
  ASSERT_TRUE(opened.ok()) << opened.status();
  CheckpointFile* file = opened->get();
  ASSERT_TRUE(file->Write(StateWithSequence(1), /*sync=*/true).ok());

  // The write failed: reported; the previous checkpoint is intact.
  faults.Inject(Fault(FileOp::kAppend, ENOSPC));
  const absl::Status failed = file->Write(StateWithSequence(2), /*sync=*/true);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find(file->path()), absl::string_view::npos) << failed;
  EXPECT_NE(failed.message().find("No space left on device"), absl::string_view::npos) << failed;
  ExpectCheckpoint(run, StateWithSequence(1));

  // Written, but the cut of the longer old text failed: the new checkpoint
  // reads back (bytes after its end line are ignored).
  ASSERT_TRUE(file->Write(StateWithSequence(123456789), /*sync=*/false).ok());
  faults.Inject(Fault(FileOp::kTruncate, EIO));
  EXPECT_FALSE(file->Write(StateWithSequence(3), /*sync=*/false).ok());
  ExpectCheckpoint(run, StateWithSequence(3));

  // The fsync failed: reported; not durable, but a whole checkpoint, the one
  // handed to the OS.
  faults.Inject(Fault(FileOp::kSync, EIO));
  ASSERT_TRUE(file->Write(StateWithSequence(4), /*sync=*/false).ok());  // no fsync asked
  const absl::Status sync_failed = file->Write(StateWithSequence(5), /*sync=*/true);
  EXPECT_NE(sync_failed.message().find("syncing " + file->path() + ": Input/output error"),
            absl::string_view::npos)
      << sync_failed;
  ExpectCheckpoint(run, StateWithSequence(5));

  // The next write, the disk well again, goes through.
  ASSERT_TRUE(file->Write(StateWithSequence(6), /*sync=*/true).ok());
  ExpectCheckpoint(run, StateWithSequence(6));
}

TEST(CheckpointTest, OpenReportsAFailedDirectory) {
  const fs::path run = TempDir("open_fault");
  FaultFileSystem faults;
  faults.Inject(Fault(FileOp::kCreateDir, EIO));
  auto file = CheckpointFile::Open(run.string(), /*sync_directories=*/true, &faults);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find((run / kCheckpointDir).string() + ": Input/output error"),
            absl::string_view::npos)
      << file.status();
  faults.Inject(Fault(FileOp::kSyncDir, EIO).Skip(1));  // the checkpoint file's directory
  file = CheckpointFile::Open(run.string(), /*sync_directories=*/true, &faults);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("syncing directory " + (run / kCheckpointDir).string()),
            absl::string_view::npos)
      << file.status();
  EXPECT_TRUE(CheckpointFile::Open(run.string(), /*sync_directories=*/true, &faults).ok());
}

// A resume that cannot cut a file fails (the run is not opened on top of a
// torn tail) and changes nothing; the next attempt repairs it.
TEST(CheckpointTest, AResumeThatCannotCutAFileFailsAndCanBeRetried) {
  const fs::path run = TempDir("repair_fault");
  const std::string path = WriteClosedEventFile(run, 2);
  ASSERT_FALSE(path.empty());
  const uint64_t whole = fs::file_size(path);
  { std::ofstream(path, std::ios::app | std::ios::binary) << std::string("\x30\0\0", 3); }
  FaultFileSystem faults;
  faults.Inject(Fault(FileOp::kTruncate, EIO));
  auto failed = RepairRunForResume(run.string(), &faults);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find(path), absl::string_view::npos) << failed.status();
  EXPECT_EQ(fs::file_size(path), whole + 3);
  auto repair = RepairRunForResume(run.string(), &faults);
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_EQ(repair->files_truncated, 1);
  EXPECT_EQ(fs::file_size(path), whole);
}

}  // namespace
}  // namespace tblog::daemon
