#include "engine/histogram/parallel.h"

#include <algorithm>

namespace tblog {

ThreadParallelRunner::ThreadParallelRunner(int num_threads)
    : num_threads_(std::max(1, num_threads)) {
  workers_.reserve(static_cast<size_t>(num_threads_ - 1));
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadParallelRunner::~ThreadParallelRunner() {
  {
    MutexLock lock(&mu_);
    shutting_down_ = true;
    work_cv_.SignalAll();
  }
  for (std::thread& worker : workers_) worker.join();
}

void ThreadParallelRunner::RunTasks(Job& job) {
  while (true) {
    const int task = job.next_task.fetch_add(1, std::memory_order_relaxed);
    if (task >= job.num_tasks) return;
    job.fn(task);
    job.tasks_done.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadParallelRunner::ParallelFor(int num_tasks, absl::FunctionRef<void(int)> fn) {
  if (num_tasks <= 0) return;
  // The pool serves one call at a time. A call that finds it busy (another
  // thread's, or a nested call from inside a task) runs on its own thread
  // instead of waiting, so nesting cannot deadlock.
  if (num_tasks == 1 || workers_.empty() || !call_mu_.TryLock()) {
    for (int i = 0; i < num_tasks; ++i) fn(i);
    return;
  }
  RunOnPool(num_tasks, fn);
  call_mu_.Unlock();
}

void ThreadParallelRunner::RunOnPool(int num_tasks, absl::FunctionRef<void(int)> fn) {
  Job job{fn, num_tasks};
  {
    MutexLock lock(&mu_);
    job_ = &job;
    ++job_generation_;
    work_cv_.SignalAll();
  }
  RunTasks(job);
  // The job lives on this stack frame: wait until every task has finished
  // and no worker still holds a pointer to it.
  MutexLock lock(&mu_);
  job_ = nullptr;
  while (workers_in_job_ > 0 || job.tasks_done.load(std::memory_order_acquire) < num_tasks) {
    done_cv_.Wait(&mu_);
  }
}

void ThreadParallelRunner::WorkerLoop() {
  uint64_t seen_generation = 0;
  MutexLock lock(&mu_);
  while (true) {
    while (!shutting_down_ && (job_ == nullptr || job_generation_ == seen_generation)) {
      work_cv_.Wait(&mu_);
    }
    if (shutting_down_) return;
    seen_generation = job_generation_;
    Job* job = job_;
    ++workers_in_job_;
    mu_.Unlock();
    RunTasks(*job);
    mu_.Lock();
    --workers_in_job_;
    done_cv_.SignalAll();
  }
}

}  // namespace tblog
