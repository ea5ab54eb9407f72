// Crash durability of pending reduced points (daemon/contribution_record.h):
// contribution records round-trip and read as nothing to TensorBoard's Event;
// RunReductions hands them out for pending points and restores points from
// them; the resume scan reads back only the contributions of points not yet
// written, from the checkpoint's pending points and the files past it, and
// cuts a torn contribution record (injected through the FileSystem seam).
#include "daemon/contribution_record.h"

#include <cerrno>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "daemon/aggregate.h"
#include "daemon/batch_marker.h"
#include "daemon/resume_scan.h"
#include "daemon/run_files.h"
#include "daemon_test_util.h"
#include "gtest/gtest.h"
#include "support/fault_file_system.h"
#include "tblog/tensorboard/event.pb.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;
using testing::FreshTempDir;
using testing::ReadSummaryEvents;

constexpr char kDaemon[] = "node-1";
const absl::Time kStart = absl::FromUnixSeconds(1700000000);

// Writer `writer`'s value of `tag` at `step`, reduced with MEAN.
Converted Contribute(const std::string& writer, const std::string& tag, int64_t step,
                     float value) {
  v1::Record record;
  record.set_tag(tag);
  record.set_step(step);
  record.mutable_scalar()->set_value(value);
  record.mutable_reduce()->set_op(v1::REDUCE_OP_MEAN);
  static const Limits limits;
  RecordConverter converter(limits, nullptr);
  absl::StatusOr<Converted> converted = converter.Convert(record, 1700000000.0, writer);
  EXPECT_TRUE(converted.ok()) << converted.status();
  return *std::move(converted);
}

v1::OpenRunRequest Group(uint32_t size) {
  v1::OpenRunRequest request;
  request.set_reduce_group_size(size);
  return request;
}

// The contribution records among `converted`'s events (of a batch of
// `writer`), as the resume scan hands them to Restore: partials.
std::vector<std::string> Records(const Converted& converted, const std::string& writer) {
  std::vector<std::string> records;
  for (const EventOut& event : converted.events) {
    BatchMarker marker;
    std::string_view record;
    if (ClassifyEvent(event.event, &marker, &record) == EventKind::kContribution) {
      EXPECT_TRUE(event.reduced);
      // A writer's scalar is written compact: the batch names its writer.
      EXPECT_EQ(DecodePartialRecord(record).status().code(), absl::StatusCode::kDataLoss);
      absl::StatusOr<Contribution> c = DecodePartialRecord(record, writer);
      EXPECT_TRUE(c.ok()) << c.status();
      if (!c.ok()) continue;
      EXPECT_EQ(c->contributors, std::vector<std::string>{writer});
      records.push_back(PartialRecord(c->head, c->op, c->histogram, c->style, c->group_size,
                                      c->scalar, c->histo, c->contributors)
                            .SerializeAsString());
    }
  }
  return records;
}

// The points (tag@step=value) of the summary events of `dir`.
std::vector<std::string> Points(const fs::path& dir) {
  std::vector<std::string> points;
  for (const auto& event : ReadSummaryEvents(dir)) {
    const auto& value = event.summary().value(0);
    points.push_back(absl::StrCat(value.tag(), "@", event.step(), "=",
                                  value.tensor().float_val(0)));
  }
  return points;
}

