// A minimal seam for splitting CPU-bound work (histograms of large tensors)
// across threads. The engine only depends on ParallelRunner; the daemon
// implements it on its worker pool, tests and benchmarks use
// ThreadParallelRunner.
#ifndef TBLOG_ENGINE_HISTOGRAM_PARALLEL_H_
#define TBLOG_ENGINE_HISTOGRAM_PARALLEL_H_

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "base/sync.h"

namespace tblog {

// Runs independent tasks, possibly in parallel.
//
// Contract for implementations:
//  - ParallelFor calls fn(i) exactly once for every i in [0, num_tasks), in any
//    order and on any threads, and returns only after every call has returned.
//  - The calling thread must take part in running tasks (or the call must
//    otherwise make progress without free workers), so that ParallelFor called
//    from one of the runner's own workers cannot deadlock.
//  - fn must not block on other tasks of the same call; it may run concurrently
//    with itself, so it writes only to per-task state.
//  - Implementations are thread-safe: ParallelFor may be called from several
//    threads at once.
class ParallelRunner {
 public:
  virtual ~ParallelRunner() = default;

  // How many tasks can usefully run at once (>= 1); callers size their task
  // count from it. Results of the engine never depend on this number.
  virtual int Concurrency() const = 0;

  // See the class comment. num_tasks <= 0 does nothing.
  virtual void ParallelFor(int num_tasks, absl::FunctionRef<void(int)> fn) = 0;
};

// A fixed pool of num_threads - 1 worker threads plus the calling thread.
// Threads start in the constructor and are joined in the destructor, which
// must not run while a ParallelFor is in flight. The pool serves one call at
// a time; a call made while it is busy (from another thread, or nested inside
// a task) runs all its tasks on its own calling thread. Not copyable.
class ThreadParallelRunner final : public ParallelRunner {
 public:
  // num_threads < 1 is treated as 1 (everything runs on the calling thread).
  explicit ThreadParallelRunner(int num_threads);
  ~ThreadParallelRunner() override;
  ThreadParallelRunner(const ThreadParallelRunner&) = delete;
  ThreadParallelRunner& operator=(const ThreadParallelRunner&) = delete;

  int Concurrency() const override { return num_threads_; }
  void ParallelFor(int num_tasks, absl::FunctionRef<void(int)> fn) override;

 private:
  // One ParallelFor call shared by the workers that help with it.
  struct Job {
    absl::FunctionRef<void(int)> fn;
    int num_tasks;
    std::atomic<int> next_task{0};
    std::atomic<int> tasks_done{0};
  };

  // Runs one call on the pool; the caller holds call_mu_.
  void RunOnPool(int num_tasks, absl::FunctionRef<void(int)> fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  void WorkerLoop();
  // Claims and runs tasks of `job` until none is left.
  static void RunTasks(Job& job);

  const int num_threads_;
  Mutex call_mu_;  // held by the one call using the pool
  Mutex mu_;
  CondVar work_cv_;  // a new job, or shutdown
  CondVar done_cv_;  // a job's last task finished, or a worker left it
  Job* job_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t job_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int workers_in_job_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace tblog

#endif  // TBLOG_ENGINE_HISTOGRAM_PARALLEL_H_
