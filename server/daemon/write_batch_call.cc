#include "daemon/write_batch_call.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_util.h"
#include "daemon/convert/charge.h"
#include "daemon/grpc_status.h"
#include "daemon/malformed_requests.h"
#include "daemon/metrics.h"
#include "daemon/writer_binding.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {
namespace {

constexpr char kMethod[] = "/tblog.v1.TBLog/WriteBatch";

std::string Mib(size_t bytes) {
  return absl::StrCat(static_cast<double>(bytes) / (1 << 20), " MiB");
}

// The daemon's own WriteBatch call: the request is validated, handed to its
// run, and the call finishes when its batch is written (or refused).
class WriteBatchCall final : public BudgetedWriteBatch {
 public:
  WriteBatchCall(grpc::CallbackServerContext* context, grpc::ByteBuffer* response,
                 const WriteBatchShared& shared, std::string caller)
      : BudgetedWriteBatch(context, response, shared.run_context.budget, shared.read_sizes,
                           &convert::BatchCharge),
        shared_(shared),
        caller_(std::move(caller)) {}

 private:
  // WriteBatch's ack: finishes the call when its one batch is written. gRPC
  // sends no response message with a non-OK status, so the full
  // WriteResponse (every RecordError) also travels in the trailing metadata.
  class AckSink final : public tblog::daemon::AckSink {
   public:
    explicit AckSink(WriteBatchCall* call) : call_(call) {}
    void OnAck(v1::WriteResponse ack, int completed_batches) override {
      if (completed_batches == 0) return;
      grpc::Status status = grpc::Status::OK;
      if (ack.errors_size() > 0) {
        call_->shared_.log->RecordsRejected(call_->peer_, call_->run_id_, call_->writer_id_, ack);
        status = grpc::Status(static_cast<grpc::StatusCode>(ack.errors(0).code()),
                              ack.errors(0).message());
        call_->context_->AddTrailingMetadata(kWriteResponseTrailer, ack.SerializeAsString());
      } else {
        *call_->response_ = SerializeMessage(ack);
      }
      call_->FinishOnce(status);
    }

   private:
    WriteBatchCall* const call_;  // valid until FinishOnce
  };

  absl::Status OnRequest() override {
    absl::Status accepted = Accept();
    if (accepted.ok()) accepted = Submit();
    return accepted;
  }

  // Before Finish: the client's next call may use the writer id at once.
  void FinishingLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { claim_.reset(); }

  // Checks the request just read (as a Write stream's first message) and
  // binds its writer id for the call.
  absl::Status Accept() {
    run_id_ = request_.run_id();
    writer_id_ = request_.writer_id();
    if (run_id_.empty()) return absl::InvalidArgumentError("run_id: required");
    if (!request_.shm_ring().empty()) {
      return absl::InvalidArgumentError(
          "shm_ring: shared memory is for Write streams; WriteBatch takes tensors as bytes");
    }
    if (writer_id_.empty() && request_.sequence() != 0) {
      return absl::InvalidArgumentError("writer_id: required for a sequenced batch");
    }
    auto guarded = shared_.registry->FindFor(run_id_, caller_, "write to");
    if (!guarded.ok()) return guarded.status();
    // A writer id is held for the call, as a stream holds it (writer_binding.h).
    if (!writer_id_.empty()) {
      auto claim = WriterClaim::Acquire(guarded->writers, run_id_, writer_id_, caller_);
      if (!claim.ok()) return claim.status();
      MutexLock lock(&mu_);
      claim_ = *std::move(claim);
    }
    shared_.registry->Touch(guarded->run, writer_id_);  // renews the writer's lease
    run_ = std::move(guarded->run);
    return absl::OkStatus();
  }

