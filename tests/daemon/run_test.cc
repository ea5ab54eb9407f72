#include "daemon/run.h"

#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "daemon/byte_budget.h"
#include "daemon/checkpoint.h"
#include "daemon/metrics.h"
#include "daemon/record_converter.h"
#include "daemon/resume_scan.h"
#include "daemon/worker_pool.h"
#include "daemon_test_util.h"
#include "base/sync.h"
#include "gtest/gtest.h"
#include "file_size_limit.h"
#include "support/fault_file_system.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;
using testing::FileSizes;
using testing::FreshTempDir;
using testing::ReadSummaryEvents;
using testing::TagSteps;

// Collects acks, as a Write stream would.
class RecordingSink : public AckSink {
 public:
  void OnAck(v1::WriteResponse ack, int completed_batches) override {
    MutexLock lock(&mu_);
    completed_ += completed_batches;
    acks_.push_back(std::move(ack));
  }
  // Waits until `n` batches are acknowledged; returns every ack so far.
  std::vector<v1::WriteResponse> WaitForBatches(int n) {
    MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return completed_ >= n; };
    mu_.Await(Condition(&done));
    return acks_;
  }

 private:
  Mutex mu_;
  int completed_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::WriteResponse> acks_ ABSL_GUARDED_BY(mu_);
};

v1::Record Scalar(const std::string& tag, int64_t step, float value) {
  v1::Record record;
  record.set_tag(tag);
  record.set_step(step);
  record.set_wall_time(1700000000.0 + static_cast<double>(step));
  record.mutable_scalar()->set_value(value);
  return record;
}

// A histogram of `n` float32 values: slow to convert next to a scalar.
v1::Record Histogram(const std::string& tag, int64_t step, int n) {
  v1::Record record;
  record.set_tag(tag);
  record.set_step(step);
  record.set_wall_time(1700000000.0 + static_cast<double>(step));
  v1::Tensor* values = record.mutable_histogram()->mutable_values();
  values->set_dtype(v1::DTYPE_FLOAT32);
  values->add_shape(n);
  std::vector<float> data(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) data[static_cast<size_t>(i)] = static_cast<float>(i % 1000);
  values->set_data(std::string(reinterpret_cast<const char*>(data.data()), data.size() * 4));
  return record;
}

v1::WriteRequest Batch(const std::string& writer, uint64_t sequence, std::vector<v1::Record> records) {
  v1::WriteRequest request;
  request.set_writer_id(writer);
  request.set_sequence(sequence);
  for (auto& record : records) *request.add_records() = std::move(record);
  return request;
}

class RunTest : public ::testing::Test {
 protected:
  RunTest() : workers_(4), budget_(1 << 30), converter_(options_.limits, &workers_) {
    context_ = {&options_, &converter_, &workers_, &budget_, &metrics_};
  }

  std::shared_ptr<daemon::Run> MakeRun(const fs::path& dir,
                               std::map<std::string, uint64_t> sequences = {},
                               daemon::ResumedFiles resumed = {}) {
    return std::make_shared<daemon::Run>(context_, "run", dir.string(), std::map<std::string, std::string>{},
                                 "", std::move(sequences), std::move(resumed));
  }

