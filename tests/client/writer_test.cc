// Writer behaviour that needs no daemon: the target is a unix socket nothing
// listens on, so nothing is ever acknowledged and the buffer only fills.
#include "tblog/client.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace tblog {
namespace {

WriterOptions Unreachable() {
  WriterOptions options;
  options.target = "unix:/nonexistent-dir-for-tblog-tests/tblogd.sock";
  options.open_in_background = true;
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(50);
  options.rpc_timeout = absl::Seconds(1);
  options.close_timeout = absl::Milliseconds(200);
  return options;
}

TEST(WriterTest, OpenFailsWithoutADaemonUnlessInBackground) {
  WriterOptions options = Unreachable();
  options.open_in_background = false;
  options.open_timeout = absl::Milliseconds(200);  // tried again that long
  auto writer = Writer::Open(options);
  ASSERT_FALSE(writer.ok());
  EXPECT_TRUE(absl::IsUnavailable(writer.status()) || absl::IsDeadlineExceeded(writer.status()))
      << writer.status();

  auto background = Writer::Open(Unreachable());
  ASSERT_TRUE(background.ok()) << background.status();
  EXPECT_EQ((*background)->run_path(), "");
}

TEST(WriterTest, DropNewestCountsEveryDroppedRecord) {
  WriterOptions options = Unreachable();
  options.overflow = OverflowPolicy::kDropNewest;
  options.max_buffer_bytes = 1200;
  options.max_batch_bytes = 240;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();

  constexpr int kCalls = 1000;
  int accepted = 0;
  int refused = 0;
  for (int step = 0; step < kCalls; ++step) {
    const absl::Status status = (*writer)->scalar("loss", step, 1.0f);
    if (status.ok()) {
      ++accepted;
    } else {
      EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
      ++refused;
    }
  }
  const WriterStats stats = (*writer)->stats();
  EXPECT_GT(accepted, 0);
  EXPECT_GT(refused, 0);
  EXPECT_EQ(stats.enqueued, static_cast<uint64_t>(accepted));
  EXPECT_EQ(stats.dropped, static_cast<uint64_t>(refused));
  EXPECT_EQ(stats.blocked_calls, 0u);
  EXPECT_EQ(stats.acknowledged, 0u);
  // The bound holds, up to one dictionary entry of the last batch.
  EXPECT_LE(stats.buffered_bytes, options.max_buffer_bytes + 64);

  // Nothing could be delivered: close says so, and later calls are refused.
  const absl::Status closed = (*writer)->close();
  EXPECT_FALSE(closed.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition((*writer)->scalar("loss", 0, 1.0f)));
  EXPECT_EQ((*writer)->stats().dropped, static_cast<uint64_t>(refused));
  EXPECT_EQ((*writer)->close(), closed);  // idempotent
}

TEST(WriterTest, BlockedCallReturnsAnErrorWhenTheWriterCloses) {
  WriterOptions options = Unreachable();
  options.overflow = OverflowPolicy::kBlock;
  options.max_buffer_bytes = 1000;
  options.max_batch_bytes = 200;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();

  std::atomic<int> accepted{0};
  absl::Status last;
  std::thread trainer([&] {
    for (int64_t step = 0;; ++step) {
      last = (*writer)->scalar("loss", step, 1.0f);
      if (!last.ok()) return;
      ++accepted;
    }
  });
  // Wait (without a time limit on the outcome) until the trainer is blocked.
  while ((*writer)->stats().blocked_calls == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const absl::Status closed = (*writer)->close();
  trainer.join();
  EXPECT_TRUE(absl::IsFailedPrecondition(last)) << last;
  EXPECT_FALSE(closed.ok());
  const WriterStats stats = (*writer)->stats();
  EXPECT_EQ(stats.dropped, 0u);
  EXPECT_EQ(stats.blocked_calls, 1u);
  EXPECT_EQ(stats.enqueued, static_cast<uint64_t>(accepted.load()));
}

TEST(WriterTest, FlushEndsWithAnErrorWhenClosedFromAnotherThread) {
  auto writer = Writer::Open(Unreachable());
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->scalar("loss", 1, 1.0f).ok());
  absl::Status flushed;
  std::thread flusher([&] { flushed = (*writer)->flush(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  (void)(*writer)->close();
  flusher.join();
  EXPECT_FALSE(flushed.ok());
}

TEST(WriterTest, EveryRecordKindIsBufferedAndBadInputsAreRefusedLocally) {
  auto writer = Writer::Open(Unreachable());
  ASSERT_TRUE(writer.ok()) << writer.status();
  Writer& w = **writer;

  const std::vector<double> doubles = {1.0, 2.0};
  const std::array<int32_t, 3> ints = {1, 2, 3};
  const std::vector<uint8_t> bytes = {1, 2, 3, 4};
  const std::vector<uint16_t> halves = {0x3c00, 0x4000};  // 1.0, 2.0 in float16
  EXPECT_TRUE(w.histogram("h/double", 1, doubles).ok());
  EXPECT_TRUE(w.histogram("h/int", 1, ints, {.layout = v1::HISTOGRAM_LAYOUT_EXPONENTIAL}).ok());
  EXPECT_TRUE(w.histogram("h/u8", 1, std::span<const uint8_t>(bytes)).ok());
  EXPECT_TRUE(w.histogram("h/half", 1, v1::DTYPE_FLOAT16, std::as_bytes(std::span(halves))).ok());
  EXPECT_TRUE(w.image("img", 1, bytes, {2, 2}).ok());
  EXPECT_TRUE(w.text("t", 1, "**hi**").ok());
  const std::vector<float> samples = {0.0f, 0.5f, -0.5f, 0.0f};
  EXPECT_TRUE(w.audio("a", 1, samples, 8000.0f, 2).ok());
  const std::vector<uint8_t> labels = {0, 1, 1};
  const std::vector<float> predictions = {0.1f, 0.8f, 0.6f};
  EXPECT_TRUE(w.pr_curve("pr", 1, labels, predictions).ok());
  const std::vector<float> matrix = {1, 2, 3, 4, 5, 6};
  EXPECT_TRUE(w.embedding("e", 1, matrix, 3, 2, {"a", "b", "c"}).ok());
  HParams hparams;
  hparams.values = {{"lr", 0.1}, {"opt", "adam"}, {"bn", true}};
  EXPECT_TRUE(w.hparams(hparams).ok());
  EXPECT_TRUE(w.scalars("loss", 1, {{"train", 1.0f}, {"val", 2.0f}}).ok());
  EXPECT_EQ(w.stats().enqueued, 12u);

  // Shapes that cannot match the data never leave the process.
  EXPECT_TRUE(absl::IsInvalidArgument(w.image("img", 2, bytes, {3, 2})));
  EXPECT_TRUE(absl::IsInvalidArgument(
      w.histogram("h/half", 2, v1::DTYPE_FLOAT16, std::as_bytes(std::span(bytes)).first(3))));
  EXPECT_TRUE(absl::IsInvalidArgument(w.audio("a", 2, samples, 8000.0f, 3)));
  EXPECT_TRUE(absl::IsInvalidArgument(w.pr_curve("pr", 2, bytes, predictions)));
  EXPECT_TRUE(absl::IsInvalidArgument(w.embedding("e", 2, matrix, 4, 2)));
  EXPECT_EQ(w.stats().enqueued, 12u);
  EXPECT_EQ(w.stats().dropped, 0u);
}

TEST(WriterTest, RecordLargerThanTheBufferIsRefused) {
  WriterOptions options = Unreachable();
  options.max_buffer_bytes = 1000;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::vector<float> values(1000, 1.0f);
  EXPECT_TRUE(absl::IsResourceExhausted((*writer)->histogram("big", 1, values)));
  EXPECT_EQ((*writer)->stats().dropped, 1u);
}

TEST(WriterTest, WriterIdsAreRandomUnlessGiven) {
  auto first = Writer::Open(Unreachable());
  auto second = Writer::Open(Unreachable());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ((*first)->writer_id().size(), 32u);
  EXPECT_NE((*first)->writer_id(), (*second)->writer_id());
  WriterOptions options = Unreachable();
  options.writer_id = "rank-3";
  auto named = Writer::Open(options);
  ASSERT_TRUE(named.ok());
  EXPECT_EQ((*named)->writer_id(), "rank-3");
}

TEST(WriterTest, DefaultTargetComesFromTheEnvironment) {
  ASSERT_EQ(setenv("TBLOG_ADDRESS", "unix:/run/tblogd.sock", 1), 0);
  EXPECT_EQ(DefaultTarget(), "unix:/run/tblogd.sock");
  ASSERT_EQ(unsetenv("TBLOG_ADDRESS"), 0);
  EXPECT_EQ(DefaultTarget(), "127.0.0.1:6066");
}

}  // namespace
}  // namespace tblog
