// The resume scan and RunFiles' side of append-only recovery: batch markers,
// what a crash leaves in the files, resending only what they lack, torn
// tails, file names that sort last, and files of other daemons left alone.
#include "daemon/resume_scan.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "daemon/batch_marker.h"
#include "daemon/checkpoint.h"
#include "daemon/run_files.h"
#include "daemon_test_util.h"
#include "engine/io/event_reader.h"
#include "gtest/gtest.h"
#include "support/fault_file_system.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;
using testing::FileSizes;
using testing::FreshTempDir;
using testing::ReadSummaryEvents;
using testing::TagSteps;

constexpr char kDaemon[] = "node-1";

EventOut Scalar(const std::string& subrun, const std::string& tag, int64_t step) {
  tensorboard::Event event;
  event.set_step(step);
  event.set_wall_time(1700000000.0 + static_cast<double>(step));
  auto* value = event.mutable_summary()->add_value();
  value->set_tag(tag);
  value->set_simple_value(static_cast<float>(step));
  EventOut out;
  out.subrun = subrun;
  out.event = event.SerializeAsString();
  return out;
}

Converted Record(const std::string& subrun, const std::string& tag, int64_t step) {
  Converted converted;
  converted.events.push_back(Scalar(subrun, tag, step));
  return converted;
}

// Points (sub-run, tag, step) as scalar columns convert them: packed.
Converted Packed(const std::vector<std::tuple<std::string, std::string, int64_t>>& points) {
  Converted converted;
  PackedEvents& packed = converted.packed;
  for (const auto& [subrun, tag, step] : points) {
    uint32_t series = 0;
    while (series < packed.series.size() &&
           (packed.series[series].subrun != subrun || packed.series[series].tag != tag)) {
      ++series;
    }
    if (series == packed.series.size()) packed.series.push_back({subrun, tag});
    packed.bytes += Scalar(subrun, tag, step).event;
    packed.events.push_back({packed.bytes.size(), step, series});
  }
  return converted;
}

class ResumeScanTest : public ::testing::Test {
 protected:
  ResumeScanTest() {
    options_.hostname = kDaemon;
    options_.buffer_bytes = 1;  // every record reaches the OS at once: a kill -9 loses none
  }

  std::unique_ptr<RunFiles> Files(const fs::path& dir, std::map<std::string, uint64_t> sequences = {},
                                  ResumedFiles resumed = {}) {
    return std::make_unique<RunFiles>("run", dir.string(), options_, limits_, std::move(sequences),
                                      std::move(resumed));
  }

  // Batch `sequence` of writer "w": one scalar "<subrun>:x" at step
  // `sequence` in each sub-run, then NoteBatchWritten unless `partial`.
  static void WriteBatch(RunFiles& files, uint64_t sequence, const std::vector<std::string>& subruns,
                         bool partial = false) {
    for (const std::string& subrun : subruns) {
      size_t part = 0;
      bool io = false;
      ASSERT_TRUE(files
                      .WriteParts(Record(subrun, subrun + ":x", static_cast<int64_t>(sequence)),
                                  &part, &io, BatchKey{"w", sequence})
                      .ok());
    }
    if (!partial) files.NoteBatchWritten("w", sequence);
  }

  // The writer's whole history, sent again the way a client resends (what
  // the resume says the files have is dropped, as Run does).
  void Resend(RunFiles& files, const ResumeRepair& repair, uint64_t through,
              const std::vector<std::string>& subruns) {
    const auto it = repair.writer_sequences.find("w");
    const uint64_t have = it == repair.writer_sequences.end() ? 0 : it->second;
    for (uint64_t sequence = have + 1; sequence <= through; ++sequence) {
      WriteBatch(files, sequence, subruns);
    }
  }

  EventFileOptions options_;
  Limits limits_;
};

