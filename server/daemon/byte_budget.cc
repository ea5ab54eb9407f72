#include "daemon/byte_budget.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"

namespace tblog::daemon {

ByteBudget::ByteBudget(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

bool ByteBudget::FitsLocked(size_t bytes) const {
  const size_t used = charged_ + reserved_;
  // A request larger than what pinned bytes leave fits only when nothing
  // else is held (pinned bytes stay for long: they must not stop it).
  return used == pinned_ || used + std::min(bytes, capacity_ - pinned_) <= capacity_;
}

void ByteBudget::GrantLocked(Ticket ticket, Waiter& waiter, absl::Time now) {
  if (waiter.reservation) {
    reserved_ += waiter.bytes;
    reservations_.emplace(ticket, Reservation{waiter.bytes, now, false});
  } else {
    charged_ += waiter.bytes;
  }
  waiting_bytes_ -= waiter.held;
}

void ByteBudget::AdmitLocked(Wakeups& wake) {
  if (waiters_.empty()) return;
  const absl::Time now = absl::Now();
  while (!waiters_.empty()) {
    auto it = waiters_.begin();
    // Strictly in order: a large request at the front is not overtaken by
    // smaller ones forever.
    if (!FitsLocked(it->second.bytes)) break;
    GrantLocked(it->first, it->second, now);
    wake.emplace_back(std::move(it->second.on_granted), true);
    waiters_.erase(it);
  }
}

void ByteBudget::Run(Wakeups& wake) {
  for (auto& [on_granted, granted] : wake) std::move(on_granted)(granted);
}

ByteBudget::Grant ByteBudget::Reserve(size_t bytes, OnGranted on_granted) {
  MutexLock lock(&mu_);
  bytes = std::min(bytes, capacity_ - pinned_);  // what pinned bytes leave
  const Ticket ticket = next_ticket_++;
  Waiter waiter{bytes, /*reservation=*/true, /*held=*/0, absl::InfiniteFuture(),
                std::move(on_granted)};
  if (waiters_.empty() && FitsLocked(bytes)) {
    GrantLocked(ticket, waiter, absl::Now());
    return {ticket, true};
  }
  waiters_.emplace(ticket, std::move(waiter));
  return {ticket, false};
}

void ByteBudget::Commit(Ticket reservation, size_t bytes) {
  Wakeups wake;
  {
    MutexLock lock(&mu_);
    auto it = reservations_.find(reservation);
    if (it != reservations_.end()) {
      if (!it->second.lapsed) reserved_ -= it->second.bytes;
      reservations_.erase(it);
    }
    charged_ += bytes;
    AdmitLocked(wake);
  }
  Run(wake);
}

ByteBudget::Grant ByteBudget::AdmitUnaryLocked(Waiter waiter, size_t max_waiting) {
  const Ticket ticket = next_ticket_++;
  if (waiters_.empty() && FitsLocked(waiter.bytes)) {
    waiter.held = 0;  // never waits
    GrantLocked(ticket, waiter, absl::Now());
    return {ticket, true};
  }
  // One request may always wait, however large: otherwise a batch larger
  // than the cap could be refused for as long as others keep the budget busy.
  if (waiting_bytes_ > 0 && waiting_bytes_ + waiter.held > max_waiting) return {0, false};
  waiting_bytes_ += waiter.held;
  waiters_.emplace(ticket, std::move(waiter));
  return {ticket, false};
}

ByteBudget::Grant ByteBudget::ChargeOrWait(size_t bytes, size_t max_waiting, absl::Time expiry,
                                           OnGranted on_granted) {
  MutexLock lock(&mu_);
  const Grant grant = AdmitUnaryLocked(
      Waiter{bytes, /*reservation=*/false, /*held=*/bytes, expiry, std::move(on_granted)},
      max_waiting);
  // A charge needs no ticket once granted.
  return grant.granted ? Grant{0, true} : grant;
}

ByteBudget::Grant ByteBudget::ReserveOrWait(size_t bytes, size_t held, size_t max_waiting,
                                            absl::Time expiry, OnGranted on_granted) {
  MutexLock lock(&mu_);
  return AdmitUnaryLocked(Waiter{std::min(bytes, capacity_), /*reservation=*/true, held, expiry,
                                 std::move(on_granted)},
                          max_waiting);
}

bool ByteBudget::Cancel(Ticket ticket) {
  Wakeups wake;
  bool was_waiting = false;
  {
    MutexLock lock(&mu_);
    if (auto it = waiters_.find(ticket); it != waiters_.end()) {
      waiting_bytes_ -= it->second.held;
      waiters_.erase(it);
      was_waiting = true;
    } else if (auto res = reservations_.find(ticket); res != reservations_.end()) {
      if (!res->second.lapsed) reserved_ -= res->second.bytes;
      reservations_.erase(res);
    }
    // Either way room may have been made (a waiter at the front gone).
    AdmitLocked(wake);
  }
  Run(wake);
  return was_waiting;
}

void ByteBudget::Charge(size_t bytes) {
  MutexLock lock(&mu_);
  charged_ += bytes;
}

void ByteBudget::Pin(size_t bytes) {
  MutexLock lock(&mu_);
  pinned_ += bytes;
  charged_ += bytes;
}

void ByteBudget::Unpin(size_t bytes) {
  Wakeups wake;
  {
    MutexLock lock(&mu_);
    bytes = std::min(bytes, pinned_);
    pinned_ -= bytes;
    charged_ -= std::min(bytes, charged_);
    AdmitLocked(wake);
  }
  Run(wake);
}

void ByteBudget::Settle(size_t from, size_t to) {
  Wakeups wake;
  {
    MutexLock lock(&mu_);
    charged_ = charged_ - std::min(from, charged_) + to;
    if (to < from) AdmitLocked(wake);
  }
  Run(wake);
}

void ByteBudget::Release(size_t bytes) {
  Wakeups wake;
  {
    MutexLock lock(&mu_);
    charged_ -= std::min(bytes, charged_);
    AdmitLocked(wake);
  }
  Run(wake);
}

void ByteBudget::Tick(absl::Time now) {
  Wakeups wake;
  {
    MutexLock lock(&mu_);
    for (auto& [ticket, reservation] : reservations_) {
      if (!reservation.lapsed && now - reservation.since >= kIdleReservation) {
        reservation.lapsed = true;
        reserved_ -= reservation.bytes;
      }
    }
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.expiry <= now) {
        waiting_bytes_ -= it->second.held;
        wake.emplace_back(std::move(it->second.on_granted), false);
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
    AdmitLocked(wake);
  }
  Run(wake);
}

size_t ByteBudget::used() const {
  MutexLock lock(&mu_);
  return charged_ + reserved_;
}

size_t ByteBudget::charged() const {
  MutexLock lock(&mu_);
  return charged_;
}

size_t ByteBudget::reserved() const {
  MutexLock lock(&mu_);
  return reserved_;
}

size_t ByteBudget::waiting_bytes() const {
  MutexLock lock(&mu_);
  return waiting_bytes_;
}

int ByteBudget::parked() const {
  MutexLock lock(&mu_);
  return static_cast<int>(waiters_.size());
}

}  // namespace tblog::daemon
