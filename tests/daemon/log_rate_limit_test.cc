// LogRateLimiter (server/daemon/log_rate_limit.h) on a fake clock: lines per
// key and second, the count of refused lines, independent keys.
#include "daemon/log_rate_limit.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

class LogRateLimiterTest : public ::testing::Test {
 protected:
  absl::Time now_ = absl::FromUnixSeconds(1000);
  LogRateLimiter limiter_{3, [this] { return now_; }};
  uint64_t suppressed_ = 99;
};

TEST_F(LogRateLimiterTest, AllowsTheFirstLinesOfEachSecond) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(limiter_.Allow("a", &suppressed_)) << i;
    EXPECT_EQ(suppressed_, 0u);
  }
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(limiter_.Allow("a", &suppressed_)) << i;
  now_ += absl::Milliseconds(999);  // the same window
  EXPECT_FALSE(limiter_.Allow("a", &suppressed_));
  now_ += absl::Milliseconds(1);  // the next one: the first line counts what was left out
  EXPECT_TRUE(limiter_.Allow("a", &suppressed_));
  EXPECT_EQ(suppressed_, 6u);
  EXPECT_TRUE(limiter_.Allow("a", &suppressed_));
  EXPECT_EQ(suppressed_, 0u);
}

TEST_F(LogRateLimiterTest, KeysAreIndependent) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(limiter_.Allow("a", &suppressed_));
  EXPECT_FALSE(limiter_.Allow("a", &suppressed_));
  EXPECT_TRUE(limiter_.Allow("b", &suppressed_));
  EXPECT_EQ(suppressed_, 0u);
}

TEST_F(LogRateLimiterTest, QuietKeysKeepTheirCountUntilTheNextLine) {
  for (int i = 0; i < 4; ++i) limiter_.Allow("a", &suppressed_);
  now_ += absl::Hours(1);
  EXPECT_TRUE(limiter_.Allow("a", &suppressed_));
  EXPECT_EQ(suppressed_, 1u);
}

TEST(LogRateLimiterZeroTest, ZeroLinesPerSecondRefusesAll) {
  LogRateLimiter limiter(0);
  uint64_t suppressed = 0;
  EXPECT_FALSE(limiter.Allow("a", &suppressed));
}

}  // namespace
}  // namespace tblog::daemon
