#include "daemon/write_batch_call.h"

#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/convert/charge.h"
#include "daemon/grpc_status.h"
#include "daemon/metrics.h"

namespace tblog::daemon {
namespace {

std::string Mib(size_t bytes) {
  return absl::StrCat(static_cast<double>(bytes) / (1 << 20), " MiB");
}

// One WriteBatch call; deleted in OnDone. States: waiting for budget room,
// submitted to its run, finished.
class WriteBatchCall final : public grpc::ServerUnaryReactor {
 public:
  WriteBatchCall(grpc::CallbackServerContext* context, const v1::WriteRequest* request,
                 v1::WriteResponse* response, std::shared_ptr<Run> run,
                 const RunContext& run_context, RejectionLog* log,
                 std::optional<WriterClaim> claim)
      : context_(context),
        // See StartWriteBatch: gRPC does not read the request after this.
        request_(const_cast<v1::WriteRequest*>(request)),
        response_(response),
        run_(std::move(run)),
        run_context_(run_context),
        log_(log),
        run_id_(request->run_id()),
        writer_id_(request->writer_id()),
        charge_(convert::BatchCharge(*request)),
        claim_(std::move(claim)) {}

  void Start() {
    ByteBudget* budget = run_context_.budget;
    ByteBudget::Grant grant;
    {
      // ChargeOrWait runs no callback itself; OnGranted waits for mu_.
      MutexLock lock(&mu_);
      grant = budget->ChargeOrWait(charge_, budget->capacity() / 4, absl::Now() + kMaxUnaryWait,
                                   [this](bool granted) { OnGranted(granted); });
      ticket_ = grant.ticket;
    }
    if (grant.granted) {
      Submit();
    } else if (grant.ticket == 0) {
      FinishOnce(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("tblogd's in-flight budget (--max-inflight-bytes ", Mib(budget->capacity()),
                       ") is spent and WriteBatch calls already wait with ",
                       Mib(budget->waiting_bytes()), "; retry later")));
    }
  }

  void OnCancel() override {
    ByteBudget::Ticket ticket = 0;
    {
      MutexLock lock(&mu_);
      cancelled_ = true;
      ticket = std::exchange(ticket_, 0);
    }
    // Still waiting: it never will be granted now. Otherwise OnGranted (on
    // its way) or the run's ack finishes the call.
    if (ticket != 0 && run_context_.budget->Cancel(ticket)) FinishOnce(CancelledStatus());
  }

  void OnDone() override { delete this; }

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
        call_->log_->RecordsRejected(call_->context_->peer(), call_->run_id_, call_->writer_id_,
                                     ack);
        status = grpc::Status(static_cast<grpc::StatusCode>(ack.errors(0).code()),
                              ack.errors(0).message());
        call_->context_->AddTrailingMetadata(kWriteResponseTrailer, ack.SerializeAsString());
      }
      *call_->response_ = std::move(ack);
      call_->FinishOnce(status);
    }

   private:
    WriteBatchCall* const call_;  // valid until FinishOnce
  };

  grpc::Status CancelledStatus() const {
    return context_->deadline() <= std::chrono::system_clock::now()
               ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                              "WriteBatch: the deadline passed while the call waited for "
                              "tblogd's in-flight budget")
               : grpc::Status(grpc::StatusCode::CANCELLED, "WriteBatch: cancelled");
  }

  // From the budget: room was made (granted), or kMaxUnaryWait passed.
  void OnGranted(bool granted) {
    bool cancelled = false;
    {
      MutexLock lock(&mu_);
      ticket_ = 0;
      cancelled = cancelled_;
    }
    if (granted && !cancelled) {
      Submit();
      return;
    }
    if (granted) run_context_.budget->Release(charge_);
    FinishOnce(cancelled ? CancelledStatus()
                         : grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                        absl::StrCat("WriteBatch waited ",
                                                     absl::FormatDuration(kMaxUnaryWait),
                                                     " for tblogd's in-flight budget "
                                                     "(--max-inflight-bytes); retry later")));
  }

  // The charge is held: hands the batch to its run.
  void Submit() {
    Metrics* metrics = run_context_.metrics;
    metrics->bytes_received.fetch_add(request_->ByteSizeLong(), std::memory_order_relaxed);
    for (const auto& record : request_->records()) metrics->AddReceived(record);
    // Moved, not copied: the message is held once.
    absl::Status status =
        run_->Submit(std::move(*request_), std::make_shared<AckSink>(this), charge_);
    if (!status.ok()) {
      run_context_.budget->Release(charge_);
      FinishOnce(ToGrpc(status));
    }
  }

  void FinishOnce(grpc::Status status) {
    {
      MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      // Before Finish: the client's next call may use the writer id at once.
      claim_.reset();
    }
    Finish(std::move(status));
  }

  grpc::CallbackServerContext* const context_;
  v1::WriteRequest* const request_;
  v1::WriteResponse* const response_;
  const std::shared_ptr<Run> run_;
  const RunContext run_context_;
  RejectionLog* const log_;
  const std::string run_id_;     // for the log (the request is moved to the run)
  const std::string writer_id_;
  const size_t charge_;

  Mutex mu_;
  ByteBudget::Ticket ticket_ ABSL_GUARDED_BY(mu_) = 0;  // waiting for the budget
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<WriterClaim> claim_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerUnaryReactor* StartWriteBatch(grpc::CallbackServerContext* context,
                                          const v1::WriteRequest* request,
                                          v1::WriteResponse* response, std::shared_ptr<Run> run,
                                          const RunContext& run_context, RejectionLog* log,
                                          std::optional<WriterClaim> claim) {
  auto* call = new WriteBatchCall(context, request, response, std::move(run), run_context, log,
                                  std::move(claim));
  call->Start();
  return call;
}

}  // namespace tblog::daemon
