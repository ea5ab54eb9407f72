#include "daemon/upstream_service.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/forward_stream.h"
#include "daemon/forward_write_batch.h"
#include "grpcpp/client_context.h"

namespace tblog::daemon {

grpc::Status RelayedStatus(const grpc::Status& upstream, const std::string& address) {
  switch (upstream.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return grpc::Status(upstream.error_code(),
                          absl::StrCat("upstream tblogd ", address, ": ", upstream.error_message()));
    default:
      return upstream;
  }
}

UpstreamService::UpstreamService(UpstreamChannel* channel, ByteBudget* budget, int max_streams,
                                 size_t max_message_bytes)
    : channel_(channel), budget_(budget), max_streams_(max_streams),
      max_message_bytes_(max_message_bytes), write_batch_sizes_(max_message_bytes),
      metrics_(channel) {}

UpstreamService::~UpstreamService() = default;

void UpstreamService::BeginShutdown() {
  shutting_down_.store(true, std::memory_order_release);
  // Held while stopping: a stream's OnDone (which unregisters) runs on
  // gRPC's threads after Finish, never inline (as in TBLogService).
  MutexLock lock(&mu_);
  for (ForwardedStream* stream : streams_) stream->StopForShutdown();
}

bool UpstreamService::WaitForStreams(absl::Time deadline) {
  MutexLock lock(&mu_);
  auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return streams_.empty(); };
  return mu_.AwaitWithDeadline(Condition(&none), deadline);
}

int UpstreamService::ActiveStreams() const {
  MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

bool UpstreamService::RegisterStream(ForwardedStream* stream, grpc::Status* refusal) {
  MutexLock lock(&mu_);
  if (shutting_down_.load(std::memory_order_acquire)) {
    *refusal = grpc::Status(grpc::StatusCode::UNAVAILABLE, "tblogd is shutting down");
    return false;
  }
  if (static_cast<int>(streams_.size()) >= max_streams_) {
    *refusal = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            absl::StrCat("tblogd forwards ", streams_.size(),
                                         " Write streams, the limit (--max-streams); retry later"));
    return false;
  }
  streams_.insert(stream);
  return true;
}

void UpstreamService::UnregisterStream(ForwardedStream* stream) {
  MutexLock lock(&mu_);
  streams_.erase(stream);
}

template <typename Call>
grpc::ServerUnaryReactor* UpstreamService::Forward(grpc::CallbackServerContext* context, Call call) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (shutting_down_.load(std::memory_order_acquire)) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "tblogd is shutting down"));
    return reactor;
  }
  // Shared so that the completion callback (a copyable std::function) owns
  // it: the client context lives until the upstream call is done.
  std::shared_ptr<grpc::ClientContext> upstream = channel_->UnaryContext(*context);
  grpc::ClientContext* raw = upstream.get();
  call(channel_->stub()->async(), raw,
       [this, reactor, upstream = std::move(upstream)](const grpc::Status& status) {
         reactor->Finish(RelayedStatus(status, channel_->address()));
       });
  return reactor;
}

grpc::ServerUnaryReactor* UpstreamService::OpenRun(grpc::CallbackServerContext* context,
                                                   const v1::OpenRunRequest* request,
                                                   v1::OpenRunResponse* response) {
  return Forward(context, [=](auto* async, grpc::ClientContext* upstream, auto done) {
    async->OpenRun(upstream, request, response, std::move(done));
  });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* UpstreamService::Write(
    grpc::CallbackServerContext* /*context*/) {
  return new ForwardedStream(this);  // deletes itself in OnDone
}

grpc::ServerReadReactor<grpc::ByteBuffer>* UpstreamService::WriteBatch(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  return StartForwardedWriteBatch(
      context, response, channel_, &metrics_, budget_, &write_batch_sizes_,
      shutting_down_.load(std::memory_order_acquire)
          ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "tblogd is shutting down")
          : grpc::Status::OK);
}

grpc::ServerUnaryReactor* UpstreamService::Flush(grpc::CallbackServerContext* context,
                                                 const v1::FlushRequest* request,
                                                 v1::FlushResponse* response) {
  return Forward(context, [=](auto* async, grpc::ClientContext* upstream, auto done) {
    async->Flush(upstream, request, response, std::move(done));
  });
}

grpc::ServerUnaryReactor* UpstreamService::CloseRun(grpc::CallbackServerContext* context,
                                                    const v1::CloseRunRequest* request,
                                                    v1::CloseRunResponse* response) {
  return Forward(context, [=](auto* async, grpc::ClientContext* upstream, auto done) {
    async->CloseRun(upstream, request, response, std::move(done));
  });
}

grpc::ServerUnaryReactor* UpstreamService::ListRuns(grpc::CallbackServerContext* context,
                                                    const v1::ListRunsRequest* request,
                                                    v1::ListRunsResponse* response) {
  return Forward(context, [=](auto* async, grpc::ClientContext* upstream, auto done) {
    async->ListRuns(upstream, request, response, std::move(done));
  });
}

grpc::ServerUnaryReactor* UpstreamService::GetRun(grpc::CallbackServerContext* context,
                                                  const v1::GetRunRequest* request,
                                                  v1::RunInfo* response) {
  return Forward(context, [=](auto* async, grpc::ClientContext* upstream, auto done) {
    async->GetRun(upstream, request, response, std::move(done));
  });
}

}  // namespace tblog::daemon