TEST(ContributionRecordTest, RoundTripsAndShowsNothingToTensorBoard) {
  v1::Record head;
  head.set_tag("grad");
  head.set_step(12);
  head.set_subrun("train");
  head.set_wall_time(1700000001.5);
  HistogramState histo;
  histo.first_bin = 700;
  histo.bins = {1, 0, 5, 2};
  histo.min = -0.5;
  histo.max = 3;
  histo.num = 8;
  histo.sum = 4.25;
  histo.sum_squares = 17;
  const std::string bytes = PartialRecord(head, v1::REDUCE_OP_MERGE, /*histogram=*/true,
                                          v1::SCALAR_STYLE_TENSOR, 8, {}, histo, {"r0", "r3"})
                                .SerializeAsString();
  const EventOut event = ContributionEvent("train", bytes, head.wall_time());
  EXPECT_TRUE(event.reduced);
  EXPECT_EQ(event.subrun, "train");

  BatchMarker marker;
  std::string_view payload;
  ASSERT_EQ(ClassifyEvent(event.event, &marker, &payload), EventKind::kContribution);
  EXPECT_EQ(payload, bytes);
  // TensorBoard's Event: a wall time, and nothing to show.
  tensorboard::Event parsed;
  ASSERT_TRUE(parsed.ParseFromString(event.event));
  EXPECT_EQ(parsed.wall_time(), 1700000001.5);
  EXPECT_FALSE(parsed.has_summary());
  EXPECT_EQ(parsed.what_case(), tensorboard::Event::WHAT_NOT_SET);

  absl::StatusOr<Contribution> back = DecodePartialRecord(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->head.tag(), "grad");
  EXPECT_EQ(back->head.step(), 12);
  EXPECT_EQ(back->head.subrun(), "train");
  EXPECT_EQ(back->group_size, 8u);
  EXPECT_TRUE(back->histogram);
  EXPECT_EQ(back->histo.first_bin, 700u);
  EXPECT_EQ(back->histo.bins, histo.bins);
  EXPECT_EQ(back->histo.num, 8u);
  EXPECT_EQ(back->contributors, (std::vector<std::string>{"r0", "r3"}));

  // Undecodable or invalid bytes are DATA_LOSS, never a crash.
  EXPECT_EQ(DecodePartialRecord("\xff\xff").status().code(), absl::StatusCode::kDataLoss);
  v1::Record no_ids = PartialRecord(head, v1::REDUCE_OP_MEAN, false, v1::SCALAR_STYLE_TENSOR, 2,
                                    ScalarState{1, 1, 1, 1}, {}, {});
  EXPECT_EQ(DecodePartialRecord(no_ids.SerializeAsString()).status().code(),
            absl::StatusCode::kDataLoss);

  // One writer's weighted scalar, compact: the same state back, exactly.
  Contribution one;
  one.head = head;
  one.op = v1::REDUCE_OP_MEAN;
  one.style = v1::SCALAR_STYLE_SIMPLE_VALUE;
  one.scalar = ScalarState{2.5 * 0.1f, 2.5, 0.1f, 0.1f};
  const std::string compact = ContributionRecordBytes(one, 4, {"r2"});
  EXPECT_LT(compact.size(), PartialRecord(head, one.op, false, one.style, 4, one.scalar, {}, {"r2"})
                                .SerializeAsString()
                                .size());
  absl::StatusOr<Contribution> scalar = DecodePartialRecord(compact, "r2");
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  EXPECT_EQ(scalar->scalar.sum, one.scalar.sum);
  EXPECT_EQ(scalar->scalar.weight, 2.5);
  EXPECT_EQ(scalar->scalar.min, one.scalar.min);
  EXPECT_EQ(scalar->style, v1::SCALAR_STYLE_SIMPLE_VALUE);
  EXPECT_EQ(scalar->group_size, 4u);
  EXPECT_EQ(scalar->contributors, std::vector<std::string>{"r2"});

  // A reduced point's event keeps its summary and is told apart.
  EventOut point;
  tensorboard::Event summary;
  summary.set_step(3);
  summary.mutable_summary()->add_value()->set_tag("loss");
  point.event = summary.SerializeAsString();
  MarkReducedPoint(point);
  EXPECT_TRUE(point.reduced);
  EXPECT_EQ(ClassifyEvent(point.event, &marker), EventKind::kReducedPoint);
  ASSERT_TRUE(parsed.ParseFromString(point.event));
  EXPECT_EQ(parsed.summary().value(0).tag(), "loss");
}

