#include "daemon/forward_stream.h"

#include <optional>
#include <utility>

#include "daemon/malformed_requests.h"
#include "daemon/upstream_service.h"

namespace tblog::daemon {
namespace {

grpc::Status ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "tblogd is shutting down");
}

// A forwarded message is held as it is, never converted here: its size.
size_t MessageCharge(const v1::WriteRequest& /*request*/, size_t received) { return received; }

}  // namespace

ForwardedStream::ForwardedStream(UpstreamService* service)
    : BudgetedReadStream(service->budget_, &MessageCharge, "Write stream"), service_(service) {
  grpc::Status refusal;
  if (!service_->RegisterStream(this, &refusal)) {
    {
      MutexLock lock(&mu_);
      finished_ = true;
      upstream_done_ = true;  // never started
    }
    Finish(refusal);
    return;
  }
  upstream_context_ = service_->channel_->StreamContext();
  service_->channel_->stub()->async()->Write(upstream_context_.get(), &upstream_);
  bool read = false;
  {
    MutexLock lock(&mu_);
    upstream_held_ = true;
    // Nothing known of this writer yet: room for the largest message, as the
    // writing daemon reserves (tblog_service.cc), clamped to the budget.
    next_reservation_ = service_->max_message_bytes_;
    read = RequestReadLocked();
  }
  upstream_.AddHold();
  upstream_.StartRead(&upstream_response_);
  upstream_.StartCall();
  if (read) StartBudgetedRead();
}

void ForwardedStream::OnMessage(Message message) {
  // A batch, not a message that only binds the stream: the upstream acks it.
  const bool batch =
      message.parsed.ok() && (request_.sequence() != 0 || request_.records_size() > 0);
  bool forward = false;
  {
    MutexLock lock(&mu_);
    if (!message.parsed.ok() && error_.ok()) error_ = message.parsed;
    if (!StoppedLocked()) {
      forward = upstream_writing_ = true;
      charged_ = message.charge;
      next_reservation_ = message.next_reservation();
      if (batch) unacked_.push_back(Unacked{request_.sequence(), message.bytes});
    }
  }
  if (forward) {
    if (batch) {
      service_->metrics().Forwarded(static_cast<uint64_t>(request_.records_size()), message.bytes);
    }
    to_upstream_.Release();
    upstream_.StartWrite(&request_);
  } else {
    // Not forwarded: the client resends it if it still matters.
    request_.Clear();
    budget_->Release(message.charge);
    Progress();
  }
}

void ForwardedStream::OnUpstreamWriteDone(bool ok) {
  to_upstream_.Acquire();
  // gRPC has serialized the message: it no longer needs request_.
  request_.Clear();
  size_t release = 0;
  bool read_on = false;
  {
    MutexLock lock(&mu_);
    upstream_writing_ = false;
    release = std::exchange(charged_, 0);
    // !ok: the upstream stream broke; its end (OnUpstreamDone) tells why.
    if (ok && !StoppedLocked() && !finished_) read_on = RequestReadLocked();
  }
  budget_->Release(release);
  if (read_on) {
    StartBudgetedRead();
  } else {
    Progress();
  }
}

void ForwardedStream::OnUpstreamReadDone(bool ok) {
  if (ok) {
    uint64_t acked = 0, acked_bytes = 0;
    {
      MutexLock lock(&mu_);
      // Written upstream: every batch up to its written_sequence (an
      // unsequenced one is written in order with the others).
      while (!unacked_.empty() && (unacked_.front().sequence == 0 ||
                                   unacked_.front().sequence <= upstream_response_.written_sequence())) {
        ++acked;
        acked_bytes += unacked_.front().bytes;
        unacked_.pop_front();
      }
      replies_.push_back(SerializeMessage(upstream_response_));
    }
    service_->metrics().Acknowledged(
        acked, acked_bytes, static_cast<uint64_t>(upstream_response_.duplicate_sequences_size()));
    upstream_response_.Clear();
    upstream_.StartRead(&upstream_response_);  // a reaction may start operations
    Progress();
    return;
  }
  {
    MutexLock lock(&mu_);
    upstream_reads_over_ = true;
  }
  StopWaiting();
  Progress();
}

void ForwardedStream::OnUpstreamDone(const grpc::Status& status) {
  {
    MutexLock lock(&mu_);
    upstream_done_ = true;
    upstream_status_ = status;
  }
  Progress();
}

void ForwardedStream::OnWriteDone(bool ok) {
  {
    MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) reads_done_ = client_gone_ = true;
  }
  Progress();
}

void ForwardedStream::OnCancel() {
  {
    MutexLock lock(&mu_);
    reads_done_ = client_gone_ = true;
  }
  StopWaiting();
  Progress();
}

void ForwardedStream::StopForShutdown() {
  {
    MutexLock lock(&mu_);
    shutdown_ = true;
  }
  StopWaiting();
  Progress();
}

void ForwardedStream::Progress() {
  enum class EndUpstream { kNo, kWritesDone, kCancel, kRelease };
  EndUpstream end_upstream = EndUpstream::kNo;
  bool write = false;
  std::optional<grpc::Status> finish;
  {
    MutexLock lock(&mu_);
    if (finished_) return;
    // Nothing more goes upstream: a clean half-close is passed on (the
    // upstream then acknowledges what it has and ends the stream OK); any
    // other stop cancels the upstream stream. Then the hold goes, so that the
    // upstream call can complete.
    if (upstream_held_ && !upstream_writing_ && StoppedLocked()) {
      upstream_held_ = false;
      if (upstream_reads_over_) {
        end_upstream = EndUpstream::kRelease;
      } else if (reads_done_ && !client_gone_ && !shutdown_ && error_.ok()) {
        end_upstream = EndUpstream::kWritesDone;
      } else {
        end_upstream = EndUpstream::kCancel;
      }
    }
    if (!writing_ && !client_gone_ && !replies_.empty()) {
      write_buffer_ = std::move(replies_.front());
      replies_.pop_front();
      writing_ = write = true;
    } else if (upstream_done_ && !writing_ && !WaitingLocked() &&
               (replies_.empty() || client_gone_)) {
      // A client read still in flight is cancelled by Finish.
      finished_ = true;
      if (!error_.ok()) {
        finish = grpc::Status(static_cast<grpc::StatusCode>(error_.code()),
                              std::string(error_.message()));
      } else if (shutdown_) {
        finish = ShuttingDown();
      } else {
        finish = RelayedStatus(upstream_status_, service_->channel_->address());
      }
    }
  }
  switch (end_upstream) {
    case EndUpstream::kNo:
      break;
    case EndUpstream::kWritesDone:
      upstream_.StartWritesDone();
      upstream_.RemoveHold();
      break;
    case EndUpstream::kCancel:
      upstream_context_->TryCancel();
      upstream_.RemoveHold();
      break;
    case EndUpstream::kRelease:
      upstream_.RemoveHold();
      break;
  }
  if (write) StartWrite(&write_buffer_);
  if (finish) Finish(*finish);  // last: OnDone may delete this at once
}

void ForwardedStream::OnDone() {
  ReleaseReservation();
  uint64_t abandoned = 0;
  {
    MutexLock lock(&mu_);
    for (const Unacked& batch : unacked_) abandoned += batch.bytes;
    unacked_.clear();
  }
  // Never acknowledged here: their clients resend them.
  if (abandoned > 0) service_->metrics().Abandoned(abandoned);
  service_->UnregisterStream(this);
  delete this;
}

}  // namespace tblog::daemon
