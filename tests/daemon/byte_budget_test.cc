#include "daemon/byte_budget.h"

#include <vector>

#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

TEST(ByteBudgetTest, ReadsOnWhileBudgetIsLeft) {
  ByteBudget budget(100);
  int resumed = 0;
  EXPECT_EQ(budget.ChargeOrPark(60, [&] { ++resumed; }), 0u);
  EXPECT_EQ(budget.used(), 60u);
  EXPECT_EQ(budget.parked(), 0);
  budget.Release(60);
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_EQ(resumed, 0);
}

TEST(ByteBudgetTest, ParksWhenSpentAndWakesInOrderOnRelease) {
  ByteBudget budget(100);
  std::vector<int> order;
  EXPECT_EQ(budget.ChargeOrPark(70, [&] { order.push_back(0); }), 0u);
  const auto first = budget.ChargeOrPark(70, [&] { order.push_back(1); });  // over: parks
  const auto second = budget.ChargeOrPark(10, [&] { order.push_back(2); });
  EXPECT_NE(first, 0u);
  EXPECT_NE(second, 0u);
  EXPECT_EQ(budget.parked(), 2);
  budget.Release(50);  // 100 used: still spent
  EXPECT_TRUE(order.empty());
  budget.Release(1);  // 99: wake everyone
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(budget.parked(), 0);
  EXPECT_FALSE(budget.Unpark(first));  // already ran
}

TEST(ByteBudgetTest, UnparkTakesTheCallbackBack) {
  ByteBudget budget(10);
  bool resumed = false;
  const auto id = budget.ChargeOrPark(20, [&] { resumed = true; });
  ASSERT_NE(id, 0u);
  EXPECT_TRUE(budget.Unpark(id));
  budget.Release(20);
  EXPECT_FALSE(resumed);
  EXPECT_EQ(budget.used(), 0u);
}

TEST(ByteBudgetTest, ResumeMayChargeAgain) {
  // A woken stream reads its next message from inside the callback.
  ByteBudget budget(10);
  int resumes = 0;
  ASSERT_NE(budget.ChargeOrPark(10, [&] {
    ++resumes;
    EXPECT_EQ(budget.ChargeOrPark(5, [&] { ++resumes; }), 0u);
  }), 0u);
  budget.Release(10);
  EXPECT_EQ(resumes, 1);
  EXPECT_EQ(budget.used(), 5u);
}

}  // namespace
}  // namespace tblog::daemon
