#include "daemon/byte_budget.h"

#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

constexpr size_t kNoWaiting = 0;

TEST(ByteBudgetTest, ReservesWhileRoomIsLeftAndCommitsTheActualCharge) {
  ByteBudget budget(100);
  const auto grant = budget.Reserve(60, [](bool) { FAIL() << "granted at once"; });
  EXPECT_TRUE(grant.granted);
  EXPECT_NE(grant.ticket, 0u);
  EXPECT_EQ(budget.reserved(), 60u);
  budget.Commit(grant.ticket, 40);  // the message was smaller than reserved
  EXPECT_EQ(budget.reserved(), 0u);
  EXPECT_EQ(budget.charged(), 40u);
  budget.Release(40);
  EXPECT_EQ(budget.used(), 0u);
}

TEST(ByteBudgetTest, WaitsWhenSpentAndGrantsInOrderOnRelease) {
  ByteBudget budget(100);
  std::vector<int> order;
  const auto first = budget.Reserve(70, [](bool) {});
  ASSERT_TRUE(first.granted);
  budget.Commit(first.ticket, 70);
  const auto a = budget.Reserve(50, [&](bool granted) { order.push_back(granted ? 1 : -1); });
  const auto b = budget.Reserve(10, [&](bool granted) { order.push_back(granted ? 2 : -2); });
  EXPECT_FALSE(a.granted);
  // Behind a waiter, even a request that would fit waits: no overtaking.
  EXPECT_FALSE(b.granted);
  EXPECT_EQ(budget.parked(), 2);
  budget.Release(10);  // 60 charged: a (50) does not fit yet
  EXPECT_TRUE(order.empty());
  budget.Release(10);  // 50: a fits (100 used), b not yet
  EXPECT_EQ(order, (std::vector<int>{1}));
  EXPECT_EQ(budget.used(), 100u);
  EXPECT_FALSE(budget.Cancel(a.ticket));  // granted: its reservation goes back
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(budget.parked(), 0);
  EXPECT_EQ(budget.used(), 60u);
}

// Pinned bytes (a shared-memory ring for as long as its stream lives) count,
// but a request larger than what they leave still goes through alone.
TEST(ByteBudgetTest, PinnedBytesNeverStopARequestLargerThanTheRest) {
  ByteBudget budget(100);
  budget.Pin(40);
  EXPECT_EQ(budget.used(), 40u);
  const auto huge = budget.Reserve(1000, [](bool) { FAIL() << "granted at once"; });
  EXPECT_TRUE(huge.granted);  // only pinned bytes held: it goes alone
  EXPECT_EQ(budget.used(), 100u);  // clamped to what the pinned bytes leave
  bool next = false;
  EXPECT_FALSE(budget.Reserve(10, [&](bool) { next = true; }).granted);
  EXPECT_FALSE(budget.Cancel(huge.ticket));
  EXPECT_TRUE(next);  // 40 pinned + 10 fits
  budget.Unpin(40);
  EXPECT_EQ(budget.used(), 10u);
}

TEST(ByteBudgetTest, CancelTakesAWaiterBackAndLetsTheNextOneIn) {
  ByteBudget budget(100);
  budget.Commit(budget.Reserve(100, [](bool) {}).ticket, 90);
  bool big = false, small = false;
  const auto blocked = budget.Reserve(50, [&](bool) { big = true; });
  budget.Reserve(10, [&](bool) { small = true; });
  EXPECT_TRUE(budget.Cancel(blocked.ticket));  // the front waiter leaves
  EXPECT_TRUE(small);                          // 90 + 10 fits
  EXPECT_FALSE(big);
  budget.Release(100);
  EXPECT_FALSE(big);
}

TEST(ByteBudgetTest, ARequestLargerThanTheBudgetGoesThroughAlone) {
  ByteBudget budget(100);
  const auto small = budget.Reserve(10, [](bool) {});
  ASSERT_TRUE(small.granted);
  bool granted = false;
  // Clamped to the capacity: granted once nothing else is held.
  const auto huge = budget.Reserve(1000, [&](bool) { granted = true; });
  EXPECT_FALSE(huge.granted);
  budget.Cancel(small.ticket);
  EXPECT_TRUE(granted);
  EXPECT_EQ(budget.reserved(), 100u);
  budget.Commit(huge.ticket, 1000);  // the actual charge may exceed the budget
  EXPECT_EQ(budget.used(), 1000u);
  bool next = false;
  budget.Reserve(1, [&](bool) { next = true; });
  EXPECT_FALSE(next);  // everyone waits until it is paid back
  budget.Settle(1000, 100);
  EXPECT_FALSE(next);
  budget.Release(100);
  EXPECT_TRUE(next);
}

