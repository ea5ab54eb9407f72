// tblog::Mutex, MutexLock, ReleasableMutexLock, CondVar, Condition and
// Notification: the subset of absl's synchronization API that tblog uses.
//
// Why: Debian's abseil is not built with ThreadSanitizer, and absl::Mutex
// tells TSan about its lock/unlock edges only from inside that precompiled
// library. Under TSan every absl::Mutex-protected access would be reported as
// a race. So in a TSan build these types are implemented over std::mutex and
// std::condition_variable (pthread, which TSan intercepts); in every other
// build they are plain aliases of the absl types, at no cost. Either way the
// Clang thread-safety annotations (ABSL_GUARDED_BY etc.) keep working.
#ifndef TBLOG_BASE_SYNC_H_
#define TBLOG_BASE_SYNC_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#if defined(__SANITIZE_THREAD__)
#define TBLOG_SYNC_USE_STD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TBLOG_SYNC_USE_STD 1
#endif
#endif

#ifdef TBLOG_SYNC_USE_STD
#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <mutex>
#endif

namespace tblog {

#ifndef TBLOG_SYNC_USE_STD

using Mutex = absl::Mutex;
using MutexLock = absl::MutexLock;
using ReleasableMutexLock = absl::ReleasableMutexLock;
using CondVar = absl::CondVar;
using Condition = absl::Condition;
using Notification = absl::Notification;

#else  // TBLOG_SYNC_USE_STD: the same API over std::mutex, seen by TSan.

// A predicate evaluated with the mutex held: a pointer to a bool, or to a
// callable `bool() const` (e.g. a lambda). Borrows the pointee, which must
// outlive every Await that uses the Condition.
class Condition {
 public:
  explicit Condition(const bool* cond) : eval_(&EvalBool), arg_(cond) {}
  template <typename Predicate>
  explicit Condition(const Predicate* predicate)
      : eval_(&EvalPredicate<Predicate>), arg_(predicate) {}

  bool Eval() const { return eval_(arg_); }

 private:
  static bool EvalBool(const void* arg) { return *static_cast<const bool*>(arg); }
  // Await evaluates the predicate with the mutex held, which the static
  // analysis cannot follow through this function pointer (absl's Condition
  // opts out the same way).
  template <typename Predicate>
  static bool EvalPredicate(const void* arg) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return (*static_cast<const Predicate*>(arg))();
  }

  bool (*eval_)(const void*);
  const void* arg_;
};

// Like absl::Mutex: exclusive only. Await re-evaluates its condition whenever
// another thread releases the mutex (Unlock, Await, CondVar::Wait), which is
// when the guarded state can have changed.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    // Wake awaiters before unlocking, so that one that returns and destroys
    // this Mutex cannot race with the notification.
    WakeAwaiters();
    mu_.unlock();
  }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

  // Releases the mutex until cond is true, then returns with it held.
  void Await(const Condition& cond) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    AwaitWithDeadline(cond, absl::InfiniteFuture());
  }
  // As Await, but gives up at the deadline; returns cond's value then.
  bool AwaitWithDeadline(const Condition& cond, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    // Entering Await releases the mutex: the caller may have changed the state
    // it guards, so the other awaiters re-check once. Not on later rounds: an
    // awaiter that finds its condition false changed nothing, and waking the
    // others again would make two awaiters wake each other forever.
    if (!cond.Eval()) WakeAwaiters();
    while (!cond.Eval()) {
      ++awaiters_;
      if (deadline == absl::InfiniteFuture()) {
        changed_.wait(lock);
      } else if (changed_.wait_until(lock, absl::ToChronoTime(deadline)) ==
                 std::cv_status::timeout) {
        --awaiters_;
        break;
      }
      --awaiters_;
    }
    lock.release();  // the caller keeps holding mu_
    return cond.Eval();
  }
  bool AwaitWithTimeout(const Condition& cond, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    return AwaitWithDeadline(cond, absl::Now() + timeout);
  }

 private:
  friend class CondVar;

  void WakeAwaiters() {
    if (awaiters_ > 0) changed_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable changed_;  // the mutex was released by an owner
  int awaiters_ = 0;                 // threads in Await; guarded by mu_
};

// Holds a Mutex for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A MutexLock that can be released before the end of its scope.
class ABSL_SCOPED_LOCKABLE ReleasableMutexLock {
 public:
  explicit ReleasableMutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~ReleasableMutexLock() ABSL_UNLOCK_FUNCTION() {
    if (mu_ != nullptr) mu_->Unlock();
  }
  void Release() ABSL_UNLOCK_FUNCTION() {
    mu_->Unlock();
    mu_ = nullptr;
  }
  ReleasableMutexLock(const ReleasableMutexLock&) = delete;
  ReleasableMutexLock& operator=(const ReleasableMutexLock&) = delete;

 private:
  Mutex* mu_;
};

// Like absl::CondVar; spurious wakeups are possible, so wait in a loop.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases *mu (held by the caller) until signalled, then reacquires it.
  void Wait(Mutex* mu) {
    mu->WakeAwaiters();
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

// A one-shot event: Notify() once, then every WaitForNotification returns.
class Notification {
 public:
  Notification() = default;
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
  }
  bool HasBeenNotified() const {
    MutexLock lock(&mu_);
    return notified_;
  }
  void WaitForNotification() const {
    MutexLock lock(&mu_);
    mu_.Await(Condition(&notified_));
  }

 private:
  mutable Mutex mu_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

#endif  // TBLOG_SYNC_USE_STD

// Makes an ordering that gRPC core already guarantees visible to
// ThreadSanitizer: an operation started on one thread (StartWrite, a client
// call) completes on another, ordered by gRPC's uninstrumented code. Call
// Release() after the last write the completion reads, just before starting
// the operation, and Acquire() first thing in the completion. Costs one
// atomic add and one load; changes nothing else.
class HandOff {
 public:
  void Release() { handed_.fetch_add(1, std::memory_order_release); }
  void Acquire() const { (void)handed_.load(std::memory_order_acquire); }

 private:
  std::atomic<uint64_t> handed_{0};
};

}  // namespace tblog

#endif  // TBLOG_BASE_SYNC_H_
