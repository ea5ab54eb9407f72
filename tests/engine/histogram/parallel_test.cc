#include "engine/histogram/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace tblog {
namespace {

// Every index runs exactly once, whatever the thread and task counts.
TEST(ThreadParallelRunnerTest, RunsEveryTaskExactlyOnce) {
  for (int threads : {0, 1, 2, 3, 8}) {
    ThreadParallelRunner runner(threads);
    EXPECT_GE(runner.Concurrency(), 1);
    for (int tasks : {0, 1, 2, 7, 64, 1000}) {
      std::vector<std::atomic<int>> calls(static_cast<size_t>(tasks));
      runner.ParallelFor(tasks, [&](int i) { calls[static_cast<size_t>(i)].fetch_add(1); });
      for (int i = 0; i < tasks; ++i) {
        EXPECT_EQ(calls[static_cast<size_t>(i)].load(), 1)
            << "threads " << threads << " tasks " << tasks << " index " << i;
      }
    }
  }
}

TEST(ThreadParallelRunnerTest, RunsTasksConcurrently) {
  ThreadParallelRunner runner(3);
  std::atomic<int> running{0};
  std::atomic<int> arrived{0};
  std::atomic<int> max_running{0};
  // Each task waits (up to ~10 s) for another one to be running at the same
  // time, which only happens when the pool really runs tasks in parallel.
  runner.ParallelFor(2, [&](int) {
    running.fetch_add(1);
    arrived.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (arrived.load() < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    int now = running.load();
    int seen = max_running.load();
    while (seen < now && !max_running.compare_exchange_weak(seen, now)) {
    }
    running.fetch_sub(1);
  });
  EXPECT_EQ(max_running.load(), 2);
}

// A task may call ParallelFor on the same runner: it runs on the calling
// thread instead of deadlocking.
TEST(ThreadParallelRunnerTest, NestedCallsComplete) {
  ThreadParallelRunner runner(4);
  std::atomic<int> inner_calls{0};
  runner.ParallelFor(8,
                     [&](int) { runner.ParallelFor(5, [&](int) { inner_calls.fetch_add(1); }); });
  EXPECT_EQ(inner_calls.load(), 40);
}

TEST(ThreadParallelRunnerTest, ConcurrentCallersAllComplete) {
  ThreadParallelRunner runner(4);
  std::atomic<int> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int round = 0; round < 50; ++round) {
        runner.ParallelFor(16, [&](int) { total.fetch_add(1); });
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(total.load(), 4 * 50 * 16);
}

}  // namespace
}  // namespace tblog