TEST(BatchMarkerTest, RoundTripsAndReadsAsAnEventWithNothingToShow) {
  const BatchMarker marker{{"writer \n id", 41}, 3, {"other", 1ull << 40}};
  const std::string bytes = EncodeBatchMarkerEvent(marker, 1700000000.25);
  BatchMarker decoded;
  ASSERT_EQ(ClassifyEvent(bytes, &decoded), EventKind::kMarker);
  EXPECT_EQ(decoded, marker);
  // What TensorBoard's readers see: an Event with a wall time, step 0, and no
  // summary, graph, session log or file version; the field stays unknown.
  tensorboard::Event event;
  ASSERT_TRUE(event.ParseFromString(bytes));
  EXPECT_EQ(event.wall_time(), 1700000000.25);
  EXPECT_EQ(event.step(), 0);
  EXPECT_FALSE(event.has_summary());
  EXPECT_TRUE(event.file_version().empty());
  EXPECT_EQ(event.what_case(), tensorboard::Event::WHAT_NOT_SET);

  const BatchMarker begin_only{{}, 0, {"w", 1}};
  ASSERT_EQ(ClassifyEvent(EncodeBatchMarkerEvent(begin_only, 1.0), &decoded), EventKind::kMarker);
  EXPECT_EQ(decoded, begin_only);

  tensorboard::Event version;
  version.set_file_version("brain.Event:2");
  EXPECT_EQ(ClassifyEvent(version.SerializeAsString(), &decoded), EventKind::kFileVersion);
  EXPECT_EQ(ClassifyEvent(Scalar("", "x", 1).event, &decoded), EventKind::kEvent);
  EXPECT_EQ(ClassifyEvent("\xff\xff", &decoded), EventKind::kUndecodable);
}

TEST(DaemonIdTest, OwnFilesAreTellApartByName) {
  EXPECT_TRUE(IsOwnEventFile("events.out.tfevents.1700000000.node-1.42.000007", "node-1"));
  EXPECT_TRUE(IsOwnEventFile("events.out.tfevents.1700000000.node-1.42.000007.v2", "node-1"));
  EXPECT_TRUE(IsOwnEventFile("events.out.tfevents.1700000000.a.b.c.42.1234567", "a.b.c"));
  EXPECT_FALSE(IsOwnEventFile("events.out.tfevents.1700000000.node-2.42.000007", "node-1"));
  EXPECT_FALSE(IsOwnEventFile("events.out.tfevents.1700000000.node-1.5.42.000007", "node-1"));
  EXPECT_FALSE(IsOwnEventFile("events.out.tfevents.1700000000.node-10.42.000007", "node-1"));
  EXPECT_FALSE(IsOwnEventFile("events.out.tfevents.1700000000.node-1", "node-1"));
  EXPECT_FALSE(IsOwnEventFile("checkpoint", "node-1"));

  EXPECT_TRUE(ValidateDaemonId("trainer-0.pod_a").ok());
  EXPECT_FALSE(ValidateDaemonId("").ok());
  EXPECT_FALSE(ValidateDaemonId(".hidden").ok());
  EXPECT_FALSE(ValidateDaemonId("a/b").ok());
  EXPECT_FALSE(ValidateDaemonId(std::string(65, 'a')).ok());
}

// Crash before the run's first checkpoint: the files say which batches they
// hold, whole or in part; the resend writes only what they lack.
TEST_F(ResumeScanTest, CrashBeforeTheFirstCheckpointResendsNothingTwice) {
  const fs::path run = FreshTempDir("scan_first");
  const std::vector<std::string> subruns = {"train", "eval"};
  {
    auto files = Files(run);
    for (uint64_t sequence = 1; sequence <= 4; ++sequence) WriteBatch(*files, sequence, subruns);
    WriteBatch(*files, 5, {"train"}, /*partial=*/true);  // killed inside batch 5
  }
  const auto sizes = FileSizes(run);
  auto repair = RepairRunForResume(run.string(), kDaemon);
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_FALSE(repair->had_checkpoint);
  EXPECT_EQ(FileSizes(run), sizes);  // nothing cut, nothing removed
  // Batch 4's end markers were still to come: held in part, like 5.
  EXPECT_EQ(repair->writer_sequences.at("w"), 3u);
  ASSERT_EQ(repair->resumed.batches.size(), 2u);
  const RecoveredBatch& five = repair->resumed.batches.at({"w", 5});
  EXPECT_EQ(five.parts.at("train").events, 1u);
  EXPECT_FALSE(five.Complete());
  // The highest step of each (sub-run, tag) read, for the reductions.
  const std::map<std::pair<std::string, std::string>, int64_t> last_steps = {
      {{"eval", "eval:x"}, 4}, {{"train", "train:x"}, 5}};
  EXPECT_EQ(repair->last_steps, last_steps);

  {
    auto files = Files(run, repair->writer_sequences, repair->resumed);
    Resend(*files, *repair, 8, subruns);
    bool synced = false;
    ASSERT_TRUE(files->FlushAll(true, &synced).ok());
    ASSERT_TRUE(files->WriteCheckpoint(true, {{{"train", "loss"}, 3}}).ok());
    ASSERT_TRUE(files->CloseAll().ok());
  }
  for (const std::string& subrun : subruns) {
    std::vector<std::string> expected;
    for (int step = 1; step <= 8; ++step) expected.push_back(subrun + ":x@" + std::to_string(step));
    EXPECT_EQ(TagSteps(ReadSummaryEvents(run / subrun)), expected) << subrun;
  }
  // Clean now: the checkpoint says all, the scan past it finds nothing.
  auto again = RepairRunForResume(run.string(), kDaemon);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->had_checkpoint);
  EXPECT_EQ(again->writer_sequences.at("w"), 8u);
  EXPECT_TRUE(again->resumed.batches.empty());
  // The reductions' steps come back from the checkpoint.
  const SeriesSteps reduced = {{{"train", "loss"}, 3}};
  EXPECT_EQ(again->reduced_steps, reduced);
  EXPECT_EQ(again->last_steps, reduced);
}

