// RunReductions (aggregate.h) on converted records, with explicit clocks: a
// point is handed out once, with its group's last contribution or at its
// timeout; late, missing and duplicate contributions are counted.
#include "daemon/aggregate.h"

#include <cmath>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tblog/tensorboard/event.pb.h"

namespace tblog::daemon {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

Limits TestLimits() { return Limits{}; }

Converted Contribute(const std::string& tag, int64_t step, float value,
                     v1::ReduceOp op = v1::REDUCE_OP_MEAN, double weight = 0,
                     uint32_t group_size = 0) {
  v1::Record record;
  record.set_tag(tag);
  record.set_step(step);
  record.mutable_scalar()->set_value(value);
  record.mutable_reduce()->set_op(op);
  record.mutable_reduce()->set_weight(weight);
  record.mutable_reduce()->set_group_size(group_size);
  static const Limits limits = TestLimits();
  RecordConverter converter(limits, nullptr);
  absl::StatusOr<Converted> converted = converter.Convert(record, 1700000000.0, "w");
  EXPECT_TRUE(converted.ok()) << converted.status();
  EXPECT_NE(converted->contribution, nullptr);
  return *std::move(converted);
}

// The scalar of the single event of `converted`.
float PointValue(const Converted& converted) {
  EXPECT_EQ(converted.events.size(), 1u);
  tensorboard::Event event;
  EXPECT_TRUE(event.ParseFromString(converted.events.at(0).event));
  return event.summary().value(0).tensor().float_val(0);
}

v1::OpenRunRequest Group(uint32_t size, double timeout_seconds = 0) {
  v1::OpenRunRequest request;
  request.set_reduce_group_size(size);
  request.set_reduce_timeout_seconds(timeout_seconds);
  return request;
}

TEST(RunReductionsTest, TheLastContributionOfTheGroupCarriesThePoint) {
  ReduceMetrics metrics;
  RunReductions reductions(absl::Seconds(30), &metrics);
  ASSERT_TRUE(reductions.Configure(Group(3)).ok());
  auto first = reductions.Absorb("a", Contribute("loss", 1, 1.0f, v1::REDUCE_OP_MEAN, 1), kStart);
  ASSERT_TRUE(first.ok());
  // Only its contribution record (contribution_record.h), for the files.
  ASSERT_EQ(first->events.size(), 1u);
  EXPECT_TRUE(first->events[0].reduced);
  EXPECT_EQ(first->contribution, nullptr);
  ASSERT_TRUE(reductions.Absorb("b", Contribute("loss", 1, 2.0f, v1::REDUCE_OP_MEAN, 2), kStart).ok());
  auto last = reductions.Absorb("c", Contribute("loss", 1, 4.0f, v1::REDUCE_OP_MEAN, 1), kStart);
  ASSERT_TRUE(last.ok());
  EXPECT_FLOAT_EQ(PointValue(*last), (1.0f + 4.0f + 4.0f) / 4.0f);
  EXPECT_FALSE(reductions.HasDue(kStart + absl::Hours(1)));
  EXPECT_EQ(metrics.contributions.load(), 3u);
}

TEST(RunReductionsTest, ATimedOutPointIsWrittenOnceFromWhatArrived) {
  RunReductions reductions(absl::Seconds(30), nullptr);
  ASSERT_TRUE(reductions.Configure(Group(4, 2.0)).ok());
  ASSERT_TRUE(reductions.Absorb("a", Contribute("loss", 1, 1.0f, v1::REDUCE_OP_MAX), kStart).ok());
  ASSERT_TRUE(reductions.Absorb("b", Contribute("loss", 1, 3.0f, v1::REDUCE_OP_MAX), kStart).ok());
  EXPECT_FALSE(reductions.HasDue(kStart + absl::Seconds(1)));
  EXPECT_TRUE(reductions.TakeDue(kStart + absl::Seconds(1)).events.empty());
  ASSERT_TRUE(reductions.HasDue(kStart + absl::Seconds(2)));
  const Converted due = reductions.TakeDue(kStart + absl::Seconds(2));
  EXPECT_FLOAT_EQ(PointValue(due), 3.0f);
  // c comes late: counted, no second point; a again: late too.
  auto late = reductions.Absorb("c", Contribute("loss", 1, 9.0f, v1::REDUCE_OP_MAX), kStart);
  ASSERT_TRUE(late.ok());
  EXPECT_TRUE(late->events.empty());
  ASSERT_TRUE(reductions.Absorb("a", Contribute("loss", 1, 9.0f, v1::REDUCE_OP_MAX), kStart).ok());
  // A first contribution below the last step written: late (TensorBoard keeps
  // a tag's points in step order); a pending point's writer again: a duplicate.
  ASSERT_TRUE(reductions.Absorb("a", Contribute("loss", 0, 9.0f, v1::REDUCE_OP_MAX), kStart).ok());
  ASSERT_TRUE(reductions.Absorb("a", Contribute("loss", 2, 9.0f, v1::REDUCE_OP_MAX), kStart).ok());
  ASSERT_TRUE(reductions.Absorb("a", Contribute("loss", 2, 9.0f, v1::REDUCE_OP_MAX), kStart).ok());
  v1::RunInfo info;
  reductions.AddTo(info);
  EXPECT_EQ(info.reduce_points(), 1u);
  EXPECT_EQ(info.reduce_contributions_missing(), 2u);
  EXPECT_EQ(info.reduce_contributions_late(), 3u);
  EXPECT_EQ(info.reduce_contributions_duplicate(), 1u);
}

// After a restart the run knows the steps its files hold (the resume scan's):
// a resent contribution to a point written before the crash is late, never a
// second point; the series goes on above it.
TEST(RunReductionsTest, StepsTheFilesHoldAreNeverWrittenAgain) {
  RunReductions reductions(absl::Seconds(30), nullptr);
  ASSERT_TRUE(reductions.Configure(Group(2, 2.0)).ok());
  // "loss" at 5 from the scan (any tag it read); eval's from the checkpoint.
  reductions.NoteWritten({{{"", "loss"}, 5}, {{"", "lr"}, 7}}, {{{"eval", "loss"}, 9}});
  for (int64_t step : {4, 5}) {
    auto resent = reductions.Absorb("a", Contribute("loss", step, 1.0f), kStart);
    ASSERT_TRUE(resent.ok());
    EXPECT_TRUE(resent->events.empty());
  }
  EXPECT_FALSE(reductions.HasDue(kStart + absl::Hours(1)));
  ASSERT_TRUE(reductions.Absorb("a", Contribute("loss", 6, 1.0f), kStart).ok());
  auto next = reductions.Absorb("b", Contribute("loss", 6, 3.0f), kStart);
  ASSERT_TRUE(next.ok());
  EXPECT_FLOAT_EQ(PointValue(*next), 2.0f);
  v1::RunInfo info;
  reductions.AddTo(info);
  EXPECT_EQ(info.reduce_points(), 1u);
  EXPECT_EQ(info.reduce_contributions_late(), 2u);
  // The checkpoint keeps the reduced series only, not every tag the scan saw.
  const SeriesSteps checkpointed = {{{"", "loss"}, 6}, {{"eval", "loss"}, 9}};
  EXPECT_EQ(reductions.WrittenSteps(), checkpointed);
}

TEST(RunReductionsTest, TakeAllWritesEveryPendingPointInStepOrder) {
  RunReductions reductions(absl::Seconds(30), nullptr);
  ASSERT_TRUE(reductions.Configure(Group(2)).ok());
  for (int step : {3, 1, 2}) {
    ASSERT_TRUE(reductions.Absorb("a", Contribute("loss", step, 1.0f, v1::REDUCE_OP_COUNT), kStart).ok());
  }
  const Converted all = reductions.TakeAll(kStart);
  ASSERT_EQ(all.events.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    tensorboard::Event event;
    ASSERT_TRUE(event.ParseFromString(all.events[static_cast<size_t>(i)].event));
    EXPECT_EQ(event.step(), i + 1);
    EXPECT_FLOAT_EQ(event.summary().value(0).tensor().float_val(0), 1.0f);  // COUNT
  }
}

TEST(RunReductionsTest, GroupSizesAndOpsMustAgree) {
  RunReductions reductions(absl::Seconds(30), nullptr);
  // No group size anywhere.
  auto none = reductions.Absorb("a", Contribute("loss", 1, 1.0f), kStart);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(reductions.Configure(Group(2)).ok());
  EXPECT_EQ(reductions.Configure(Group(3)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(reductions.Configure(Group(0)).ok());  // "not set" joins any run
  ASSERT_TRUE(reductions.Absorb("a", Contribute("loss", 1, 1.0f), kStart).ok());
  auto other_size =
      reductions.Absorb("b", Contribute("loss", 1, 1.0f, v1::REDUCE_OP_MEAN, 0, 5), kStart);
  EXPECT_EQ(other_size.status().code(), absl::StatusCode::kInvalidArgument);
  auto other_op = reductions.Absorb("b", Contribute("loss", 1, 1.0f, v1::REDUCE_OP_SUM), kStart);
  EXPECT_EQ(other_op.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(other_op.status().message().find("SUM differs from MEAN"), std::string::npos);
  EXPECT_EQ(RunReductions::ValidateOpen(Group(70000)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunReductions::ValidateOpen(Group(2, std::nan(""))).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RunReductionsTest, AHistogramPartialMergesWithAWritersValuesBinByBin) {
  RunReductions reductions(absl::Seconds(30), nullptr);
  ASSERT_TRUE(reductions.Configure(Group(3)).ok());
  static const Limits limits = TestLimits();
  RecordConverter converter(limits, nullptr);
  // Writer a: the values 1, 2, 3 (one bin each, far from the partial's).
  const float values[] = {1.0f, 2.0f, 3.0f};
  v1::Record own;
  own.set_tag("grad");
  own.set_step(1);
  own.mutable_reduce()->set_op(v1::REDUCE_OP_MERGE);
  own.mutable_histogram()->set_layout(v1::HISTOGRAM_LAYOUT_EXPONENTIAL);
  own.mutable_histogram()->mutable_values()->set_dtype(v1::DTYPE_FLOAT32);
  own.mutable_histogram()->mutable_values()->add_shape(3);
  own.mutable_histogram()->mutable_values()->set_data(values, sizeof values);
  auto mine = converter.Convert(own, 1700000000.0, "a");
  ASSERT_TRUE(mine.ok()) << mine.status();
  ASSERT_TRUE(reductions.Absorb("a", *std::move(mine), kStart).ok());
  // A forwarder's partial of b and c: 10 values in bin 0 (the lowest).
  v1::Record forwarded = own;
  forwarded.mutable_histogram()->clear_values();
  v1::ReducePartial* partial = forwarded.mutable_reduce()->mutable_partial();
  partial->add_contributors("b");
  partial->add_contributors("c");
  partial->mutable_histogram()->set_first_bin(0);
  partial->mutable_histogram()->add_bin_counts(10);
  partial->mutable_histogram()->set_num(10);
  partial->mutable_histogram()->set_min(-1e20);
  partial->mutable_histogram()->set_max(-1e20);
  partial->mutable_histogram()->set_sum(-1e21);
  auto theirs = converter.Convert(forwarded, 1700000000.0, "fwd");
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  auto point = reductions.Absorb("fwd", *std::move(theirs), kStart);
  ASSERT_TRUE(point.ok()) << point.status();
  ASSERT_EQ(point->events.size(), 1u);
  tensorboard::Event event;
  ASSERT_TRUE(event.ParseFromString(point->events[0].event));
  const tensorboard::HistogramProto& histo = event.summary().value(0).histo();
  EXPECT_EQ(histo.num(), 13);
  EXPECT_EQ(histo.min(), -1e20);
  EXPECT_EQ(histo.max(), 3.0);
  double total = 0;
  for (double count : histo.bucket()) total += count;
  EXPECT_EQ(total, 13);
  EXPECT_EQ(histo.bucket(1), 10);  // bin 0, after the empty bucket on the left
}

}  // namespace
}  // namespace tblog::daemon