  static absl::Status CloseAndWait(daemon::Run& run) {
    Notification done;
    absl::Status result;
    run.Close(Converted{}, [&](absl::Status status) {
      result = status;
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

  DaemonOptions options_;
  WorkerPool workers_;
  ByteBudget budget_;
  Metrics metrics_;
  RecordConverter converter_;
  RunContext context_;
};

TEST_F(RunTest, BatchesConvertedOutOfOrderAreWrittenInArrivalOrder) {
  const fs::path dir = FreshTempDir("run_order");
  auto run = MakeRun(dir);
  auto sink = std::make_shared<RecordingSink>();
  // Batch 1 holds a slow histogram; 2..20 are scalars, converted long before it.
  ASSERT_TRUE(run->Submit(Batch("w", 1, {Histogram("weights", 0, 2'000'000)}), sink, 0).ok());
  for (int seq = 2; seq <= 20; ++seq) {
    ASSERT_TRUE(run->Submit(Batch("w", seq, {Scalar("loss", seq, 1.0f * seq)}), sink, 0).ok());
  }
  const auto acks = sink->WaitForBatches(20);
  ASSERT_FALSE(acks.empty());
  EXPECT_EQ(acks.back().written_sequence(), 20u);
  ASSERT_TRUE(CloseAndWait(*run).ok());

  std::vector<std::string> expected = {"weights@0"};
  for (int seq = 2; seq <= 20; ++seq) expected.push_back("loss@" + std::to_string(seq));
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)), expected);
  EXPECT_EQ(run->Info().records_written(), 20u);
}

TEST_F(RunTest, BadRecordIsReportedAndTheOthersAreWritten) {
  const fs::path dir = FreshTempDir("run_bad");
  auto run = MakeRun(dir);
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(run->Submit(Batch("w", 1, {Scalar("a", 1, 1), Scalar("bad\ttag", 1, 2),
                                         Scalar("c", 1, 3)}),
                          sink, 0)
                  .ok());
  const auto acks = sink->WaitForBatches(1);
  int errors = 0;
  for (const auto& ack : acks) {
    for (const auto& error : ack.errors()) {
      ++errors;
      EXPECT_EQ(error.sequence(), 1u);
      EXPECT_EQ(error.index(), 1u);
      EXPECT_EQ(error.tag(), "bad\ttag");
      EXPECT_EQ(error.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
      EXPECT_NE(error.message().find("batch 1, record 1"), std::string::npos) << error.message();
    }
  }
  EXPECT_EQ(errors, 1);
  ASSERT_TRUE(CloseAndWait(*run).ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)), (std::vector<std::string>{"a@1", "c@1"}));
  EXPECT_EQ(run->Info().records_rejected(), 1u);
}

// A reconnecting writer resends on a new stream what it has not seen
// acknowledged: the batches the run holds are acknowledged as duplicates
// (listed in the ack), the others written, each once.
TEST_F(RunTest, DuplicatesAreDroppedAndAcknowledged) {
  const fs::path dir = FreshTempDir("run_dup");
  auto run = MakeRun(dir);
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(run->Submit(Batch("w", 1, {Scalar("x", 1, 1)}), sink, 0).ok());
  ASSERT_TRUE(run->Submit(Batch("w", 2, {Scalar("x", 2, 2)}), sink, 0).ok());
  ASSERT_TRUE(run->Submit(Batch("w", 0, {Scalar("y", 5, 5)}), sink, 0).ok());  // unsequenced
  ASSERT_TRUE(run->Submit(Batch("w", 0, {Scalar("y", 5, 5)}), sink, 0).ok());  // never deduped
  ASSERT_TRUE(run->Submit(Batch("other", 1, {Scalar("z", 1, 1)}), sink, 0).ok());
  sink->WaitForBatches(5);
  auto resent = std::make_shared<RecordingSink>();  // the writer's next stream
  ASSERT_TRUE(run->Submit(Batch("w", 1, {Scalar("x", 1, 1)}), resent, 0).ok());
  ASSERT_TRUE(run->Submit(Batch("w", 2, {Scalar("x", 2, 2)}), resent, 0).ok());
  ASSERT_TRUE(run->Submit(Batch("w", 3, {Scalar("x", 3, 3)}), resent, 0).ok());
  const auto acks = resent->WaitForBatches(3);
  std::vector<uint64_t> duplicates;
  for (const auto& ack : acks) {
    duplicates.insert(duplicates.end(), ack.duplicate_sequences().begin(),
                      ack.duplicate_sequences().end());
  }
  EXPECT_EQ(duplicates, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(acks.back().written_sequence(), 3u);
  ASSERT_TRUE(CloseAndWait(*run).ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)),
            (std::vector<std::string>{"x@1", "x@2", "y@5", "y@5", "z@1", "x@3"}));
  EXPECT_EQ(run->Info().batches_duplicate(), 2u);
  EXPECT_EQ(run->Info().writers(), 2u);
}

