#include "daemon/sequence_contract.h"

#include <memory>

#include "daemon/run.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

class NullSink : public AckSink {
 public:
  void OnAck(v1::WriteResponse, int) override {}
};

std::shared_ptr<AckSink> NewStream() { return std::make_shared<NullSink>(); }

TEST(SequenceContractTest, WithinAStreamEachBatchIsThePreviousPlusOne) {
  SequenceContract contract;
  auto stream = NewStream();
  EXPECT_TRUE(contract.Admit("w", 1, 0, stream).ok());
  EXPECT_TRUE(contract.Admit("w", 2, 1, stream).ok());
  const absl::Status gap = contract.Admit("w", 4, 2, stream);
  EXPECT_EQ(gap.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(gap.message().find("expected batch sequence 3 after 2 on this stream, received 4"),
            absl::string_view::npos)
      << gap;
  EXPECT_EQ(contract.Admit("w", 2, 2, stream).code(), absl::StatusCode::kOutOfRange);  // back
  EXPECT_TRUE(contract.Admit("w", 3, 2, stream).ok());  // refusals changed nothing
}

TEST(SequenceContractTest, ANewStreamMayResendButNotSkipAhead) {
  SequenceContract contract;
  auto first = NewStream();
  for (uint64_t seq = 1; seq <= 5; ++seq) ASSERT_TRUE(contract.Admit("w", seq, seq - 1, first).ok());
  EXPECT_TRUE(contract.Admit("w", 3, 5, NewStream()).ok());  // a resend from 3
  const absl::Status gap = contract.Admit("w", 7, 5, NewStream());
  EXPECT_EQ(gap.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(gap.message().find("expected batch sequence 6 or lower, received 7"),
            absl::string_view::npos)
      << gap;
  EXPECT_TRUE(contract.Admit("w", 6, 5, NewStream()).ok());
}

TEST(SequenceContractTest, TheFirstReportAfterAStreamBeganIsTheFloor) {
  SequenceContract contract;
  auto first = NewStream();
  ASSERT_TRUE(contract.Admit("w", 1, 0, first).ok());
  ASSERT_TRUE(contract.Admit("w", 2, 1, first).ok());
  contract.NoteReported(2);
  contract.NoteReported(9);  // a later report does not raise it
  EXPECT_EQ(contract.resume_floor(), 2u);
  EXPECT_EQ(contract.Admit("w", 2, 9, NewStream()).code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(contract.Admit("w", 3, 9, NewStream()).ok());
  contract.NoteReported(9);  // a stream began since: this one counts
  EXPECT_EQ(contract.resume_floor(), 9u);
}

TEST(SequenceContractTest, AResumedWriterStartsAfterWhatTheResumeReported) {
  SequenceContract contract(5);
  EXPECT_EQ(contract.resume_floor(), 5u);
  const absl::Status restarted = contract.Admit("w", 1, 5, NewStream());
  EXPECT_EQ(restarted.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(restarted.message().find("start at batch sequence 6 or later, received 1"),
            absl::string_view::npos)
      << restarted;
  EXPECT_TRUE(contract.Admit("w", 6, 5, NewStream()).ok());
}

TEST(SequenceContractTest, ASinkGoneAndAnotherAtItsAddressIsANewStream) {
  SequenceContract contract;
  auto first = NewStream();
  ASSERT_TRUE(contract.Admit("w", 1, 0, first).ok());
  first.reset();
  // Whatever address the next sink gets, it starts a stream: a resend of 1.
  EXPECT_TRUE(contract.Admit("w", 1, 1, NewStream()).ok());
  EXPECT_TRUE(contract.Admit("w", 1, 1, nullptr).ok());  // no sink: each batch a stream
}

}  // namespace
}  // namespace tblog::daemon
