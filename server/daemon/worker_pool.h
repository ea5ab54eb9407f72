// The daemon's CPU workers: converting records (histograms, PNG, WAV, PR
// curves) off the gRPC threads. Also the engine's ParallelRunner, so one huge
// histogram can be split across idle workers.
#ifndef TBLOG_DAEMON_WORKER_POOL_H_
#define TBLOG_DAEMON_WORKER_POOL_H_

#include <cstdint>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "engine/histogram/parallel.h"
#include "base/sync.h"

namespace tblog::daemon {

// A fixed set of threads running submitted tasks in FIFO order.
//
// Queue policy: unbounded in count, because what the tasks hold is bounded
// upstream: every queued batch is charged to the daemon's ByteBudget before
// it is submitted. queued_tasks() is exported as the metric
// tblogd_worker_queued_tasks (Metrics reads it at scrape time).
//
// Threads start in the constructor; the destructor runs every task already
// submitted, then joins them. Thread-safe.
class WorkerPool final : public ParallelRunner {
 public:
  // num_threads <= 0: one per hardware thread.
  explicit WorkerPool(int num_threads);
  ~WorkerPool() override;
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task` to run once on a worker. Must not be called after (or
  // during) destruction.
  void Submit(absl::AnyInvocable<void() &&> task);
  // Queues `task` ahead of every task waiting (not of those running), for
  // short tasks that others wait on: a run's writer, whose acknowledgements
  // free the client's shared-memory slices and the budget. Behind the
  // conversions queued meanwhile, the ack of a large histogram waited for
  // the next one's conversion, and the client's copy of the one after
  // could not overlap it (bench/README.md, shared memory).
  void SubmitFirst(absl::AnyInvocable<void() &&> task);

  // ParallelRunner. Helper tasks go to the front of the queue; the caller runs
  // every chunk no idle worker has claimed, so calling it from a worker (all
  // workers busy) cannot deadlock: at worst the caller runs all chunks.
  int Concurrency() const override { return static_cast<int>(threads_.size()); }
  void ParallelFor(int num_tasks, absl::FunctionRef<void(int)> fn) override;

  // Tasks waiting for a worker (not counting running ones).
  int64_t queued_tasks() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void WorkerLoop();

  mutable Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_WORKER_POOL_H_