  // The charge is held and the request accepted: hands the batch to its run.
  absl::Status Submit() {
    Metrics* metrics = shared_.run_context.metrics;
    metrics->bytes_received.fetch_add(request_.ByteSizeLong(), std::memory_order_relaxed);
    for (const auto& record : request_.records()) metrics->AddReceived(record);
    // A unary call has no stream: its tag definitions hold for this request
    // only (tblog.proto, WriteRequest.stream_tags), as part of its charge.
    convert::StreamTagsRef stream_tags;
    if (request_.stream_tags_size() != 0) {
      auto tags = std::make_shared<convert::StreamTags>(shared_.run_context.options->limits);
      size_t added = 0;
      TBLOG_RETURN_IF_ERROR(tags->Define(request_, 1, &added));
      stream_tags = {std::move(tags), 1};
    }
    // Moved, not copied: the message is held once.
    return run_->Submit(std::move(request_), std::make_shared<AckSink>(this), charge_,
                        std::move(stream_tags));
  }

  const WriteBatchShared shared_;
  const std::string caller_;  // run_owner.h
  // Set by OnRequest (the read side), before the run can ack.
  std::string run_id_;     // for the log (the request is moved to the run)
  std::string writer_id_;
  std::shared_ptr<Run> run_;
  std::optional<WriterClaim> claim_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

BudgetedWriteBatch::BudgetedWriteBatch(grpc::CallbackServerContext* context,
                                       grpc::ByteBuffer* response, ByteBudget* budget,
                                       WriteBatchReadSizes* read_sizes, ChargeFn charge)
    : context_(context),
      response_(response),
      budget_(budget),
      peer_(context->peer()),
      read_sizes_(read_sizes),
      charge_fn_(charge) {}

grpc::ServerReadReactor<grpc::ByteBuffer>* BudgetedWriteBatch::StartOrRefuse(
    grpc::Status refusal) {
  if (refusal.ok()) {
    Start();
  } else {
    Finish(std::move(refusal));
  }
  return this;
}

void BudgetedWriteBatch::Start() {
  const size_t bytes = read_sizes_->Claim(peer_, &learnt_);
  ByteBudget::Grant grant;
  {
    // ReserveOrWait runs no callback itself; OnGranted waits for mu_.
    MutexLock lock(&mu_);
    grant = budget_->ReserveOrWait(bytes, kParkedCallBytes, budget_->capacity() / 4,
                                   absl::Now() + kMaxUnaryWait,
                                   [this](bool granted) { OnGranted(granted); });
    if (grant.granted) {
      reservation_ = grant.ticket;
    } else {
      ticket_ = grant.ticket;
    }
  }
  if (grant.granted) {
    StartRead(&request_buffer_);
  } else if (grant.ticket == 0) {
    Unclaim();
    FinishOnce(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("tblogd's in-flight budget (--max-inflight-bytes ",
                     Mib(budget_->capacity()), ") is spent and ",
                     budget_->waiting_bytes() / kParkedCallBytes,
                     " WriteBatch calls already wait for it (a quarter of it, at ",
                     kParkedCallBytes >> 10, " KiB each); retry later")));
  }
}

void BudgetedWriteBatch::OnReadDone(bool ok) {
  ByteBudget::Ticket reservation = 0;
  {
    MutexLock lock(&mu_);
    reservation = std::exchange(reservation_, 0);
  }
  if (!ok) {
    // Cancelled, or the client half-closed without sending its request.
    budget_->Cancel(reservation);
    Unclaim();
    FinishOnce(context_->IsCancelled()
                   ? CancelledStatus()
                   : ToGrpc(absl::InvalidArgumentError(
                         absl::StrCat(kMethod, ": the call carries no request message"))));
    return;
  }
  const size_t received = request_buffer_.Length();
  const bool parsed = ParseMessage(request_buffer_, request_, 1, kMethod).ok();
  // The message is in memory: its charge takes the place of the reservation
  // made for it.
  const size_t bytes = parsed ? request_.ByteSizeLong() : received;
  charge_ = parsed ? charge_fn_(request_, received) : received;
  budget_->Commit(reservation, charge_);
  // The caller's next call is probably like this one; while gRPC parses
  // it, its received bytes and the parsed message are both held.
  read_sizes_->Learn(peer_, charge_ + bytes, learnt_);
  learnt_ = false;
  const absl::Status accepted = parsed ? OnRequest() : UnparsableRequestError(kMethod);
  if (!accepted.ok()) {
    budget_->Release(charge_);
    FinishOnce(ToGrpc(accepted));
  }
}

void BudgetedWriteBatch::OnCancel() {
  ByteBudget::Ticket ticket = 0;
  {
    MutexLock lock(&mu_);
    cancelled_ = true;
    ticket = ticket_;
  }
  // Still parked: it never will be granted now. Otherwise OnGranted (on
  // its way), OnReadDone or the derived call finishes the call.
  if (ticket != 0 && budget_->Cancel(ticket)) {
    {
      MutexLock lock(&mu_);
      ticket_ = 0;
    }
    Unclaim();
    FinishOnce(CancelledStatus());
  }
}

grpc::Status BudgetedWriteBatch::CancelledStatus() const {
  return context_->deadline() <= std::chrono::system_clock::now()
             ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            "WriteBatch: the deadline passed while the call waited for "
                            "tblogd's in-flight budget")
             : grpc::Status(grpc::StatusCode::CANCELLED, "WriteBatch: cancelled");
}

