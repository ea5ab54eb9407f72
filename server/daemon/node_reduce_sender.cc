#include "daemon/node_reduce_sender.h"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/upstream_channel.h"
#include "grpcpp/client_context.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {
namespace {

// Points per upstream batch: bounds the message (an exponential histogram's
// partial is at most about 12 KiB).
constexpr size_t kMaxPointsPerBatch = 1024;
// How often the thread looks for due points when nothing wakes it.
constexpr absl::Duration kTick = absl::Milliseconds(10);
constexpr absl::Duration kMinBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);

std::unique_ptr<grpc::ClientContext> CallContext(absl::Time deadline) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(deadline));
  return context;
}

}  // namespace

std::string NodeWriterId(const std::string& daemon_id, absl::Time start) {
  std::string id = daemon_id;
  if (id.empty()) {  // the default --daemon-id, as the event files name it
    char name[HOST_NAME_MAX + 1] = {};
    id = ::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0' ? "localhost" : name;
  }
  return absl::StrCat("tblogd:", id, ":", absl::ToUnixMillis(start));
}

NodeReduceSender::NodeReduceSender(NodeReduce* reduce, UpstreamChannel* channel,
                                   std::string writer_id, absl::Duration call_timeout)
    : reduce_(reduce), channel_(channel), writer_id_(std::move(writer_id)),
      call_timeout_(call_timeout), thread_([this] { Loop(); }) {}

NodeReduceSender::~NodeReduceSender() { Stop(absl::Now()); }

void NodeReduceSender::Stop(absl::Time deadline) {
  {
    MutexLock lock(&mu_);
    if (!stop_) {
      stop_ = true;
      stop_deadline_ = deadline;
    }
  }
  if (thread_.joinable()) thread_.join();
}

void NodeReduceSender::Loop() {
  while (true) {
    bool stopping = false;
    absl::Time deadline;
    {
      MutexLock lock(&mu_);
      const absl::Time wake = std::min(reduce_->NextDue(), absl::Now() + kTick);
      mu_.AwaitWithDeadline(Condition(&stop_), wake);
      stopping = stop_;
      deadline = stop_deadline_;
    }
    const absl::Time now = absl::Now();
    if (stopping && now >= deadline) {
      for (const auto& [run_id, up] : upstreams_) {
        if (up.request) {
          spdlog::warn("upstream {}: stopping with reduced points of run {} not acknowledged; "
                       "their writers resend them to the next tblogd", channel_->address(), run_id);
        }
      }
      return;
    }
    // Stopping: every pending point goes now, until the deadline.
    for (const std::string& run_id : reduce_->RunsWithDue(now, stopping)) upstreams_[run_id];
    bool busy = false;
    for (auto& [run_id, up] : upstreams_) {
      if (!up.request) {
        up.partials = reduce_->TakeDue(run_id, now, stopping, kMaxPointsPerBatch);
        if (up.partials.empty()) continue;
        up.request.emplace();
        up.request->set_writer_id(writer_id_);
        for (const NodePartial& partial : up.partials) *up.request->add_records() = partial.record;
      }
      busy = true;
      if (absl::Now() >= up.retry_at) Attempt(run_id, up);
    }
    if (stopping && !busy) return;
  }
}

bool NodeReduceSender::Open(const std::string& run_id, Upstream& up) {
  const NodeReduce::RunSettings settings = reduce_->Settings(run_id);
  v1::OpenRunRequest request;
  request.set_run_path(run_id);  // the local run's path below the logdir
  request.set_writer_id(writer_id_);
  request.set_reduce_group_size(settings.group_size);
  request.set_reduce_timeout_seconds(settings.timeout_seconds);
  v1::OpenRunResponse response;
  auto context = CallContext(CallDeadline());
  // Held through the call: a token rotation swaps the channel's stub.
  const auto stub = channel_->stub();
  const grpc::Status status = stub->OpenRun(context.get(), request, &response);
  if (!status.ok()) {
    Failed(up, absl::StrCat("OpenRun ", run_id), status.error_message());
    return false;
  }
  up.run_id = response.run_id();
  up.open = true;
  auto it = response.writer_sequences().find(writer_id_);
  const uint64_t has = it == response.writer_sequences().end() ? 0 : it->second;
  up.next_sequence = has + 1;
  if (up.request && up.request->sequence() != 0) {
    if (up.request->sequence() <= has) {
      Acked(run_id, up);  // the upstream wrote it before its answer was lost
    } else {
      up.request->set_sequence(up.next_sequence++);
    }
  }
  return true;
}

void NodeReduceSender::Attempt(const std::string& run_id, Upstream& up) {
  if (!up.open && !Open(run_id, up)) return;
  if (!up.request) return;  // acknowledged by the OpenRun's answer
  if (up.request->sequence() == 0) up.request->set_sequence(up.next_sequence++);
  up.request->set_run_id(up.run_id);
  v1::WriteResponse response;
  auto context = CallContext(CallDeadline());
  const auto stub = channel_->stub();  // held through the call, as above
  const grpc::Status status = stub->WriteBatch(context.get(), *up.request, &response);
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      for (const v1::RecordError& error : response.errors()) {
        // Not resendable: the upstream refused the point for good.
        spdlog::error("upstream {}: run {}: reduced point refused: {}", channel_->address(),
                      up.run_id, error.message());
      }
      Acked(run_id, up);
      return;
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      // The upstream lost or closed the run, or our sequences: reopen, which
      // says where they stand, and go on at once.
      up.open = false;
      if (Open(run_id, up) && up.request) up.retry_at = absl::InfinitePast();
      return;
    default:
      Failed(up, absl::StrCat("WriteBatch ", up.run_id, " #", up.request->sequence()),
             status.error_message());
      return;
  }
}

absl::Time NodeReduceSender::CallDeadline() {
  MutexLock lock(&mu_);
  return std::min(absl::Now() + call_timeout_, stop_deadline_);
}

void NodeReduceSender::Failed(Upstream& up, const std::string& what, const std::string& error) {
  const bool first = up.backoff == absl::ZeroDuration();
  up.backoff = first ? kMinBackoff : std::min(2 * up.backoff, kMaxBackoff);
  up.retry_at = absl::Now() + up.backoff;
  if (first) {
    spdlog::warn("upstream {}: {}: {}; retrying (the node's clients wait for their acks)",
                 channel_->address(), what, error);
  }
}

void NodeReduceSender::Acked(const std::string& run_id, Upstream& up) {
  if (up.backoff != absl::ZeroDuration()) {
    spdlog::info("upstream {}: run {} acknowledges reduced points again", channel_->address(),
                 run_id);
  }
  up.backoff = absl::ZeroDuration();
  up.retry_at = absl::InfinitePast();
  up.request.reset();
  std::vector<NodePartial> partials = std::move(up.partials);
  up.partials.clear();
  reduce_->Acknowledged(run_id, partials);
}

}  // namespace tblog::daemon