// Sequences 1, 3, 2 on one stream: 3 is refused with OUT_OF_RANGE naming the
// expected and the received sequence, nothing of it is written, and the
// stream can go on at 2; another writer is not disturbed.
TEST_F(RunTest, AGapInAStreamIsRefusedNamingTheSequences) {
  const fs::path dir = FreshTempDir("run_gap");
  auto run = MakeRun(dir);
  auto sink = std::make_shared<RecordingSink>();
  auto other = std::make_shared<RecordingSink>();
  ASSERT_TRUE(run->Submit(Batch("w", 1, {Scalar("x", 1, 1)}), sink, 0).ok());
  ASSERT_TRUE(run->Submit(Batch("other", 1, {Scalar("o", 1, 1)}), other, 0).ok());
  const absl::Status gap = run->Submit(Batch("w", 3, {Scalar("x", 3, 3)}), sink, 0);
  EXPECT_EQ(gap.code(), absl::StatusCode::kOutOfRange) << gap;
  EXPECT_NE(gap.message().find("writer \"w\": expected batch sequence 2 after 1 on this "
                               "stream, received 3"),
            absl::string_view::npos)
      << gap;
  // A new stream that skips ahead is refused as well.
  const absl::Status skipped =
      run->Submit(Batch("w", 5, {Scalar("x", 5, 5)}), std::make_shared<RecordingSink>(), 0);
  EXPECT_EQ(skipped.code(), absl::StatusCode::kOutOfRange) << skipped;
  EXPECT_NE(skipped.message().find("expected batch sequence 2 or lower, received 5"),
            absl::string_view::npos)
      << skipped;
  ASSERT_TRUE(run->Submit(Batch("w", 2, {Scalar("x", 2, 2)}), sink, 0).ok());
  ASSERT_TRUE(run->Submit(Batch("other", 2, {Scalar("o", 2, 2)}), other, 0).ok());
  EXPECT_EQ(sink->WaitForBatches(2).back().written_sequence(), 2u);
  EXPECT_EQ(other->WaitForBatches(2).back().written_sequence(), 2u);
  ASSERT_TRUE(CloseAndWait(*run).ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)),
            (std::vector<std::string>{"x@1", "o@1", "x@2", "o@2"}));
  EXPECT_EQ(run->Info().batches_duplicate(), 0u);
}

TEST_F(RunTest, AStepBackInAStreamIsRefused) {
  const fs::path dir = FreshTempDir("run_step_back");
  auto run = MakeRun(dir);
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(run->Submit(Batch("w", 1, {Scalar("x", 1, 1)}), sink, 0).ok());
  ASSERT_TRUE(run->Submit(Batch("w", 2, {Scalar("x", 2, 2)}), sink, 0).ok());
  const absl::Status back = run->Submit(Batch("w", 1, {Scalar("x", 1, 1)}), sink, 0);
  EXPECT_EQ(back.code(), absl::StatusCode::kOutOfRange) << back;
  EXPECT_NE(back.message().find("expected batch sequence 3 after 2 on this stream, received 1"),
            absl::string_view::npos)
      << back;
  sink->WaitForBatches(2);
  ASSERT_TRUE(CloseAndWait(*run).ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)), (std::vector<std::string>{"x@1", "x@2"}));
}