// A batch of packed events (scalar columns) killed in the middle: its resend
// skips, sub-run by sub-run, the points the files hold and writes the rest.
TEST_F(ResumeScanTest, APackedBatchHeldInPartIsCompletedByItsResend) {
  const fs::path run = FreshTempDir("scan_packed");
  const std::vector<std::tuple<std::string, std::string, int64_t>> points = {
      {"a", "x", 1}, {"b", "y", 1}, {"a", "x", 2}, {"a", "z", 2}, {"b", "y", 2}, {"a", "x", 3}};
  {
    auto files = Files(run);
    size_t part = 0;
    bool io = false;
    // Killed after its first three points.
    const std::vector<std::tuple<std::string, std::string, int64_t>> first(points.begin(),
                                                                           points.begin() + 3);
    ASSERT_TRUE(files->WriteParts(Packed(first), &part, &io, BatchKey{"w", 1}).ok());
  }
  auto repair = RepairRunForResume(run.string(), kDaemon);
  ASSERT_TRUE(repair.ok()) << repair.status();
  const RecoveredBatch& one = repair->resumed.batches.at({"w", 1});
  EXPECT_EQ(one.parts.at("a").events, 2u);
  EXPECT_EQ(one.parts.at("b").events, 1u);
  {
    auto files = Files(run, repair->writer_sequences, repair->resumed);
    size_t part = 0;
    bool io = false;
    ASSERT_TRUE(files->WriteParts(Packed(points), &part, &io, BatchKey{"w", 1}).ok());
    EXPECT_EQ(part, points.size());
    files->NoteBatchWritten("w", 1);
    ASSERT_TRUE(files->CloseAll().ok());
  }
  EXPECT_EQ(TagSteps(ReadSummaryEvents(run / "a")),
            (std::vector<std::string>{"x@1", "x@2", "z@2", "x@3"}));
  EXPECT_EQ(TagSteps(ReadSummaryEvents(run / "b")), (std::vector<std::string>{"y@1", "y@2"}));
  auto again = RepairRunForResume(run.string(), kDaemon);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->resumed.batches.empty());
  EXPECT_EQ(again->writer_sequences.at("w"), 1u);
}

