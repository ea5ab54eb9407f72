#include "daemon/forward_write_batch.h"

#include <memory>
#include <string>
#include <utility>

#include "base/sync.h"
#include "daemon/malformed_requests.h"
#include "daemon/metrics_upstream.h"
#include "daemon/upstream_service.h"  // RelayedStatus
#include "grpcpp/client_context.h"

namespace tblog::daemon {
namespace {

// The parsed message, and the copy gRPC serializes to send it upstream.
size_t ForwardCharge(const v1::WriteRequest& /*request*/, size_t received) { return 2 * received; }

class ForwardedWriteBatch final : public BudgetedWriteBatch {
 public:
  ForwardedWriteBatch(grpc::CallbackServerContext* context, grpc::ByteBuffer* response,
                      UpstreamChannel* channel, UpstreamMetrics* metrics, ByteBudget* budget,
                      WriteBatchReadSizes* read_sizes)
      : BudgetedWriteBatch(context, response, budget, read_sizes, &ForwardCharge),
        channel_(channel),
        metrics_(metrics) {}

 private:
  absl::Status OnRequest() override {
    upstream_context_ = channel_->UnaryContext(*context_);
    bytes_ = request_.ByteSizeLong();
    metrics_->Forwarded(static_cast<uint64_t>(request_.records_size()), bytes_);
    handed_over_.Release();
    channel_->stub()->async()->WriteBatch(
        upstream_context_.get(), &request_, &upstream_response_,
        [this](const grpc::Status& status) { OnUpstreamDone(status); });
    return absl::OkStatus();
  }

  void OnUpstreamDone(const grpc::Status& status) {
    handed_over_.Acquire();
    bool written = status.ok();
    if (status.ok()) {
      *response_ = SerializeMessage(upstream_response_);
      metrics_->Acknowledged(1, bytes_, upstream_response_.duplicate_sequences_size());
    } else {
      // A refused WriteBatch carries its full WriteResponse in a trailer
      // (tblog.proto, WriteBatch); pass it on.
      for (const auto& [key, value] : upstream_context_->GetServerTrailingMetadata()) {
        if (key == kWriteResponseTrailer) {
          context_->AddTrailingMetadata(kWriteResponseTrailer,
                                        std::string(value.data(), value.size()));
          written = true;  // refused records, the others written
        }
      }
      if (written) {
        metrics_->Acknowledged(1, bytes_, 0);
      } else {
        metrics_->Abandoned(bytes_);
      }
    }
    // Sent and answered: gRPC holds neither copy any more.
    request_.Clear();
    budget_->Release(charge_);
    FinishOnce(RelayedStatus(status, channel_->address()));
  }

  UpstreamChannel* const channel_;
  UpstreamMetrics* const metrics_;
  // Set by OnRequest, then touched only by the upstream call's completion.
  std::unique_ptr<grpc::ClientContext> upstream_context_;
  v1::WriteResponse upstream_response_;
  size_t bytes_ = 0;  // the request's serialized size
  // The request, the context and the reactor's state, written before the
  // upstream call, to its completion on another thread (base/sync.h).
  HandOff handed_over_;
};

}  // namespace

grpc::ServerReadReactor<grpc::ByteBuffer>* StartForwardedWriteBatch(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response, UpstreamChannel* channel,
    UpstreamMetrics* metrics, ByteBudget* budget, WriteBatchReadSizes* read_sizes,
    grpc::Status refusal) {
  return (new ForwardedWriteBatch(context, response, channel, metrics, budget, read_sizes))
      ->StartOrRefuse(std::move(refusal));
}

}  // namespace tblog::daemon