// A writer that starts again from 1 after OpenRun reported its batches
// (a restarted process with a fixed writer_id) is refused instead of having
// its new batches dropped as duplicates; continuing after the reported
// sequence works.
TEST_F(RunTest, ANewStreamBelowWhatOpenRunReportedIsRefused) {
  const fs::path dir = FreshTempDir("run_restarted_writer");
  auto run = MakeRun(dir);
  auto first = std::make_shared<RecordingSink>();
  for (int seq = 1; seq <= 3; ++seq) {
    ASSERT_TRUE(run->Submit(Batch("w", seq, {Scalar("x", seq, 1)}), first, 0).ok());
  }
  first->WaitForBatches(3);
  EXPECT_EQ(run->WriterSequences().at("w"), 3u);  // the restarted process's OpenRun
  const absl::Status restarted =
      run->Submit(Batch("w", 1, {Scalar("x", 100, 1)}), std::make_shared<RecordingSink>(), 0);
  EXPECT_EQ(restarted.code(), absl::StatusCode::kOutOfRange) << restarted;
  EXPECT_NE(restarted.message().find("expected a new stream to start at batch sequence 4 or "
                                     "later, received 1"),
            absl::string_view::npos)
      << restarted;
  auto next = std::make_shared<RecordingSink>();
  ASSERT_TRUE(run->Submit(Batch("w", 4, {Scalar("x", 4, 1)}), next, 0).ok());
  EXPECT_EQ(next->WaitForBatches(1).back().written_sequence(), 4u);
  ASSERT_TRUE(CloseAndWait(*run).ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)),
            (std::vector<std::string>{"x@1", "x@2", "x@3", "x@4"}));
}

// The floor is what the first OpenRun after a stream began reported: the
// writer may have asked then, so later reports (more written meanwhile) do
// not raise it, and its resend from there is a duplicate, not an error.
TEST_F(RunTest, TheResumeFloorIsTheFirstReportAfterAStreamBegan) {
  const fs::path dir = FreshTempDir("run_floor");
  auto run = MakeRun(dir);
  auto first = std::make_shared<RecordingSink>();
  ASSERT_TRUE(run->Submit(Batch("w", 1, {Scalar("x", 1, 1)}), first, 0).ok());
  first->WaitForBatches(1);
  EXPECT_EQ(run->WriterSequences().at("w"), 1u);  // the writer reopens: floor 1
  ASSERT_TRUE(run->Submit(Batch("w", 2, {Scalar("x", 2, 2)}), first, 0).ok());  // in flight
  first->WaitForBatches(2);
  EXPECT_EQ(run->WriterSequences().at("w"), 2u);  // another writer's OpenRun
  auto second = std::make_shared<RecordingSink>();
  ASSERT_TRUE(run->Submit(Batch("w", 2, {Scalar("x", 2, 2)}), second, 0).ok());  // resent
  ASSERT_TRUE(run->Submit(Batch("w", 3, {Scalar("x", 3, 3)}), second, 0).ok());
  const auto acks = second->WaitForBatches(2);
  std::vector<uint64_t> duplicates;
  for (const auto& ack : acks) {
    duplicates.insert(duplicates.end(), ack.duplicate_sequences().begin(),
                      ack.duplicate_sequences().end());
  }
  EXPECT_EQ(duplicates, (std::vector<uint64_t>{2}));
  ASSERT_TRUE(CloseAndWait(*run).ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)), (std::vector<std::string>{"x@1", "x@2", "x@3"}));
}