// A batch held in part survives a second crash through the checkpoint.
TEST_F(ResumeScanTest, PartialBatchesAreCarriedByTheCheckpoint) {
  const fs::path run = FreshTempDir("scan_carry");
  {
    auto files = Files(run);
    WriteBatch(*files, 1, {"a", "b"});
    WriteBatch(*files, 2, {"a"}, /*partial=*/true);
  }
  auto first = RepairRunForResume(run.string(), kDaemon);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->resumed.batches.size(), 2u);  // 1 (no end marker yet) and 2
  {
    // The client has not resent yet when a checkpoint is taken; then a crash.
    auto files = Files(run, first->writer_sequences, first->resumed);
    bool synced = false;
    ASSERT_TRUE(files->FlushAll(true, &synced).ok());
    ASSERT_TRUE(files->WriteCheckpoint(true).ok());
  }
  auto second = RepairRunForResume(run.string(), kDaemon);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->resumed.batches, first->resumed.batches);
  {
    auto files = Files(run, second->writer_sequences, second->resumed);
    Resend(*files, *second, 3, {"a", "b"});
    ASSERT_TRUE(files->CloseAll().ok());
  }
  EXPECT_EQ(TagSteps(ReadSummaryEvents(run / "a")),
            (std::vector<std::string>{"a:x@1", "a:x@2", "a:x@3"}));
  EXPECT_EQ(TagSteps(ReadSummaryEvents(run / "b")),
            (std::vector<std::string>{"b:x@1", "b:x@2", "b:x@3"}));
}

// Only a torn tail is cut; complete records stay; the run goes on in a new
// file that sorts last. A 0-byte file and a file torn inside its first
// record are repaired too.
TEST_F(ResumeScanTest, TornTailsAreCutAndTheNextFileSortsLast) {
  const fs::path run = FreshTempDir("scan_torn");
  std::string torn_path;
  {
    auto files = Files(run);
    WriteBatch(*files, 1, {""});
    WriteBatch(*files, 2, {""});
    ASSERT_TRUE(files->CloseAll().ok());
  }
  torn_path = FileSizes(run).begin()->first;
  const uintmax_t whole = fs::file_size(torn_path);
  { std::ofstream(torn_path, std::ios::app | std::ios::binary) << std::string("\x30\0\0\0", 4); }
  // A crash right after creating a file, and one inside its first record;
  // and a file of ours named far in the future (a clock stepped back since).
  const std::string empty = (run / "events.out.tfevents.1700000001.node-1.7.000001").string();
  const std::string header_torn = (run / "events.out.tfevents.1700000002.node-1.7.000002").string();
  const std::string future = (run / "events.out.tfevents.4000000000.node-1.7.000003").string();
  { std::ofstream(empty, std::ios::binary); }
  { std::ofstream(header_torn, std::ios::binary) << std::string("\x18\0\0\0\0\0\0\0\1\2", 10); }
  { std::ofstream(future, std::ios::binary); }

  auto repair = RepairRunForResume(run.string(), kDaemon);
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_EQ(repair->files_truncated, 2);
  EXPECT_EQ(fs::file_size(torn_path), whole);
  EXPECT_EQ(fs::file_size(header_torn), 0u);
  EXPECT_EQ(fs::file_size(empty), 0u);
  EXPECT_EQ(repair->writer_sequences.at("w"), 2u);  // the close ended batch 2

  {
    auto files = Files(run, repair->writer_sequences, repair->resumed);
    WriteBatch(*files, 3, {""});
    ASSERT_TRUE(files->CloseAll().ok());
  }
  const auto after = FileSizes(run);
  ASSERT_EQ(after.size(), 5u);
  const std::string newest = after.rbegin()->first;
  EXPECT_GT(newest, future);  // sorts after every file, even one from the future
  EXPECT_TRUE(IsOwnEventFile(fs::path(newest).filename().string(), kDaemon));
  EXPECT_EQ(TagSteps(ReadSummaryEvents(run)),
            (std::vector<std::string>{":x@1", ":x@2", ":x@3"}));
}

// Two daemons, one run: each scans and repairs only its own files.
TEST_F(ResumeScanTest, AnotherDaemonsFilesAreNeverTouched) {
  const fs::path run = FreshTempDir("scan_two");
  {
    EventFileOptions other = options_;
    other.hostname = "node-2";
    RunFiles files("run", run.string(), other, limits_, {});
    WriteBatch(files, 1, {"train"});
    WriteBatch(files, 2, {"train"}, /*partial=*/true);
  }
  const std::string theirs = FileSizes(run).begin()->first;
  { std::ofstream(theirs, std::ios::app | std::ios::binary) << std::string("\x30\0\0", 3); }
  const auto their_time = fs::last_write_time(theirs);
  const uintmax_t their_size = fs::file_size(theirs);
  {
    auto files = Files(run);
    WriteBatch(*files, 1, {"train"});
    WriteBatch(*files, 2, {"train"}, /*partial=*/true);
  }
  auto repair = RepairRunForResume(run.string(), kDaemon);
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_EQ(repair->files_truncated, 0);
  EXPECT_EQ(fs::file_size(theirs), their_size);
  EXPECT_EQ(fs::last_write_time(theirs), their_time);
  EXPECT_EQ(repair->writer_sequences.at("w"), 1u);
  ASSERT_EQ(repair->resumed.batches.size(), 1u);
  EXPECT_EQ(repair->resumed.batches.begin()->second.parts.at("train").events, 1u);
  {
    auto files = Files(run, repair->writer_sequences, repair->resumed);
    ASSERT_TRUE(files->WriteCheckpoint(true).ok());
  }
  EXPECT_TRUE(fs::exists(CheckpointPath(run.string(), kDaemon)));
  EXPECT_FALSE(fs::exists(CheckpointPath(run.string(), "node-2")));
  EXPECT_EQ(fs::file_size(theirs), their_size);
}

