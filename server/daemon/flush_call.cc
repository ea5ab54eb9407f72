#include "daemon/flush_call.h"

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "base/sync.h"
#include "daemon/grpc_status.h"

namespace tblog::daemon {
namespace {

// A Flush call: waits for one or more runs' flush entries, or the call's
// cancellation / deadline, whichever comes first.
class FlushCall final : public grpc::ServerUnaryReactor {
 public:
  // `caller`: only its runs are flushed (run_owner.h).
  FlushCall(grpc::CallbackServerContext* context, const v1::FlushRequest& request,
            RunRegistry* registry, Metrics* metrics, std::string_view caller)
      : context_(context), state_(std::make_shared<State>()) {
    state_->call = this;
    std::vector<std::shared_ptr<Run>> runs;
    if (request.run_id().empty()) {
      runs = registry->OpenRuns(caller);
    } else if (auto guarded = registry->FindFor(request.run_id(), caller, "flush");
               guarded.ok()) {
      runs.push_back(std::move(guarded->run));
    } else {
      FinishOnce(state_, ToGrpc(guarded.status()));
      return;
    }
    {
      MutexLock lock(&state_->mu);
      state_->pending = static_cast<int>(runs.size());
    }
    if (runs.empty()) {
      FinishOnce(state_, grpc::Status::OK);
      return;
    }
    const std::string writer_id = request.run_id().empty() ? "" : request.writer_id();
    const absl::Time start = absl::Now();
    for (const auto& run : runs) {
      const uint64_t ticket = run->Flush(
          writer_id, request.through_sequence(), request.sync(),
          [state = state_, metrics, start](absl::Status status) {
            bool last = false;
            {
              MutexLock lock(&state->mu);
              if (!status.ok() && state->first_error.ok()) state->first_error = status;
              last = --state->pending == 0;
            }
            if (last) {
              metrics->AddFlushCall(absl::Now() - start);
              absl::Status first;
              {
                MutexLock lock(&state->mu);
                first = state->first_error;
              }
              FinishOnce(state, ToGrpc(first));
            }
          });
      if (ticket != 0) {
        MutexLock lock(&state_->mu);
        state_->parked.emplace_back(run, ticket);
      }
    }
  }

  void OnCancel() override {
    std::vector<std::pair<std::shared_ptr<Run>, uint64_t>> parked;
    {
      MutexLock lock(&state_->mu);
      parked.swap(state_->parked);
    }
    for (auto& [run, ticket] : parked) run->CancelFlush(ticket);
    const bool deadline_passed = context_->deadline() <= std::chrono::system_clock::now();
    FinishOnce(state_, deadline_passed
                           ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                          "flush: deadline passed before the batches arrived")
                           : grpc::Status(grpc::StatusCode::CANCELLED, "flush: cancelled"));
  }

  void OnDone() override { delete this; }

 private:
  struct State {
    Mutex mu;
    FlushCall* call = nullptr;  // valid until finished; OnDone follows Finish
    bool finished ABSL_GUARDED_BY(mu) = false;
    int pending ABSL_GUARDED_BY(mu) = 0;
    absl::Status first_error ABSL_GUARDED_BY(mu);
    std::vector<std::pair<std::shared_ptr<Run>, uint64_t>> parked ABSL_GUARDED_BY(mu);
  };

  static void FinishOnce(const std::shared_ptr<State>& state, grpc::Status status) {
    {
      MutexLock lock(&state->mu);
      if (state->finished) return;
      state->finished = true;
    }
    state->call->Finish(status);
  }

  grpc::CallbackServerContext* const context_;  // valid until OnDone
  const std::shared_ptr<State> state_;
};


}  // namespace

grpc::ServerUnaryReactor* StartFlush(grpc::CallbackServerContext* context,
                                     const v1::FlushRequest& request, RunRegistry* registry,
                                     Metrics* metrics, std::string_view caller) {
  return new FlushCall(context, request, registry, metrics, caller);
}

}  // namespace tblog::daemon