TEST_F(RunTest, FlushWaitsForTheWritersSequenceThenSyncsAndCheckpoints) {
  const fs::path dir = FreshTempDir("run_flush");
  auto run = MakeRun(dir);
  auto sink = std::make_shared<RecordingSink>();
  Notification flushed;
  absl::Status flush_status = absl::UnknownError("not called");
  run->Flush("w", 2, /*sync=*/true, [&](absl::Status status) {
    flush_status = status;
    flushed.Notify();
  });
  ASSERT_TRUE(run->Submit(Batch("w", 1, {Scalar("x", 1, 1)}), sink, 0).ok());
  sink->WaitForBatches(1);
  EXPECT_FALSE(flushed.HasBeenNotified());  // batch 2 has not arrived
  ASSERT_TRUE(run->Submit(Batch("w", 2, {Scalar("x", 2, 2)}), sink, 0).ok());
  flushed.WaitForNotification();
  EXPECT_TRUE(flush_status.ok()) << flush_status;
  // Visible without closing, and recorded as durable.
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)), (std::vector<std::string>{"x@1", "x@2"}));
  auto checkpoint = ReadCheckpoint(dir.string(), DaemonIdentity(options_.file));
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  ASSERT_TRUE(checkpoint->has_value());
  EXPECT_EQ((*checkpoint)->writer_sequences.at("w"), 2u);
  ASSERT_EQ((*checkpoint)->files.size(), 1u);
  const auto acks = sink->WaitForBatches(2);
  EXPECT_EQ(acks.back().durable_sequence(), 2u);
  EXPECT_EQ(acks.back().flushed_sequence(), 2u);

  // A cancelled parked flush never runs.
  bool called = false;
  const uint64_t ticket = run->Flush("w", 9, false, [&](absl::Status) { called = true; });
  ASSERT_NE(ticket, 0u);
  EXPECT_TRUE(run->CancelFlush(ticket));
  ASSERT_TRUE(CloseAndWait(*run).ok());
  EXPECT_FALSE(called);
}

TEST_F(RunTest, ClosedRunRefusesWrites) {
  const fs::path dir = FreshTempDir("run_closed");
  auto run = MakeRun(dir);
  ASSERT_TRUE(CloseAndWait(*run).ok());
  EXPECT_FALSE(run->open());
  const absl::Status status = run->Submit(Batch("w", 1, {Scalar("x", 1, 1)}), nullptr, 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
}

// A resumed run's OpenRun reports the checkpoint's sequences: the writer
// continues after them; a stream that starts at or below them is refused.
TEST_F(RunTest, ResumedWritersContinueAfterTheReportedSequence) {
  const fs::path dir = FreshTempDir("run_resumed");
  auto run = MakeRun(dir, {{"w", 5}});
  auto sink = std::make_shared<RecordingSink>();
  EXPECT_EQ(run->Submit(Batch("w", 5, {Scalar("x", 5, 5)}), sink, 0).code(),
            absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(run->Submit(Batch("w", 6, {Scalar("x", 6, 6)}), sink, 0).ok());
  const auto acks = sink->WaitForBatches(1);
  EXPECT_EQ(acks.back().written_sequence(), 6u);
  ASSERT_TRUE(CloseAndWait(*run).ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)), (std::vector<std::string>{"x@6"}));
}

TEST_F(RunTest, BudgetIsReleasedOnceWritten) {
  const fs::path dir = FreshTempDir("run_budget");
  auto run = MakeRun(dir);
  auto sink = std::make_shared<RecordingSink>();
  budget_.Charge(1000);
  ASSERT_TRUE(run->Submit(Batch("w", 1, {Scalar("x", 1, 1)}), sink, 1000).ok());
  sink->WaitForBatches(1);
  EXPECT_EQ(budget_.used(), 0u);
  ASSERT_TRUE(CloseAndWait(*run).ok());
}