TEST(ContributionRecordTest, PendingPointsAreRestoredWithTheirContributors) {
  ReduceMetrics metrics;
  RunReductions before(absl::Seconds(30), &metrics);
  ASSERT_TRUE(before.Configure(Group(3)).ok());
  std::vector<std::string> records;
  for (const char* writer : {"a", "b"}) {
    auto out = before.Absorb(writer, Contribute(writer, "loss", 7, writer[0] == 'a' ? 1 : 2),
                             kStart);
    ASSERT_TRUE(out.ok()) << out.status();
    const std::vector<std::string> got = Records(*out, writer);
    ASSERT_EQ(got.size(), 1u) << "one record per contribution to a pending point";
    records.push_back(got[0]);
  }
  EXPECT_EQ(before.PendingRecords().size(), 1u);

  // A restart: the files' records come back.
  RunReductions after(absl::Seconds(30), &metrics);
  ASSERT_TRUE(after.Configure(Group(3)).ok());
  after.NoteWritten({{{"", "loss"}, 6}}, {});
  const RunReductions::RestoreCounts counts = after.Restore(records, kStart + absl::Seconds(100));
  EXPECT_EQ(counts.points, 1u);
  EXPECT_EQ(counts.contributions, 2u);
  EXPECT_EQ(counts.undecodable, 0u);
  // Its timeout counts from the restart.
  EXPECT_FALSE(after.HasDue(kStart + absl::Seconds(100) + absl::Seconds(29)));
  // A resent contribution of a restored contributor is a duplicate.
  auto again = after.Absorb("a", Contribute("a", "loss", 7, 1), kStart + absl::Seconds(101));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->events.empty());
  v1::RunInfo info;
  after.AddTo(info);
  EXPECT_EQ(info.reduce_contributions_duplicate(), 1u);
  // The last one completes it: the mean of all three, marked as a point.
  auto last = after.Absorb("c", Contribute("c", "loss", 7, 6), kStart + absl::Seconds(101));
  ASSERT_TRUE(last.ok());
  ASSERT_EQ(last->events.size(), 1u);
  EXPECT_TRUE(last->events[0].reduced);
  tensorboard::Event event;
  ASSERT_TRUE(event.ParseFromString(last->events[0].event));
  EXPECT_FLOAT_EQ(event.summary().value(0).tensor().float_val(0), 3.0f);
  after.AddTo(info);
  EXPECT_EQ(info.reduce_contributions_missing(), 0u);

  // Records of a point the files hold (at or below the last step) are not
  // restored; a record whose group is complete is due at once.
  RunReductions written(absl::Seconds(30), nullptr);
  written.NoteWritten({{{"", "loss"}, 7}}, {});
  EXPECT_EQ(written.Restore(records, kStart).points, 0u);
  RunReductions complete(absl::Seconds(30), nullptr);
  ASSERT_TRUE(complete.Configure(Group(2)).ok());
  std::vector<std::string> two;
  for (const std::string& record : records) {
    auto c = DecodePartialRecord(record);
    ASSERT_TRUE(c.ok());
    two.push_back(PartialRecord(c->head, c->op, false, c->style, 2, c->scalar, {},
                                c->contributors)
                      .SerializeAsString());
  }
  EXPECT_EQ(complete.Restore(two, kStart).points, 1u);
  EXPECT_TRUE(complete.HasDue(kStart));
  const Converted due = complete.TakeDue(kStart);
  ASSERT_EQ(due.events.size(), 1u);
  complete.AddTo(info);
  EXPECT_EQ(info.reduce_contributions_missing(), 0u);
}

class ContributionScanTest : public ::testing::Test {
 protected:
  ContributionScanTest() {
    options_.hostname = kDaemon;
    options_.buffer_bytes = 1;  // every record reaches the OS at once: a kill -9 loses none
  }
  std::unique_ptr<RunFiles> Files(const fs::path& dir, FileSystem* fs = FileSystem::Default()) {
    EventFileOptions options = options_;
    options.file_system = fs;
    return std::make_unique<RunFiles>("run", dir.string(), options, limits_,
                                      std::map<std::string, uint64_t>{});
  }
  // Writer `writer`'s batch `sequence`: its MEAN contribution to loss@step,
  // absorbed by `reductions` and written as Run writes it.
  static absl::Status WriteContribution(RunFiles& files, RunReductions& reductions,
                                        const std::string& writer, uint64_t sequence,
                                        int64_t step, float value) {
    auto converted = reductions.Absorb(writer, Contribute(writer, "loss", step, value), kStart);
    if (!converted.ok()) return converted.status();
    size_t part = 0;
    bool io = false;
    TBLOG_RETURN_IF_ERROR(files.WriteParts(*converted, &part, &io, BatchKey{writer, sequence}));
    files.NoteBatchWritten(writer, sequence);
    return absl::OkStatus();
  }

  EventFileOptions options_;
  Limits limits_;
};