void BudgetedWriteBatch::OnGranted(bool granted) {
  bool cancelled = false;
  ByteBudget::Ticket ticket = 0;
  {
    MutexLock lock(&mu_);
    ticket = std::exchange(ticket_, 0);
    cancelled = cancelled_;
    if (granted && !cancelled) reservation_ = ticket;
  }
  if (granted && !cancelled) {
    StartRead(&request_buffer_);
    return;
  }
  if (granted) budget_->Cancel(ticket);  // gives the reservation back
  Unclaim();
  FinishOnce(cancelled ? CancelledStatus()
                       : grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                      absl::StrCat("WriteBatch waited ",
                                                   absl::FormatDuration(kMaxUnaryWait),
                                                   " for tblogd's in-flight budget "
                                                   "(--max-inflight-bytes); retry later")));
}

void BudgetedWriteBatch::Unclaim() {
  if (std::exchange(learnt_, false)) read_sizes_->Unclaim(peer_);
}

void BudgetedWriteBatch::FinishOnce(grpc::Status status) {
  {
    MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    FinishingLocked();
  }
  Finish(std::move(status));
}

size_t WriteBatchReadSizes::Claim(const std::string& peer, bool* learnt) {
  MutexLock lock(&mu_);
  auto it = peers_.find(peer);
  *learnt = it != peers_.end() && !it->second.claimed;
  if (!*learnt) return unknown_;
  it->second.claimed = true;
  return it->second.bytes;
}

void WriteBatchReadSizes::Learn(const std::string& peer, size_t next, bool learnt) {
  MutexLock lock(&mu_);
  auto it = peers_.find(peer);
  if (it == peers_.end()) {
    if (peers_.size() >= kMaxPeers) {
      // Peers are connections, most of them long gone: forget the idle ones.
      absl::erase_if(peers_, [](const auto& entry) { return !entry.second.claimed; });
    }
    peers_.emplace(peer, Learnt{next, false});
    return;
  }
  // Another call of the peer may be reading with the learnt size: it stays
  // claimed until that call learns.
  it->second.bytes = next;
  if (learnt) it->second.claimed = false;
}

void WriteBatchReadSizes::Unclaim(const std::string& peer) {
  MutexLock lock(&mu_);
  if (auto it = peers_.find(peer); it != peers_.end()) it->second.claimed = false;
}

grpc::ServerReadReactor<grpc::ByteBuffer>* StartWriteBatch(grpc::CallbackServerContext* context,
                                                           grpc::ByteBuffer* response,
                                                           const WriteBatchShared& shared,
                                                           std::string caller,
                                                           grpc::Status refusal) {
  return (new WriteBatchCall(context, response, shared, std::move(caller)))
      ->StartOrRefuse(std::move(refusal));
}

}  // namespace tblog::daemon