// The daemon dies (no Close, no checkpoint) after its event file rotated
// past the last checkpoint; the resumed run plus the client's resend from the
// durable sequence hold every batch exactly once, and no byte was cut.
TEST_F(RunTest, RotationAfterTheCheckpointThenACrashResumesExactlyOnce) {
  const fs::path dir = FreshTempDir("run_rotate_crash");
  options_.file.max_file_bytes = 150;
  options_.file.buffer_bytes = 1;  // each record reaches the OS at once
  std::vector<std::string> expected;
  {
    auto run = MakeRun(dir);
    auto sink = std::make_shared<RecordingSink>();
    for (int seq = 1; seq <= 5; ++seq) {
      ASSERT_TRUE(run->Submit(Batch("w", seq, {Scalar("x", seq, 1.0f * seq)}), sink, 0).ok());
    }
    Notification flushed;
    run->Flush("w", 5, /*sync=*/true, [&](absl::Status status) {
      EXPECT_TRUE(status.ok()) << status;
      flushed.Notify();
    });
    flushed.WaitForNotification();
    const uint32_t files_at_checkpoint = run->Info().files();
    for (int seq = 6; seq <= 15; ++seq) {
      ASSERT_TRUE(run->Submit(Batch("w", seq, {Scalar("x", seq, 1.0f * seq)}), sink, 0).ok());
    }
    sink->WaitForBatches(15);
    ASSERT_GT(run->Info().files(), files_at_checkpoint);  // rotated since the checkpoint
    // The crash: the run is dropped with no Close and no checkpoint.
  }
  const auto sizes_before = FileSizes(dir);
  auto repair = RepairRunForResume(dir.string(), DaemonIdentity(options_.file));
  ASSERT_TRUE(repair.ok()) << repair.status();
  // Append-only: nothing cut or removed. Each group ends its batches with
  // their markers when it is handed to the OS, so 6..15 are whole (batches
  // held in part are resume_scan_test's).
  EXPECT_EQ(FileSizes(dir), sizes_before);
  ASSERT_EQ(repair->writer_sequences.at("w"), 15u);
  EXPECT_TRUE(repair->resumed.batches.empty());
  auto run = MakeRun(dir, repair->writer_sequences, repair->resumed);
  auto sink = std::make_shared<RecordingSink>();
  // The client goes on after what OpenRun reports (15): nothing to resend.
  for (int seq = 1; seq <= 16; ++seq) expected.push_back("x@" + std::to_string(seq));
  ASSERT_TRUE(run->Submit(Batch("w", 16, {Scalar("x", 16, 16.0f)}), sink, 0).ok());
  sink->WaitForBatches(1);
  ASSERT_TRUE(CloseAndWait(*run).ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)), expected);
}

absl::Status FlushAndWait(daemon::Run& run) {
  Notification done;
  absl::Status result;
  run.Flush("", 0, /*sync=*/false, [&](absl::Status status) {
    result = status;
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

// The disk fills up in the middle of a batch: nothing after the failure is
// acknowledged or dropped; the run refuses new batches while the error lasts;
// once space returns, the next flush tick writes every record exactly once.
TEST_F(RunTest, BatchesStuckOnAFullDiskAreWrittenOnceSpaceReturns) {
  const fs::path dir = FreshTempDir("run_disk_full");
  options_.file.buffer_bytes = 1;  // each record reaches the OS at once
  auto run = MakeRun(dir);
  auto sink = std::make_shared<RecordingSink>();
  std::vector<std::string> expected;
  auto batch = [&](int seq) {
    std::vector<v1::Record> records;
    for (int k = 0; k < 3; ++k) records.push_back(Scalar("t" + std::to_string(k), seq, 1.0f));
    return Batch("w", static_cast<uint64_t>(seq), std::move(records));
  };
  ASSERT_TRUE(run->Submit(batch(1), sink, 0).ok());
  sink->WaitForBatches(1);
  std::vector<v1::WriteResponse> acks;
  int accepted = 0;
  {
    FileSizeLimit limit(16);  // smaller than any file: even a fresh one fails
    ASSERT_TRUE(limit.ok());
    // Taken until the writer meets the error, refused from then on.
    for (int seq = 2; seq <= 6; ++seq) {
      const absl::Status submitted = run->Submit(batch(seq), sink, 0);
      if (!submitted.ok()) {
        EXPECT_EQ(submitted.code(), absl::StatusCode::kUnavailable) << submitted;
        break;
      }
      ++accepted;
    }
    ASSERT_GE(accepted, 1);
    // Flush ticks while the disk is full: each fails and nothing moves.
    for (int tick = 0; tick < 3; ++tick) EXPECT_FALSE(FlushAndWait(*run).ok());
    EXPECT_FALSE(run->Info().last_error().empty());
    EXPECT_TRUE(run->has_unflushed());
    EXPECT_EQ(run->Submit(batch(7), sink, 0).code(), absl::StatusCode::kUnavailable);
    acks = sink->WaitForBatches(1);
    limit.Lift();
  }
  for (const auto& ack : acks) {
    EXPECT_EQ(ack.written_sequence(), 1u);
    EXPECT_EQ(ack.errors_size(), 0);
  }
  ASSERT_TRUE(FlushAndWait(*run).ok());  // the flusher's next tick
  acks = sink->WaitForBatches(1 + accepted);
  EXPECT_EQ(acks.back().written_sequence(), static_cast<uint64_t>(1 + accepted));
  EXPECT_TRUE(run->Info().last_error().empty());
  // The client reconnects (a new stream), resends what it had not seen
  // acknowledged, then goes on.
  auto resent = std::make_shared<RecordingSink>();
  for (int seq = 2; seq <= 7; ++seq) ASSERT_TRUE(run->Submit(batch(seq), resent, 0).ok());
  acks = resent->WaitForBatches(6);
  for (const auto& ack : acks) EXPECT_EQ(ack.errors_size(), 0);
  ASSERT_TRUE(CloseAndWait(*run).ok());
  for (int seq = 1; seq <= 7; ++seq) {
    for (int k = 0; k < 3; ++k) expected.push_back("t" + std::to_string(k) + "@" + std::to_string(seq));
  }
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)), expected);
  EXPECT_EQ(run->Info().records_written(), 21u);
}

