// The daemon's in-flight byte budget (--max-inflight-bytes): every byte the
// daemon holds for client requests, from the moment gRPC could start reading
// a message until its events are written. It counts
//   - reservations: room set aside for a message before the daemon asks gRPC
//     to read it (a Write stream's next message, a WriteBatch call's one:
//     the size learnt from the previous batch, --max-message-size when
//     nothing is known), because gRPC holds a message in memory before the
//     handler sees it;
//   - charges: a received batch (its message, plus an estimate of its
//     conversion buffers: decoded pixels, PNG/WAV, serialized events) while
//     it waits for a worker; after conversion the charge is settled to what
//     the batch then holds (its converted events), and released once written.
// Whatever does not fit waits, in arrival order: a stream does not read, a
// WriteBatch call is parked before its message is read (what the transport
// buffers of it meanwhile counts as "waiting" bytes, capped). So a client
// that outruns the disk waits in gRPC's flow control instead of growing the
// daemon's memory.
//
// No deadlock: a request larger than the whole budget is admitted when
// nothing else is held, and then goes through alone. A stream whose read has
// been pending for a while (an idle writer) would hold its reservation
// forever; Tick() takes such reservations back (the read stays pending, and
// a message that then arrives is charged in full as it lands).
#ifndef TBLOG_DAEMON_BYTE_BUDGET_H_
#define TBLOG_DAEMON_BYTE_BUDGET_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "base/sync.h"

namespace tblog::daemon {

// Thread-safe. Callbacks given to Reserve, ReserveOrWait and ChargeOrWait run
// exactly once (unless Cancel takes them back first) on the thread that made
// room or that called Tick, outside the budget's lock; they must not block.
class ByteBudget {
 public:
  // Identifies a waiting request or a granted reservation; never 0.
  using Ticket = uint64_t;
  // A waiting request's outcome: true when granted (the bytes are now
  // reserved or charged on its behalf), false when it expired in Tick.
  using OnGranted = absl::AnyInvocable<void(bool granted) &&>;

  // A reservation that has been pending this long may be taken back by Tick.
  static constexpr absl::Duration kIdleReservation = absl::Seconds(1);

  explicit ByteBudget(size_t capacity);
  ByteBudget(const ByteBudget&) = delete;
  ByteBudget& operator=(const ByteBudget&) = delete;

  struct Grant {
    Ticket ticket = 0;
    bool granted = false;  // granted now; otherwise `on_granted` runs later
  };

  // Reserves room for a stream's next message (`bytes` is clamped to the
  // capacity less the pinned bytes, so a huge reservation is granted when
  // nothing else is held).
  // Granted at once when it fits and nobody waits; otherwise queued behind
  // earlier requests, and `on_granted(true)` runs once it is granted.
  // Reservations never expire while waiting.
  Grant Reserve(size_t bytes, OnGranted on_granted);

  // The message a reservation was for has arrived: the reservation becomes a
  // charge of `bytes` (more than reserved is allowed: everyone else then
  // waits until it is paid back).
  void Commit(Ticket reservation, size_t bytes);

  // A unary call's message, already in memory. Charged at once when it fits
  // (or nothing else is held) and nobody waits: returns {ticket 0, granted}.
  // Otherwise, when no request waits yet, or the bytes of requests already
  // waiting plus `bytes` stay within `max_waiting`, it waits (FIFO, with the
  // reservations) until granted or until `expiry`
  // passes (Tick calls `on_granted(false)` then). Otherwise refused:
  // {0, false}, and `on_granted` is dropped.
  Grant ChargeOrWait(size_t bytes, size_t max_waiting, absl::Time expiry,
                     OnGranted on_granted);

  // A unary call's reservation, for its message not read yet: Reserve, but
  // a request that must wait holds `held` bytes meanwhile (what the
  // transport buffers of the message before it is read; counted in
  // waiting_bytes()) and waits under ChargeOrWait's rules: refused ({0,
  // false}, `on_granted` dropped) when requests already wait and their held
  // bytes plus `held` would pass `max_waiting`; `on_granted(false)` from Tick
  // once `expiry` passes. Granted, it is a reservation like Reserve's (Commit,
  // Cancel, taken back by Tick when pending for kIdleReservation).
  Grant ReserveOrWait(size_t bytes, size_t held, size_t max_waiting, absl::Time expiry,
                      OnGranted on_granted);

  // Takes back a waiting request (true: its callback will not run) or a
  // granted reservation (false; the reservation is given back, and a callback
  // already on its way still runs). Unknown tickets: false.
  bool Cancel(Ticket ticket);

  // Charges `bytes` unconditionally (the budget may be exceeded): for bytes
  // that are held already and must not wait, and for tests.
  void Charge(size_t bytes);

  // Charges `bytes` held for long (a client's shared-memory ring, for as long
  // as its stream lives: shm_rings.h) without waiting. Pinned bytes count in
  // used() and charged(), but a request larger than what they leave of the
  // capacity is admitted when nothing else is held, as one larger than the
  // capacity is otherwise. The caller keeps them below the capacity.
  void Pin(size_t bytes);
  // Gives pinned bytes back; room made wakes waiters.
  void Unpin(size_t bytes);

  // Adds `to - from` to the charges (an estimate replaced by the actual
  // figure); room made wakes waiters.
  void Settle(size_t from, size_t to);
  // Returns charged bytes; room made wakes waiters.
  void Release(size_t bytes);

  // Takes back reservations pending for kIdleReservation or longer and
  // expires waiting unary calls past their expiry (both when `now` says so),
  // then grants what fits. The daemon calls it at every flush tick.
  void Tick(absl::Time now);

  // Reserved + charged bytes (the tblogd_inflight_bytes gauge), its parts,
  // the bytes unary calls hold while they wait, and the requests waiting now
  // (the tblogd_parked_streams gauge: streams and unary calls).
  size_t used() const;
  size_t charged() const;
  size_t reserved() const;
  size_t waiting_bytes() const;
  size_t capacity() const { return capacity_; }
  int parked() const;

 private:
  struct Waiter {
    size_t bytes = 0;
    bool reservation = false;  // else a charge of a message already held
    size_t held = 0;           // counted in waiting_bytes_ while it waits
    absl::Time expiry = absl::InfiniteFuture();
    OnGranted on_granted;
  };
  struct Reservation {
    size_t bytes = 0;
    absl::Time since;
    bool lapsed = false;  // taken back by Tick: no longer counted
  };
  using Wakeups = std::vector<std::pair<OnGranted, bool>>;

  bool FitsLocked(size_t bytes) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A unary call's request (ChargeOrWait, ReserveOrWait): granted at once,
  // queued, or refused.
  Grant AdmitUnaryLocked(Waiter waiter, size_t max_waiting) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void GrantLocked(Ticket ticket, Waiter& waiter, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Grants waiters from the front while they fit; their callbacks go to
  // `wake`, to run once the lock is dropped.
  void AdmitLocked(Wakeups& wake) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Run(Wakeups& wake);

  const size_t capacity_;
  mutable Mutex mu_;
  size_t charged_ ABSL_GUARDED_BY(mu_) = 0;
  size_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
  size_t pinned_ ABSL_GUARDED_BY(mu_) = 0;  // part of charged_ (Pin)
  size_t waiting_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // held by unary calls waiting
  Ticket next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<Ticket, Waiter> waiters_ ABSL_GUARDED_BY(mu_);  // FIFO: tickets grow
  std::map<Ticket, Reservation> reservations_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_BYTE_BUDGET_H_
