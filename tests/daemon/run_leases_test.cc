// RunLeases (server/daemon/run_leases.h): the rules of holds and leases,
// with times passed in, so nothing waits.
#include "daemon/run_leases.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
constexpr absl::Duration kLease = absl::Seconds(60);

TEST(RunLeasesTest, AHoldWithoutStreamsExpiresOneLeaseAfterItsLastRenewal) {
  RunLeases leases(kLease);
  leases.Hold("a", kT0);
  leases.Hold("a", kT0 + absl::Seconds(30));  // OpenRun again (a reconnect) renews it
  EXPECT_THAT(leases.Expire(kT0 + absl::Seconds(89)), IsEmpty());
  EXPECT_THAT(leases.Expire(kT0 + absl::Seconds(90)), ElementsAre("a"));
  EXPECT_TRUE(leases.empty());
}

TEST(RunLeasesTest, AnOpenStreamKeepsTheHoldAndItsEndStartsTheLease) {
  RunLeases leases(kLease);
  leases.Hold("a", kT0);
  leases.StreamStarted("a", kT0);
  leases.StreamStarted("a", kT0);  // a second stream of the same writer
  EXPECT_THAT(leases.Expire(kT0 + absl::Hours(24)), IsEmpty());
  leases.StreamEnded("a", kT0 + absl::Hours(24));
  EXPECT_THAT(leases.Expire(kT0 + absl::Hours(25)), IsEmpty());  // one stream left
  leases.StreamEnded("a", kT0 + absl::Hours(25));
  EXPECT_THAT(leases.Expire(kT0 + absl::Hours(25) + kLease - absl::Seconds(1)), IsEmpty());
  EXPECT_THAT(leases.Expire(kT0 + absl::Hours(25) + kLease), ElementsAre("a"));
}

TEST(RunLeasesTest, AStreamOfAnUnknownWriterCreatesItsHold) {
  RunLeases leases(kLease);
  leases.StreamStarted("late", kT0);
  EXPECT_TRUE(leases.Holds("late"));
  leases.StreamEnded("late", kT0);
  EXPECT_THAT(leases.Expire(kT0 + kLease), ElementsAre("late"));
}

TEST(RunLeasesTest, ReleaseDropsTheHoldWhateverItsStreams) {
  RunLeases leases(kLease);
  leases.Hold("a", kT0);
  leases.StreamStarted("a", kT0);
  leases.Hold("b", kT0);
  EXPECT_TRUE(leases.Release("a"));
  EXPECT_FALSE(leases.Release("a"));  // released already: nothing to drop
  // The stream that outlived its writer's CloseRun does not bring the hold back.
  leases.StreamEnded("a", kT0);
  EXPECT_FALSE(leases.Holds("a"));
  EXPECT_TRUE(leases.Holds("b"));
  EXPECT_EQ(leases.ReleaseAll(), 1u);
  EXPECT_TRUE(leases.empty());
}

TEST(RunLeasesTest, OnlyTheExpiredHoldsGo) {
  RunLeases leases(kLease);
  leases.Hold("", kT0);  // the anonymous hold of an OpenRun without writer_id
  leases.Hold("b", kT0 + absl::Seconds(10));
  leases.StreamStarted("c", kT0);
  EXPECT_THAT(leases.Expire(kT0 + absl::Seconds(65)), ElementsAre(""));
  EXPECT_THAT(leases.Expire(kT0 + absl::Seconds(70)), ElementsAre("b"));
  EXPECT_TRUE(leases.Holds("c"));
}

TEST(RunLeasesTest, HoldersAreReportedWithStreamsLeaseAndLabels) {
  RunLeases leases(kLease);
  const std::map<std::string, std::string> labels{{"rank", "1"}};
  leases.Hold("b", kT0, &labels);
  leases.Hold("a", kT0);
  leases.StreamStarted("a", kT0);
  leases.Hold("b", kT0 + absl::Seconds(1));  // renewal without labels keeps them
  v1::RunInfo info;
  leases.AppendTo(info);
  ASSERT_EQ(info.holders_size(), 2);
  EXPECT_EQ(info.holders(0).writer_id(), "a");
  EXPECT_EQ(info.holders(0).streams(), 1u);
  EXPECT_EQ(info.holders(0).lease_expires_time(), 0);  // cannot expire while streaming
  EXPECT_EQ(info.holders(1).writer_id(), "b");
  EXPECT_EQ(info.holders(1).streams(), 0u);
  EXPECT_DOUBLE_EQ(info.holders(1).lease_expires_time(), 1'700'000'061.0);
  EXPECT_EQ(info.holders(1).labels().at("rank"), "1");
}

}  // namespace
}  // namespace tblog::daemon
