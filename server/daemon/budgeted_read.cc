#include "daemon/budgeted_read.h"

#include <utility>

#include "daemon/malformed_requests.h"

namespace tblog::daemon {

bool BudgetedReadStream::RequestReadLocked() {
  const ByteBudget::Grant grant = budget_->Reserve(
      next_reservation_, [this](bool /*granted: reservations never expire*/) { OnGranted(); });
  if (grant.granted) {
    reservation_ = grant.ticket;
    return true;
  }
  waiting_ = grant.ticket;
  return false;
}

void BudgetedReadStream::OnGranted() {
  bool read_on = false;
  ByteBudget::Ticket give_back = 0;
  {
    MutexLock lock(&mu_);
    const ByteBudget::Ticket ticket = std::exchange(waiting_, 0);
    if (ReadsLocked()) {
      reservation_ = ticket;
      read_on = true;
    } else {
      give_back = ticket;
    }
  }
  if (give_back != 0) budget_->Cancel(give_back);
  if (read_on) {
    StartBudgetedRead();
  } else {
    Progress();
  }
}

void BudgetedReadStream::StopWaiting() {
  ByteBudget::Ticket waiting = 0;
  {
    MutexLock lock(&mu_);
    waiting = waiting_;
  }
  // Not taken back: the grant is on its way, and OnGranted gives it back.
  if (waiting != 0 && budget_->Cancel(waiting)) {
    MutexLock lock(&mu_);
    if (waiting_ == waiting) waiting_ = 0;
  }
}

void BudgetedReadStream::ReleaseReservation() {
  ByteBudget::Ticket reservation = 0;
  {
    MutexLock lock(&mu_);
    reservation = std::exchange(reservation_, 0);
  }
  if (reservation != 0) budget_->Cancel(reservation);
}

void BudgetedReadStream::OnReadDone(bool ok) {
  ByteBudget::Ticket reservation = 0;
  {
    MutexLock lock(&mu_);
    reservation = std::exchange(reservation_, 0);
    if (!ok) ReadsOverLocked();
  }
  if (!ok) {
    budget_->Cancel(reservation);
    Progress();
    return;
  }
  // Outside the lock, as a message may be large.
  Message message;
  const size_t received = read_buffer_.Length();
  message.parsed = ParseMessage(read_buffer_, request_, ++messages_read_, stream_);
  // The received size is the serialized size (ByteSizeLong() would walk
  // every packed varint of a scalar batch again to find it).
  message.bytes = received;
  message.charge = message.parsed.ok() ? charge_(request_, received) : received;
  // The message is in memory: its charge takes the reservation's place.
  budget_->Commit(reservation, message.charge);
  OnMessage(std::move(message));
}

}  // namespace tblog::daemon