// A sub-run's directory cannot be created (EIO): the batch is not lost nor
// acknowledged, the writer is told why (UNAVAILABLE naming the directory and
// the error), the run keeps serving, and once the disk is well the next
// flush tick writes the batch.
TEST_F(RunTest, ADirectoryThatCannotBeCreatedIsReportedAndRetried) {
  const fs::path dir = FreshTempDir("run_mkdir_fault");
  FaultFileSystem faults;
  options_.file.file_system = &faults;
  auto run = MakeRun(dir);
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(run->Submit(Batch("w", 1, {Scalar("loss", 1, 1)}), sink, 0).ok());
  sink->WaitForBatches(1);

  faults.Inject(Fault(FileOp::kCreateDir, EIO).OnPathsWith("/eval").Times(Fault::kForever));
  v1::Record in_eval = Scalar("loss", 2, 2);
  in_eval.set_subrun("eval");
  ASSERT_TRUE(run->Submit(Batch("w", 2, {in_eval}), sink, 0).ok());
  const absl::Status flushed = FlushAndWait(*run);
  EXPECT_EQ(flushed.code(), absl::StatusCode::kUnavailable) << flushed;
  const std::string expected =
      "creating directory " + (dir / "eval").string() + ": Input/output error";
  EXPECT_NE(flushed.message().find(expected), absl::string_view::npos) << flushed;
  EXPECT_NE(run->Info().last_error().find(expected), std::string::npos)
      << run->Info().last_error();
  const absl::Status refused = run->Submit(Batch("w", 3, {Scalar("loss", 3, 3)}), sink, 0);
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_EQ(sink->WaitForBatches(1).back().written_sequence(), 1u);
  EXPECT_GE(faults.failures(), 1);

  faults.Clear();
  ASSERT_TRUE(FlushAndWait(*run).ok());  // the flusher's next tick
  EXPECT_EQ(sink->WaitForBatches(2).back().written_sequence(), 2u);
  EXPECT_TRUE(run->Info().last_error().empty());
  ASSERT_TRUE(run->Submit(Batch("w", 3, {Scalar("loss", 3, 3)}), sink, 0).ok());
  sink->WaitForBatches(3);
  ASSERT_TRUE(CloseAndWait(*run).ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)), (std::vector<std::string>{"loss@1", "loss@3"}));
  EXPECT_EQ(TagSteps(ReadSummaryEvents(dir / "eval")), (std::vector<std::string>{"loss@2"}));
}

