// NodeReduce (node_reduce.h): combining a node's contributions into partials,
// and holding the client acks until the upstream has them.
#include "daemon/node_reduce.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "daemon/reduce_convert.h"
#include "daemon/run.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

constexpr char kRun[] = "job/run";

class RecordingSink final : public AckSink {
 public:
  void OnAck(v1::WriteResponse ack, int completed_batches) override {
    acks.push_back(std::move(ack));
    completed += completed_batches;
  }
  std::vector<v1::WriteResponse> acks;
  int completed = 0;
};

Converted ScalarContribution(int64_t step, double value, v1::ReduceOp op = v1::REDUCE_OP_MEAN,
                             uint32_t group_size = 0) {
  auto c = std::make_shared<Contribution>();
  c->head.set_tag("loss");
  c->head.set_step(step);
  c->op = op;
  c->group_size = group_size;
  c->scalar = ScalarState{value, 1, value, value};
  Converted converted;
  converted.contribution = std::move(c);
  return converted;
}

// What the run tells NodeReduce when it has written and flushed a writer's
// batches through `sequence`.
void Flushed(NodeReduce& reduce, const std::string& writer, uint64_t sequence) {
  v1::WriteResponse ack;
  ack.set_written_sequence(sequence);
  ack.set_flushed_sequence(sequence);
  ack.set_durable_sequence(sequence);
  reduce.Cap(kRun, writer, ack);
}

class NodeReduceTest : public ::testing::Test {
 protected:
  NodeReduceTest() : reduce_(absl::Hours(1)) {
    v1::OpenRunRequest open;
    open.set_reduce_group_size(8);
    reduce_.NoteOpen(kRun, open);
  }
  NodeReduce reduce_;
  std::shared_ptr<RecordingSink> sink_a_ = std::make_shared<RecordingSink>();
  std::shared_ptr<RecordingSink> sink_b_ = std::make_shared<RecordingSink>();
};

TEST_F(NodeReduceTest, CombinesLocalWritersAndHoldsTheirAcksUntilTheUpstreamHasThem) {
  ASSERT_TRUE(reduce_.Take(kRun, "a", 1, false, sink_a_, ScalarContribution(5, 1.0)).ok());
  ASSERT_TRUE(reduce_.Take(kRun, "b", 1, false, sink_b_, ScalarContribution(5, 3.0)).ok());
  // The run wrote both batches: their acks wait.
  EXPECT_TRUE(reduce_.Defer(kRun, "a", 1));
  EXPECT_TRUE(reduce_.Defer(kRun, "b", 1));
  v1::WriteResponse ack;
  ack.set_written_sequence(1);
  reduce_.Cap(kRun, "a", ack);
  EXPECT_EQ(ack.written_sequence(), 0u);
  EXPECT_EQ(reduce_.CapReported(kRun, "a", 1), 0u);
  // Not flushed yet: nothing goes (a resume could not tell it was written).
  EXPECT_TRUE(reduce_.TakeDue(kRun, absl::Now(), false, 100).empty());
  Flushed(reduce_, "a", 1);
  Flushed(reduce_, "b", 1);

  std::vector<NodePartial> partials = reduce_.TakeDue(kRun, absl::Now(), false, 100);
  ASSERT_EQ(partials.size(), 1u);  // both local writers reported step 5
  const v1::Record& record = partials[0].record;
  EXPECT_EQ(record.step(), 5);
  EXPECT_EQ(record.reduce().group_size(), 8u);  // the run's, from its OpenRun
  EXPECT_EQ(record.reduce().partial().contributors_size(), 2);
  EXPECT_DOUBLE_EQ(record.reduce().partial().scalar().sum(), 4.0);
  EXPECT_DOUBLE_EQ(record.reduce().partial().scalar().weight(), 2.0);
  EXPECT_EQ(sink_a_->completed, 0);

  bool flushed = false;
  reduce_.WhenReleased(kRun, "a", 1, [&] { flushed = true; });
  EXPECT_FALSE(flushed);
  reduce_.Acknowledged(kRun, partials);
  EXPECT_TRUE(flushed);
  ASSERT_EQ(sink_a_->completed, 1);
  EXPECT_EQ(sink_a_->acks.back().written_sequence(), 1u);
  EXPECT_EQ(sink_b_->completed, 1);
  EXPECT_EQ(reduce_.CapReported(kRun, "a", 1), 1u);
  EXPECT_EQ(reduce_.stats().batches_held, 0u);
}