TEST(ByteBudgetTest, SettleReplacesAnEstimateAndWakesWaiters) {
  ByteBudget budget(100);
  budget.Commit(budget.Reserve(100, [](bool) {}).ticket, 80);  // message + estimate
  bool granted = false;
  budget.Reserve(50, [&](bool) { granted = true; });
  budget.Settle(80, 90);  // more than estimated: still waits
  EXPECT_FALSE(granted);
  EXPECT_EQ(budget.charged(), 90u);
  budget.Settle(90, 30);  // converted: holds less now
  EXPECT_TRUE(granted);
  EXPECT_EQ(budget.charged(), 30u);
}

TEST(ByteBudgetTest, TickTakesBackIdleReservations) {
  ByteBudget budget(100);
  const auto idle = budget.Reserve(100, [](bool) {});
  ASSERT_TRUE(idle.granted);
  bool granted = false;
  budget.Reserve(10, [&](bool) { granted = true; });
  budget.Tick(absl::Now());  // not idle long enough yet
  EXPECT_FALSE(granted);
  budget.Tick(absl::Now() + ByteBudget::kIdleReservation);
  EXPECT_TRUE(granted);
  EXPECT_EQ(budget.reserved(), 10u);
  // The idle stream's message lands after all: charged in full.
  budget.Commit(idle.ticket, 60);
  EXPECT_EQ(budget.used(), 70u);
  EXPECT_FALSE(budget.Cancel(idle.ticket));  // already gone
}

TEST(ByteBudgetTest, HeldChargesWaitUpToTheirCapAndExpire) {
  ByteBudget budget(100);
  EXPECT_TRUE(budget.ChargeOrWait(60, kNoWaiting, absl::InfiniteFuture(), [](bool) {}).granted);
  std::vector<int> outcome;
  const absl::Time expiry = absl::Now() + absl::Seconds(30);
  // Does not fit; the first one may wait whatever the cap (else a large
  // call could be refused forever).
  const auto parked = budget.ChargeOrWait(50, kNoWaiting, expiry, [&](bool granted) {
    outcome.push_back(granted ? 1 : 0);
  });
  EXPECT_FALSE(parked.granted);
  EXPECT_NE(parked.ticket, 0u);
  EXPECT_EQ(budget.waiting_bytes(), 50u);
  // The cap counts what already waits: 50 + 20 > 60, refused.
  const auto refused = budget.ChargeOrWait(20, 60, expiry, [](bool) {});
  EXPECT_FALSE(refused.granted);
  EXPECT_EQ(refused.ticket, 0u);
  EXPECT_NE(budget.ChargeOrWait(10, 60, expiry, [&](bool granted) {
    outcome.push_back(granted ? 2 : -2);
  }).ticket, 0u);  // 50 + 10 <= 60: waits too
  budget.Tick(expiry);  // waited too long
  EXPECT_EQ(outcome, (std::vector<int>{0, -2}));
  EXPECT_EQ(budget.waiting_bytes(), 0u);
  EXPECT_EQ(budget.charged(), 60u);

  budget.ChargeOrWait(50, 60, expiry, [&](bool granted) { outcome.push_back(granted ? 1 : 0); });
  budget.Release(60);
  EXPECT_EQ(outcome, (std::vector<int>{0, -2, 1}));
  EXPECT_EQ(budget.charged(), 50u);
  EXPECT_EQ(budget.waiting_bytes(), 0u);
}

TEST(ByteBudgetTest, AHeldChargeLargerThanTheBudgetIsAdmittedAlone) {
  ByteBudget budget(100);
  EXPECT_TRUE(budget.ChargeOrWait(500, kNoWaiting, absl::InfiniteFuture(), [](bool) {}).granted);
  EXPECT_EQ(budget.charged(), 500u);
  budget.Release(500);
  budget.Commit(budget.Reserve(10, [](bool) {}).ticket, 10);
  bool granted = false;
  budget.ChargeOrWait(500, 500, absl::InfiniteFuture(), [&](bool) { granted = true; });
  EXPECT_FALSE(granted);
  budget.Release(10);
  EXPECT_TRUE(granted);
}