// Points complete in step order: the scan holds the records of the points it
// has not seen written, and hands back only those of the points pending at
// the crash, from the checkpoint's state and the files past it.
TEST_F(ContributionScanTest, OnlyThePointsPendingAtTheCrashComeBack) {
  const fs::path run = FreshTempDir("contrib_scan");
  {
    RunReductions reductions(absl::Seconds(30), nullptr);
    ASSERT_TRUE(reductions.Configure(Group(3)).ok());
    auto files = Files(run);
    uint64_t sequence = 0;
    for (int64_t step = 1; step <= 3; ++step) {  // written points
      for (const char* writer : {"a", "b", "c"}) {
        ASSERT_TRUE(WriteContribution(*files, reductions, writer, ++sequence, step, 1).ok());
      }
    }
    ASSERT_TRUE(WriteContribution(*files, reductions, "a", ++sequence, 4, 3).ok());
    // A checkpoint with loss@4 pending (contributor a), as Run writes it.
    bool synced = false;
    ASSERT_TRUE(files->FlushAll(false, &synced).ok());
    ASSERT_TRUE(
        files->WriteCheckpoint(false, reductions.WrittenSteps(), reductions.PendingRecords()).ok());
    ASSERT_TRUE(WriteContribution(*files, reductions, "b", ++sequence, 4, 6).ok());
    ASSERT_TRUE(WriteContribution(*files, reductions, "c", ++sequence, 5, 9).ok());
    // Killed: loss@4 waits for c, loss@5 for a and b.
  }
  auto repair = RepairRunForResume(run.string(), kDaemon);
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_TRUE(repair->had_checkpoint);
  EXPECT_EQ(repair->contributions.size(), 3u);  // the checkpoint's loss@4, b's, c's
  EXPECT_EQ(repair->last_steps.at({"", "loss"}), 3);

  RunReductions reductions(absl::Seconds(30), nullptr);
  ASSERT_TRUE(reductions.Configure(Group(3)).ok());
  reductions.NoteWritten(repair->last_steps, repair->reduced_steps);
  const auto counts = reductions.Restore(repair->contributions, kStart);
  EXPECT_EQ(counts.points, 2u);
  EXPECT_EQ(counts.contributions, 3u);
  {
    std::map<std::string, uint64_t> sequences = repair->writer_sequences;
    auto files = std::make_unique<RunFiles>("run", run.string(), options_, limits_, sequences,
                                            repair->resumed);
    // The clients resend what was not acknowledged: the restored ones are
    // duplicates; the missing ones complete the points.
    ASSERT_TRUE(WriteContribution(*files, reductions, "b", 100, 4, 6).ok());
    ASSERT_TRUE(WriteContribution(*files, reductions, "c", 101, 4, 0).ok());
    ASSERT_TRUE(WriteContribution(*files, reductions, "a", 102, 5, 0).ok());
    ASSERT_TRUE(WriteContribution(*files, reductions, "b", 103, 5, 0).ok());
    ASSERT_TRUE(files->CloseAll().ok());
  }
  // The means, each point once, in step order: loss@4 = (3+6+0)/3,
  // loss@5 = (9+0+0)/3.
  EXPECT_EQ(Points(run), (std::vector<std::string>{"loss@1=1", "loss@2=1", "loss@3=1", "loss@4=3",
                                                   "loss@5=3"}));
  v1::RunInfo info;
  reductions.AddTo(info);
  EXPECT_EQ(info.reduce_contributions_duplicate(), 1u);
  EXPECT_EQ(info.reduce_contributions_missing(), 0u);
}

