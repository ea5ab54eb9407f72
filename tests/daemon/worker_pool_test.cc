#include "daemon/worker_pool.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

TEST(WorkerPoolTest, RunsEverySubmittedTaskOnce) {
  std::vector<std::atomic<int>> runs(1000);
  {
    WorkerPool pool(3);
    for (size_t i = 0; i < runs.size(); ++i) pool.Submit([&runs, i] { runs[i].fetch_add(1); });
  }  // the destructor runs what is queued
  for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(runs[i].load(), 1) << i;
}

// A run's writer goes ahead of the conversions already waiting (run.cc).
TEST(WorkerPoolTest, SubmitFirstRunsAheadOfTheWaitingTasks) {
  std::vector<int> order;  // written by the one worker only
  absl::Notification release;
  {
    WorkerPool pool(1);
    absl::Notification busy;
    pool.Submit([&] {
      busy.Notify();
      release.WaitForNotification();
    });
    busy.WaitForNotification();  // the worker is taken: what follows waits
    pool.Submit([&] { order.push_back(1); });
    pool.Submit([&] { order.push_back(2); });
    pool.SubmitFirst([&] { order.push_back(0); });
    release.Notify();
  }  // the destructor runs what is queued
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
}

TEST(WorkerPoolTest, ParallelForRunsEveryIndexOnce) {
  WorkerPool pool(4);
  std::vector<std::atomic<int>> runs(257);
  pool.ParallelFor(static_cast<int>(runs.size()), [&](int i) { runs[static_cast<size_t>(i)]++; });
  for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(runs[i].load(), 1) << i;
  pool.ParallelFor(0, [](int) { FAIL() << "no task expected"; });
}

// Every worker is inside a ParallelFor at once: the callers must run the
// chunks themselves instead of waiting for a free worker.
TEST(WorkerPoolTest, ParallelForFromEveryWorkerDoesNotDeadlock) {
  constexpr int kThreads = 3;
  WorkerPool pool(kThreads);
  std::atomic<int> chunks{0};
  absl::BlockingCounter all_inside(kThreads);
  absl::BlockingCounter finished(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    pool.Submit([&] {
      all_inside.DecrementCount();
      pool.ParallelFor(50, [&](int) { chunks.fetch_add(1); });
      finished.DecrementCount();
    });
  }
  finished.Wait();
  all_inside.Wait();
  EXPECT_EQ(chunks.load(), kThreads * 50);
}

TEST(WorkerPoolTest, NestedParallelFor) {
  WorkerPool pool(2);
  std::atomic<int> inner{0};
  pool.ParallelFor(8, [&](int) { pool.ParallelFor(8, [&](int) { inner.fetch_add(1); }); });
  EXPECT_EQ(inner.load(), 64);
}

TEST(WorkerPoolTest, ZeroThreadsMeansOnePerCore) {
  WorkerPool pool(0);
  EXPECT_GE(pool.Concurrency(), 1);
}

}  // namespace
}  // namespace tblog::daemon
