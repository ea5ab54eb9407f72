#include "daemon/worker_pool.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <utility>

namespace tblog::daemon {

WorkerPool::WorkerPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  num_threads = std::max(num_threads, 1);
  threads_.reserve(static_cast<size_t>(num_threads));
  for (int i = 0; i < num_threads; ++i) threads_.emplace_back([this] { WorkerLoop(); });
}

WorkerPool::~WorkerPool() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
}

void WorkerPool::Submit(absl::AnyInvocable<void() &&> task) {
  MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
}

void WorkerPool::SubmitFirst(absl::AnyInvocable<void() &&> task) {
  MutexLock lock(&mu_);
  queue_.push_front(std::move(task));
}

int64_t WorkerPool::queued_tasks() const {
  MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

void WorkerPool::WorkerLoop() {
  while (true) {
    absl::AnyInvocable<void() &&> task;
    {
      MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(Condition(&ready));
      if (queue_.empty()) return;  // stopping, and every task has run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    std::move(task)();
  }
}

namespace {

// One ParallelFor call. Shared with its helper tasks, which may start after
// the call has returned (they then find no chunk left and never touch `fn`).
struct ParallelJob {
  explicit ParallelJob(absl::FunctionRef<void(int)> f, int n) : fn(f), num_tasks(n) {}
  absl::FunctionRef<void(int)> fn;
  const int num_tasks;
  std::atomic<int> next{0};
  Mutex mu;
  int done ABSL_GUARDED_BY(mu) = 0;

  // Claims and runs chunks until none is left unclaimed.
  void RunChunks() {
    int ran = 0;
    for (int i = next.fetch_add(1); i < num_tasks; i = next.fetch_add(1)) {
      fn(i);
      ++ran;
    }
    if (ran > 0) {
      MutexLock lock(&mu);
      done += ran;
    }
  }
};

}  // namespace

void WorkerPool::ParallelFor(int num_tasks, absl::FunctionRef<void(int)> fn) {
  if (num_tasks <= 0) return;
  if (num_tasks == 1) {
    fn(0);
    return;
  }
  auto job = std::make_shared<ParallelJob>(fn, num_tasks);
  const int helpers = std::min(num_tasks - 1, static_cast<int>(threads_.size()));
  {
    MutexLock lock(&mu_);
    for (int i = 0; i < helpers; ++i) {
      queue_.push_front([job]() mutable { job->RunChunks(); });
    }
  }
  job->RunChunks();
  // Every chunk is claimed now; wait only for those running on other threads,
  // which never wait on anything themselves.
  MutexLock lock(&job->mu);
  auto all_done = [&job]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(job->mu) {
    return job->done == job->num_tasks;
  };
  job->mu.Await(Condition(&all_done));
}

}  // namespace tblog::daemon