// A WriteBatch call's reservation for its unread message: in line with the
// streams, its held bytes (not its reservation) count against the cap on
// waiting calls, it expires, and once granted it is a reservation.
TEST(ByteBudgetTest, UnaryReservationsWaitInLineHoldOnlyTheirWindowAndExpire) {
  ByteBudget budget(100);
  const absl::Time expiry = absl::Now() + absl::Seconds(30);
  std::vector<int> outcome;
  const auto at_once = budget.ReserveOrWait(60, 5, 25, expiry, [](bool) { FAIL(); });
  ASSERT_TRUE(at_once.granted);
  EXPECT_EQ(budget.reserved(), 60u);
  EXPECT_EQ(budget.waiting_bytes(), 0u);  // it never waited
  // A stream's reservation waits first; the unary ones queue behind it.
  bool stream_granted = false;
  EXPECT_FALSE(budget.Reserve(50, [&](bool) { stream_granted = true; }).granted);
  const auto first = budget.ReserveOrWait(30, 5, 10, expiry, [&](bool granted) {
    outcome.push_back(granted ? 1 : -1);
  });
  EXPECT_FALSE(first.granted);
  EXPECT_NE(first.ticket, 0u);
  EXPECT_NE(budget.ReserveOrWait(1000, 5, 10, expiry, [&](bool granted) {
    outcome.push_back(granted ? 2 : -2);
  }).ticket, 0u);  // 5 + 5 held <= 10, however large its reservation
  EXPECT_EQ(budget.waiting_bytes(), 10u);
  EXPECT_EQ(budget.ReserveOrWait(1, 5, 10, expiry, [](bool) { FAIL(); }).ticket, 0u);  // refused
  EXPECT_EQ(budget.parked(), 3);
  // The message of the first reservation is smaller than reserved: room for
  // the stream and the first call, in order; the large one still waits.
  budget.Commit(at_once.ticket, 10);
  EXPECT_TRUE(stream_granted);
  EXPECT_EQ(outcome, (std::vector<int>{1}));
  EXPECT_EQ(budget.reserved(), 80u);
  EXPECT_EQ(budget.waiting_bytes(), 5u);
  // A granted unary reservation is committed like a stream's.
  budget.Commit(first.ticket, 20);
  EXPECT_EQ(budget.reserved(), 50u);
  EXPECT_EQ(budget.charged(), 30u);
  budget.Tick(expiry);  // the large one waited too long
  EXPECT_EQ(outcome, (std::vector<int>{1, -2}));
  EXPECT_EQ(budget.waiting_bytes(), 0u);
  EXPECT_EQ(budget.parked(), 0);
}

// A parked unary reservation that is cancelled (the client gave up) leaves
// the queue and gives its held bytes back.
TEST(ByteBudgetTest, ACancelledUnaryReservationLeavesTheQueue) {
  ByteBudget budget(10);
  budget.Charge(10);
  const auto parked = budget.ReserveOrWait(4, 3, 3, absl::InfiniteFuture(), [](bool) { FAIL(); });
  EXPECT_EQ(budget.waiting_bytes(), 3u);
  EXPECT_TRUE(budget.Cancel(parked.ticket));
  EXPECT_EQ(budget.waiting_bytes(), 0u);
  EXPECT_EQ(budget.parked(), 0);
  budget.Release(10);
  EXPECT_EQ(budget.used(), 0u);
}

TEST(ByteBudgetTest, GrantedCallbackMayReserveAgain) {
  // A stream granted room reads, and reserves for its next read, from inside
  // the callback: the budget's lock is not held then.
  ByteBudget budget(10);
  budget.Commit(budget.Reserve(10, [](bool) {}).ticket, 10);
  int grants = 0;
  budget.Reserve(5, [&](bool) {
    ++grants;
    EXPECT_TRUE(budget.Reserve(5, [](bool) {}).granted);
  });
  budget.Release(10);
  EXPECT_EQ(grants, 1);
  EXPECT_EQ(budget.reserved(), 10u);
}

}  // namespace
}  // namespace tblog::daemon
