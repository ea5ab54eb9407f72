// tblog::Mutex & co. behave like absl's: in a TSan build this runs the
// std::mutex implementation of base/sync.h, otherwise the absl aliases.
#include "base/sync.h"

#include <thread>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tblog {
namespace {

TEST(SyncTest, AwaitReturnsOnceAnotherThreadMakesTheConditionTrue) {
  Mutex mu;
  bool ready = false;
  int value = 0;
  std::thread producer([&] {
    MutexLock lock(&mu);
    value = 42;
    ready = true;
  });
  {
    MutexLock lock(&mu);
    mu.Await(Condition(&ready));
    EXPECT_EQ(value, 42);
  }
  producer.join();
}

TEST(SyncTest, AwaitSeesChangesMadeByAnotherAwaiter) {
  // Thread B changes the state and then awaits: A's condition must be
  // re-evaluated when B releases the mutex inside its own Await.
  Mutex mu;
  int stage = 0;
  std::thread b([&] {
    MutexLock lock(&mu);
    auto at_one = [&stage] { return stage >= 1; };
    mu.Await(Condition(&at_one));
    stage = 2;
    auto at_three = [&stage] { return stage >= 3; };
    mu.Await(Condition(&at_three));
  });
  {
    MutexLock lock(&mu);
    stage = 1;
    auto at_two = [&stage] { return stage >= 2; };
    mu.Await(Condition(&at_two));
    stage = 3;
  }
  b.join();
  EXPECT_EQ(stage, 3);
}

TEST(SyncTest, AwaitWithTimeoutReportsTheConditionAtTheDeadline) {
  Mutex mu;
  bool never = false;
  bool always = true;
  MutexLock lock(&mu);
  EXPECT_FALSE(mu.AwaitWithTimeout(Condition(&never), absl::Milliseconds(5)));
  EXPECT_TRUE(mu.AwaitWithTimeout(Condition(&always), absl::ZeroDuration()));
  EXPECT_FALSE(mu.AwaitWithDeadline(Condition(&never), absl::InfinitePast()));
}

TEST(SyncTest, CondVarWaitReacquiresTheMutex) {
  Mutex mu;
  CondVar cv;
  bool done = false;
  std::thread signaller([&] {
    MutexLock lock(&mu);
    done = true;
    cv.SignalAll();
  });
  {
    MutexLock lock(&mu);
    while (!done) cv.Wait(&mu);
    EXPECT_TRUE(done);
  }
  signaller.join();
}

TEST(SyncTest, TryLockFailsWhileHeldAndReleasableLockReleasesEarly) {
  Mutex mu;
  {
    ReleasableMutexLock lock(&mu);
    std::thread other([&] { EXPECT_FALSE(mu.TryLock()); });
    other.join();
    lock.Release();
  }
  if (mu.TryLock()) {
    mu.Unlock();
  } else {
    ADD_FAILURE() << "TryLock failed on a released mutex";
  }
}

}  // namespace
}  // namespace tblog