TEST_F(NodeReduceTest, AResentContributionGoesAlone) {
  ASSERT_TRUE(reduce_.Take(kRun, "a", 1, false, sink_a_, ScalarContribution(5, 1.0)).ok());
  ASSERT_TRUE(reduce_.Take(kRun, "b", 1, true, sink_b_, ScalarContribution(5, 3.0)).ok());
  reduce_.Defer(kRun, "a", 1);
  reduce_.Defer(kRun, "b", 1);
  Flushed(reduce_, "a", 1);
  Flushed(reduce_, "b", 1);
  const std::vector<NodePartial> partials = reduce_.TakeDue(kRun, absl::Now(), true, 100);
  ASSERT_EQ(partials.size(), 2u);
  for (const NodePartial& partial : partials) {
    EXPECT_EQ(partial.record.reduce().partial().contributors_size(), 1);
  }
}

TEST_F(NodeReduceTest, WaitsForTheOtherLocalWritersOrTheDelay) {
  ASSERT_TRUE(reduce_.Take(kRun, "a", 1, false, sink_a_, ScalarContribution(5, 1.0)).ok());
  ASSERT_TRUE(reduce_.Take(kRun, "b", 1, false, sink_b_, ScalarContribution(5, 3.0)).ok());
  ASSERT_TRUE(reduce_.Take(kRun, "a", 2, false, sink_a_, ScalarContribution(6, 1.0)).ok());
  reduce_.Defer(kRun, "a", 1);
  reduce_.Defer(kRun, "b", 1);
  reduce_.Defer(kRun, "a", 2);
  Flushed(reduce_, "a", 2);
  Flushed(reduce_, "b", 1);
  EXPECT_EQ(reduce_.TakeDue(kRun, absl::Now(), false, 100).size(), 1u);  // step 5 only
  // Step 6 waits for b, until the delay (an hour here) or the end.
  EXPECT_TRUE(reduce_.TakeDue(kRun, absl::Now(), false, 100).empty());
  EXPECT_EQ(reduce_.TakeDue(kRun, absl::Now() + absl::Hours(2), false, 100).size(), 1u);
}

TEST_F(NodeReduceTest, RefusesContributionsThatDisagreeOrHaveNoGroup) {
  NodeReduce no_group;
  auto refused = no_group.Take(kRun, "a", 1, false, sink_a_, ScalarContribution(5, 1.0));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(reduce_.Take(kRun, "a", 1, false, sink_a_, ScalarContribution(5, 1.0)).ok());
  auto other_op = reduce_.Take(kRun, "b", 1, false, sink_b_,
                               ScalarContribution(5, 1.0, v1::REDUCE_OP_MAX));
  EXPECT_EQ(other_op.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(other_op.status().message().find("REDUCE_OP_MAX"), std::string::npos)
      << other_op.status();
}

TEST_F(NodeReduceTest, AWriterNotSeenSinceTheStartIsReportedAtZero) {
  // After a restart nothing is known of what the upstream has: the writer
  // resends all it holds.
  EXPECT_EQ(reduce_.CapReported(kRun, "a", 40), 0u);
  v1::WriteResponse ack;
  ack.set_written_sequence(41);
  EXPECT_FALSE(reduce_.Defer(kRun, "a", 41));  // it sent again: known from now on
  reduce_.Cap(kRun, "a", ack);
  EXPECT_EQ(ack.written_sequence(), 41u);
  EXPECT_EQ(reduce_.CapReported(kRun, "a", 41), 41u);
}

// A resumed run's sequences start at its checkpoint's (say 55) while the
// client resends 51..55: an ack must not report a batch this process has not
// taken yet, or the client drops it before its contribution went upstream
// (lost if this daemon is killed again meanwhile).
TEST_F(NodeReduceTest, AResumedWriterIsReportedOnlyThroughWhatItResent) {
  ASSERT_TRUE(reduce_.Take(kRun, "a", 51, true, sink_a_, ScalarContribution(5, 1.0)).ok());
  EXPECT_TRUE(reduce_.Defer(kRun, "a", 51));
  Flushed(reduce_, "a", 55);
  const std::vector<NodePartial> partials = reduce_.TakeDue(kRun, absl::Now(), true, 100);
  ASSERT_EQ(partials.size(), 1u);
  reduce_.Acknowledged(kRun, partials);
  // 52..55 are still on their way through the run: the ack stops at 51.
  ASSERT_EQ(sink_a_->completed, 1);
  EXPECT_EQ(sink_a_->acks.back().durable_sequence(), 51u);
  v1::WriteResponse ack;
  ack.set_durable_sequence(55);
  reduce_.Cap(kRun, "a", ack);
  EXPECT_EQ(ack.durable_sequence(), 51u);
  EXPECT_EQ(reduce_.CapReported(kRun, "a", 55), 51u);
  EXPECT_FALSE(reduce_.Defer(kRun, "a", 52));  // a batch with no contribution
  EXPECT_EQ(reduce_.CapReported(kRun, "a", 55), 52u);
}

}  // namespace
}  // namespace tblog::daemon