// The disk fills in the middle of a record (ENOSPC after 7 bytes of it,
// injected): the run reports it, no file of the run holds a partial record
// meanwhile (ReadSummaryEvents fails the test on one), and once space returns
// every record is there once. EFBIG the same.
TEST_F(RunTest, AWriteCutShortByAFullDiskLeavesNoPartialRecord) {
  for (const int error : {ENOSPC, EFBIG}) {
    SCOPED_TRACE(error);
    const fs::path dir = FreshTempDir("run_short_write");
    FaultFileSystem faults;
    options_.file.file_system = &faults;
    options_.file.buffer_bytes = 1;  // each record reaches the OS at once
    auto run = MakeRun(dir);
    auto sink = std::make_shared<RecordingSink>();
    ASSERT_TRUE(run->Submit(Batch("w", 1, {Scalar("x", 1, 1)}), sink, 0).ok());
    sink->WaitForBatches(1);
    faults.Inject(Fault(FileOp::kAppend, error).KeepBytes(7));
    faults.Inject(Fault(FileOp::kAppend, error).Times(Fault::kForever));
    ASSERT_TRUE(run->Submit(Batch("w", 2, {Scalar("x", 2, 2), Scalar("y", 2, 2)}), sink, 0).ok());
    EXPECT_FALSE(FlushAndWait(*run).ok());
    EXPECT_NE(run->Info().last_error(), "");
    EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)), (std::vector<std::string>{"x@1"}));

    faults.Clear();
    ASSERT_TRUE(FlushAndWait(*run).ok());  // the flusher's next tick
    ASSERT_TRUE(CloseAndWait(*run).ok());
    EXPECT_EQ(TagSteps(ReadSummaryEvents(dir)),
              (std::vector<std::string>{"x@1", "x@2", "y@2"}));
    options_.file.file_system = FileSystem::Default();
  }
}

// Written data that waits unsynced for the sync interval makes the run ask
// the flusher for a sync (sync_due): a quiet writer's last batch becomes
// durable, and the writer's stream is told, with no further data.
TEST_F(RunTest, AQuietWritersBatchBecomesDurableOnceTheSyncIsDue) {
  const fs::path dir = FreshTempDir("run_quiet_durable");
  options_.file.sync = SyncPolicy::kInterval;
  options_.file.sync_interval = absl::Seconds(5);
  auto run = MakeRun(dir);
  auto sink = std::make_shared<RecordingSink>();
  run->Subscribe("w", sink);
  ASSERT_TRUE(run->Submit(Batch("w", 1, {Scalar("x", 1, 1)}), sink, 0).ok());
  sink->WaitForBatches(1);
  ASSERT_TRUE(FlushAndWait(*run).ok());  // the flusher's tick: not synced yet
  EXPECT_EQ(run->Info().last_error(), "");
  EXPECT_FALSE(run->sync_due(absl::Now()));
  EXPECT_TRUE(run->sync_due(absl::Now() + absl::Seconds(5)));

  Notification synced;
  run->Flush("", 0, /*sync=*/true, [&](absl::Status status) {  // the tick once due
    EXPECT_TRUE(status.ok()) << status;
    synced.Notify();
  });
  synced.WaitForNotification();
  const auto acks = sink->WaitForBatches(1);
  EXPECT_EQ(acks.back().durable_sequence(), 1u);  // a progress ack
  EXPECT_FALSE(run->sync_due(absl::Now() + absl::Seconds(60)));
  EXPECT_FALSE(run->has_unflushed());
  ASSERT_TRUE(CloseAndWait(*run).ok());
}

}  // namespace
}  // namespace tblog::daemon
