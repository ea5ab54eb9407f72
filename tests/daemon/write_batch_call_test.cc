// WriteBatchReadSizes: what a WriteBatch call reserves before its request is
// read (write_batch_call.h). The call itself is tested end to end against a
// real tblogd (budget_e2e_test, service_test, ownership_test, auth_test).
#include "daemon/write_batch_call.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

constexpr size_t kUnknown = 64 << 20;  // --max-message-size

TEST(WriteBatchReadSizesTest, AFirstCallReservesTheLargestMessageThenTheLearntSize) {
  WriteBatchReadSizes sizes(kUnknown);
  bool learnt = true;
  EXPECT_EQ(sizes.Claim("ipv4:10.0.0.1:5000", &learnt), kUnknown);
  EXPECT_FALSE(learnt);
  sizes.Learn("ipv4:10.0.0.1:5000", 3000, learnt);
  EXPECT_EQ(sizes.Claim("ipv4:10.0.0.1:5000", &learnt), 3000u);
  EXPECT_TRUE(learnt);
  // Another connection learns on its own.
  EXPECT_EQ(sizes.Claim("ipv4:10.0.0.1:5001", &learnt), kUnknown);
  EXPECT_FALSE(learnt);
}

// A learnt size is an estimate: it serves one call of the peer at a time, so
// concurrent calls of one connection cannot all under-reserve at once.
TEST(WriteBatchReadSizesTest, TheLearntSizeServesOneCallOfAPeerAtATime) {
  WriteBatchReadSizes sizes(kUnknown);
  const std::string peer = "unix:";
  sizes.Learn(peer, 1000, /*learnt=*/false);
  bool first = false, second = true;
  EXPECT_EQ(sizes.Claim(peer, &first), 1000u);
  EXPECT_TRUE(first);
  EXPECT_EQ(sizes.Claim(peer, &second), kUnknown);
  EXPECT_FALSE(second);
  // The second call's message lands first: the size is updated, the claim
  // stays with the first call.
  sizes.Learn(peer, 2000, second);
  bool third = true;
  EXPECT_EQ(sizes.Claim(peer, &third), kUnknown);
  EXPECT_FALSE(third);
  sizes.Learn(peer, 1500, first);
  EXPECT_EQ(sizes.Claim(peer, &third), 1500u);
  EXPECT_TRUE(third);
  // A call that ends without a message gives the claim back.
  sizes.Unclaim(peer);
  EXPECT_EQ(sizes.Claim(peer, &third), 1500u);
}

TEST(WriteBatchReadSizesTest, ForgetsIdlePeersPastItsLimit) {
  WriteBatchReadSizes sizes(kUnknown);
  bool learnt = false;
  sizes.Learn("busy", 10, false);
  EXPECT_EQ(sizes.Claim("busy", &learnt), 10u);  // claimed: kept
  for (size_t i = 1; i < WriteBatchReadSizes::kMaxPeers; ++i) {
    sizes.Learn(absl::StrCat("peer", i), 20, false);
  }
  sizes.Learn("new", 30, false);  // full: the idle ones are forgotten
  bool idle_learnt = true;
  EXPECT_EQ(sizes.Claim("peer1", &idle_learnt), kUnknown);
  EXPECT_FALSE(idle_learnt);
  EXPECT_EQ(sizes.Claim("new", &idle_learnt), 30u);
  sizes.Learn("busy", 40, learnt);
  EXPECT_EQ(sizes.Claim("busy", &learnt), 40u);
}

}  // namespace
}  // namespace tblog::daemon
