// The daemon's in-flight byte budget: bytes of client data received but not
// yet written. When it is spent, streams stop reading (they "park") until
// written data releases bytes, so a client that outruns the disk waits in
// gRPC's flow control instead of growing the daemon's memory.
#ifndef TBLOG_DAEMON_BYTE_BUDGET_H_
#define TBLOG_DAEMON_BYTE_BUDGET_H_

#include <cstddef>
#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "base/sync.h"

namespace tblog::daemon {

// Thread-safe. Callbacks given to ChargeOrPark run on the thread that calls
// Release, outside the budget's lock, and must not block.
class ByteBudget {
 public:
  using ParkId = uint64_t;

  explicit ByteBudget(size_t capacity);
  ByteBudget(const ByteBudget&) = delete;
  ByteBudget& operator=(const ByteBudget&) = delete;

  // Charges `bytes` (always: a message is already in memory when it is
  // charged, so usage may exceed the capacity by one message per stream).
  // Returns 0 when budget is left, so the caller may read on. Otherwise parks
  // `resume` and returns its id (> 0); `resume` runs once, from a later
  // Release that brings usage below the capacity, unless Unpark takes it
  // back first. Charging and parking are one step: no wake-up is lost.
  ParkId ChargeOrPark(size_t bytes, absl::AnyInvocable<void() &&> resume);

  // Charges without parking (for unary calls, which hold one message).
  void Charge(size_t bytes);

  // Returns bytes; when usage drops below the capacity, runs every parked
  // callback (oldest first).
  void Release(size_t bytes);

  // Takes a parked callback back without running it. False when it has
  // already been taken to run (or never was parked).
  bool Unpark(ParkId id);

  // Bytes charged and not yet released, and callbacks parked now: the
  // daemon's tblogd_inflight_bytes and tblogd_parked_streams gauges.
  size_t used() const;
  size_t capacity() const { return capacity_; }
  int parked() const;

 private:
  const size_t capacity_;
  mutable Mutex mu_;
  size_t used_ ABSL_GUARDED_BY(mu_) = 0;
  ParkId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<ParkId, absl::AnyInvocable<void() &&>> parked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_BYTE_BUDGET_H_