// A resume that cannot cut a torn tail fails, names the file, and changes
// nothing; the next attempt repairs it.
TEST_F(ResumeScanTest, AResumeThatCannotCutFailsAndCanBeRetried) {
  const fs::path run = FreshTempDir("scan_fault");
  {
    auto files = Files(run);
    WriteBatch(*files, 1, {""});
  }
  const std::string path = FileSizes(run).begin()->first;
  const uintmax_t whole = fs::file_size(path);
  { std::ofstream(path, std::ios::app | std::ios::binary) << std::string("\x30\0\0", 3); }
  FaultFileSystem faults;
  faults.Inject(Fault(FileOp::kTruncate, EIO));
  auto failed = RepairRunForResume(run.string(), kDaemon, &faults);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find(path), absl::string_view::npos) << failed.status();
  EXPECT_EQ(fs::file_size(path), whole + 3);
  auto repair = RepairRunForResume(run.string(), kDaemon, &faults);
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_EQ(repair->files_truncated, 1);
  EXPECT_EQ(fs::file_size(path), whole);
}

// A corrupt checkpoint: the scan reads all of the daemon's files instead.
TEST_F(ResumeScanTest, ACorruptCheckpointFallsBackToScanningEverything) {
  const fs::path run = FreshTempDir("scan_corrupt");
  {
    auto files = Files(run);
    WriteBatch(*files, 1, {""});
    WriteBatch(*files, 2, {""});
    bool synced = false;
    ASSERT_TRUE(files->FlushAll(true, &synced).ok());
  }
  fs::create_directories(run / kCheckpointDir);
  std::ofstream(CheckpointPath(run.string(), kDaemon)) << "tblogd-checkpoint 2\nwriter w 5\n";
  auto repair = RepairRunForResume(run.string(), kDaemon);
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_FALSE(repair->had_checkpoint);
  EXPECT_EQ(repair->writer_sequences.at("w"), 2u);
  ASSERT_FALSE(repair->warnings.empty());
}

// A step that goes back for a tag of one writer is counted (TensorBoard
// would hide points); other writers' and sub-runs' steps are their own.
TEST_F(ResumeScanTest, AStepThatGoesBackIsCounted) {
  const fs::path run = FreshTempDir("scan_steps");
  std::atomic<uint64_t> steps_back{0};
  RunFiles files("run", run.string(), options_, limits_, {}, {}, &steps_back);
  uint64_t sequence = 0;
  const auto write = [&](const std::string& writer, const std::string& subrun, int64_t step) {
    size_t part = 0;
    bool io = false;
    ASSERT_TRUE(files.WriteParts(Record(subrun, "loss", step), &part, &io, {writer, ++sequence})
                    .ok());
    files.NoteBatchWritten(writer, sequence);
  };
  write("a", "", 1);
  write("a", "", 2);
  write("b", "", 1);       // another writer: its own steps (the tag rule is the user's)
  write("a", "eval", 1);   // another sub-run: another series
  EXPECT_EQ(steps_back.load(), 0u);
  write("a", "", 2);
  write("a", "", 1);
  EXPECT_EQ(steps_back.load(), 2u);
  write("a", "", 5);
  EXPECT_EQ(steps_back.load(), 2u);
  ASSERT_TRUE(files.CloseAll().ok());
}

}  // namespace
}  // namespace tblog::daemon