// Two crashes in a row: the first resume finds a series' reduced points only
// by its scan (its checkpoint knew none of them), and the daemon after it
// writes a checkpoint before it completes a point of that series. That
// checkpoint must still name the series' last reduced step: the next resume
// scans only past it, and a resent contribution to a point written before the
// first crash must count as late, not start the point again.
TEST_F(ContributionScanTest, AReducedStepFoundByAScanSurvivesTheNextCheckpoint) {
  const fs::path run = FreshTempDir("contrib_twice");
  {
    RunReductions reductions(absl::Seconds(30), nullptr);
    ASSERT_TRUE(reductions.Configure(Group(3)).ok());
    auto files = Files(run);
    uint64_t sequence = 0;
    for (int64_t step = 1; step <= 3; ++step) {
      for (const char* writer : {"a", "b", "c"}) {
        ASSERT_TRUE(WriteContribution(*files, reductions, writer, ++sequence, step, 1).ok());
      }
    }
    bool synced = false;
    ASSERT_TRUE(files->FlushAll(false, &synced).ok());
    // Killed before any checkpoint.
  }
  {
    auto repair = RepairRunForResume(run.string(), kDaemon);
    ASSERT_TRUE(repair.ok()) << repair.status();
    EXPECT_FALSE(repair->had_checkpoint);
    RunReductions reductions(absl::Seconds(30), nullptr);
    ASSERT_TRUE(reductions.Configure(Group(3)).ok());
    reductions.NoteWritten(repair->last_steps, repair->reduced_steps);
    auto files = std::make_unique<RunFiles>("run", run.string(), options_, limits_,
                                            repair->writer_sequences, repair->resumed);
    // A checkpoint, as Run writes it at its flush, before any new point.
    bool synced = false;
    ASSERT_TRUE(files->FlushAll(false, &synced).ok());
    ASSERT_TRUE(
        files->WriteCheckpoint(false, reductions.WrittenSteps(), reductions.PendingRecords()).ok());
    // Killed again.
  }
  auto repair = RepairRunForResume(run.string(), kDaemon);
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_TRUE(repair->had_checkpoint);
  RunReductions reductions(absl::Seconds(30), nullptr);
  ASSERT_TRUE(reductions.Configure(Group(3)).ok());
  reductions.NoteWritten(repair->last_steps, repair->reduced_steps);
  {
    auto files = std::make_unique<RunFiles>("run", run.string(), options_, limits_,
                                            repair->writer_sequences, repair->resumed);
    // A client that never saw step 3's batch acknowledged as durable resends it.
    ASSERT_TRUE(WriteContribution(*files, reductions, "a", 7, 3, 1).ok());
    EXPECT_TRUE(reductions.PendingRecords().empty()) << "step 3 started again";
    ASSERT_TRUE(files->CloseAll().ok());
  }
  v1::RunInfo info;
  reductions.AddTo(info);
  EXPECT_EQ(info.reduce_contributions_late(), 1u);
  EXPECT_EQ(Points(run), (std::vector<std::string>{"loss@1=1", "loss@2=1", "loss@3=1"}));
}

// A crash in the middle of a contribution record (a short write, and the cut
// back that would follow it never happens): the scan cuts the torn record and
// restores the whole ones; the torn one's batch was never acknowledged, and
// its resend completes the point.
TEST_F(ContributionScanTest, ATornContributionRecordIsCutAndItsResendCounts) {
  const fs::path run = FreshTempDir("contrib_torn");
  FaultFileSystem faults;
  {
    RunReductions reductions(absl::Seconds(30), nullptr);
    ASSERT_TRUE(reductions.Configure(Group(3)).ok());
    auto files = Files(run, &faults);
    ASSERT_TRUE(WriteContribution(*files, reductions, "a", 1, 1, 3).ok());
    // The batch marker goes through; the record is cut after 20 bytes.
    faults.Inject(Fault(FileOp::kAppend, ENOSPC).Skip(1).KeepBytes(20).Times(Fault::kForever));
    faults.Inject(Fault(FileOp::kTruncate, EIO).Times(Fault::kForever));
    // Taken (the event writer keeps the error for its next call), torn in
    // the file.
    (void)WriteContribution(*files, reductions, "b", 1, 1, 6);
    EXPECT_GE(faults.failures(), 2);
    // Killed.
  }
  faults.Clear();
  auto repair = RepairRunForResume(run.string(), kDaemon, &faults);
  ASSERT_TRUE(repair.ok()) << repair.status();
  EXPECT_EQ(repair->files_truncated, 1);
  EXPECT_GT(repair->bytes_removed, 0u);
  EXPECT_EQ(repair->contributions.size(), 1u);  // a's

  RunReductions reductions(absl::Seconds(30), nullptr);
  ASSERT_TRUE(reductions.Configure(Group(3)).ok());
  reductions.NoteWritten(repair->last_steps, repair->reduced_steps);
  EXPECT_EQ(reductions.Restore(repair->contributions, kStart).contributions, 1u);
  {
    auto files = std::make_unique<RunFiles>("run", run.string(), options_, limits_,
                                            repair->writer_sequences, repair->resumed);
    ASSERT_TRUE(WriteContribution(*files, reductions, "a", 1, 1, 3).ok());  // a duplicate
    ASSERT_TRUE(WriteContribution(*files, reductions, "b", 1, 1, 6).ok());
    ASSERT_TRUE(WriteContribution(*files, reductions, "c", 1, 1, 0).ok());
    ASSERT_TRUE(files->CloseAll().ok());
  }
  EXPECT_EQ(Points(run), (std::vector<std::string>{"loss@1=3"}));
}

}  // namespace
}  // namespace tblog::daemon
