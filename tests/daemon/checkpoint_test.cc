#include "daemon/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_format.h"
#include "engine/io/crc32c.h"
#include "gtest/gtest.h"
#include "support/fault_file_system.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;

constexpr char kDaemon[] = "node-1";

fs::path TempDir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / ("checkpoint_test_" + name + "_" +
                                                   std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Expects ReadCheckpoint(run) to find `expected`.
void ExpectCheckpoint(const fs::path& run, const CheckpointState& expected) {
  auto read = ReadCheckpoint(run.string(), kDaemon);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ(**read, expected);
}

TEST(CheckpointTest, EncodeDecodeRoundTripWithOddNames) {
  CheckpointState state;
  state.writer_sequences["plain"] = 7;
  state.writer_sequences["with space\nand%percent"] = 123456789012345ull;
  state.writer_sequences["."] = 1;
  state.files.push_back({"", "events.out.tfevents.1.host.1.000001", 1234});
  state.files.push_back({"eval/top 1", "events.out.tfevents.2.host.1.000002.v2", 0});
  state.reduced_steps[{"", "loss"}] = 42;
  state.reduced_steps[{"eval/top 1", "acc %/top 5"}] = -3;
  // Pending points are serialized Records: any bytes, newlines and spaces too.
  state.pending_points = {std::string("\0\n \xff pending", 12), "", "x"};
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
  auto file = CheckpointFile::Open(run.string(), kDaemon);
  ASSERT_TRUE(file.ok()) << file.status();
  auto none = ReadCheckpoint(run.string(), kDaemon);
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

TEST(CheckpointTest, TimeRoundTripsAndNeverGoesBack) {
  const fs::path run = TempDir("time");
  CheckpointState state;
  state.time = 1700000000.123456789;
  auto decoded = DecodeCheckpoint(EncodeCheckpoint(state));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->time, state.time);  // bit-exact
  {
    auto file = CheckpointFile::Open(run.string(), kDaemon);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->Write(state, false).ok());
  }
  auto reopened = CheckpointFile::Open(run.string(), kDaemon);  // a resumed run
  ASSERT_TRUE(reopened.ok());
  CheckpointState earlier;
  earlier.time = 1600000000.0;  // the clock was stepped back
  ASSERT_TRUE((*reopened)->Write(earlier, false).ok());
  auto read = ReadCheckpoint(run.string(), kDaemon);
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
  auto opened = CheckpointFile::Open(run.string(), kDaemon, /*sync_directories=*/true, &faults);
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
  auto file = CheckpointFile::Open(run.string(), kDaemon, /*sync_directories=*/true, &faults);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find((run / kCheckpointDir).string() + ": Input/output error"),
            absl::string_view::npos)
      << file.status();
  faults.Inject(Fault(FileOp::kSyncDir, EIO).Skip(1));  // the checkpoint file's directory
  file = CheckpointFile::Open(run.string(), kDaemon, /*sync_directories=*/true, &faults);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("syncing directory " + (run / kCheckpointDir).string()),
            absl::string_view::npos)
      << file.status();
  EXPECT_TRUE(CheckpointFile::Open(run.string(), kDaemon, /*sync_directories=*/true, &faults).ok());
}

// Version 2 holds the batches the files have in part; version 1 still reads.
TEST(CheckpointTest, BatchesRoundTripAndVersionOneStillReads) {
  CheckpointState state;
  state.writer_sequences["w 1"] = 4;
  RecoveredBatch& batch = state.batches[{"w 1", 6}];
  batch.parts_expected = 2;
  batch.parts["train"] = {3, true};
  batch.parts[""] = {0, false};
  state.batches[{"w2", 1}].parts["eval/x"] = {17, false};
  auto decoded = DecodeCheckpoint(EncodeCheckpoint(state));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, state);
  EXPECT_FALSE(batch.Complete());
  batch.parts[""].complete = true;
  EXPECT_TRUE(batch.Complete());

  std::string v1 = "tblogd-checkpoint 1\nwriter w 5\n";
  v1 += absl::StrFormat("end %08x\n", crc32c::Value(v1));
  auto old = DecodeCheckpoint(v1);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->writer_sequences.at("w"), 5u);
}

// Each daemon has its own checkpoint; tblogd before daemon identities kept
// one per run, read when a daemon has none of its own.
TEST(CheckpointTest, OnePerDaemonAndTheLegacyOneIsReadWhenThereIsNone) {
  const fs::path run = TempDir("per_daemon");
  fs::create_directories(run / kCheckpointDir);
  {
    CheckpointState legacy;
    legacy.writer_sequences["old"] = 9;
    std::ofstream(run / kCheckpointDir / kLegacyCheckpointFile) << EncodeCheckpoint(legacy);
  }
  auto read = ReadCheckpoint(run.string(), "node-2");
  ASSERT_TRUE(read.ok() && read->has_value()) << read.status();
  EXPECT_EQ((*read)->writer_sequences.at("old"), 9u);

  auto file = CheckpointFile::Open(run.string(), "node-2");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->path(), CheckpointPath(run.string(), "node-2"));
  EXPECT_EQ((*file)->path(), (run / kCheckpointDir / "node-2.checkpoint").string());
  CheckpointState mine;
  mine.writer_sequences["new"] = 1;
  ASSERT_TRUE((*file)->Write(mine, true).ok());
  read = ReadCheckpoint(run.string(), "node-2");
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->writer_sequences, mine.writer_sequences);
}

}  // namespace
}  // namespace tblog::daemon
