// RunRegistry, its runs' ends: a run closing when its last hold goes
// (CloseRun, lease expiry) or at shutdown, and the closed runs it forgets
// (run_registry.h, "Closed runs"). OpenRun and lookups: run_registry.cc.
#include "daemon/run_registry.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {
namespace {

// How bad a session end is: a run's holders may each give one, and the
// worst is written (a failed rank fails the run's session).
int Severity(v1::SessionStatus status) {
  switch (status) {
    case v1::SESSION_STATUS_FAILURE: return 3;
    case v1::SESSION_STATUS_RUNNING: return 2;
    case v1::SESSION_STATUS_SUCCESS: return 1;
    default: return 0;
  }
}

}  // namespace

RunRegistry::Closing RunRegistry::BeginCloseLocked(Known& known) {
  known.state = v1::RUN_STATE_CLOSING;
  NoteReleased(known.run->run_id(), known.leases.ReleaseAll());
  ++closes_in_flight_;
  // No holder said goodbye: every trainer vanished, which is a failure.
  const v1::SessionStatus status = known.released ? known.end_status : v1::SESSION_STATUS_FAILURE;
  return Closing{known.run, known.hparams, status};
}

void RunRegistry::FinishClose(Closing closing, CloseDone done) {
  Converted final_events;
  if (closing.session_end) {
    final_events = context_.converter->CloseRunEvents(
        closing.status, closing.hparams, absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  }
  std::shared_ptr<Run> run = std::move(closing.run);
  run->Close(std::move(final_events),
             [this, run, done = std::move(done)](absl::Status close_status) mutable {
               spdlog::info("run={} closed status={}", run->run_id(),
                            close_status.ok() ? "OK" : std::string(close_status.message()));
               absl::StatusOr<v1::RunInfo> result = absl::UnknownError("");
               {
                 MutexLock lock(&mu_);
                 Known* known = KnownLocked(*run);
                 if (known != nullptr) {
                   known->state = v1::RUN_STATE_CLOSED;
                   known->closed_order = ++closes_done_;
                 }
                 if (!close_status.ok()) {
                   result = close_status;
                 } else {
                   result = known != nullptr ? InfoLocked(*known) : run->Info();
                 }
               }
               std::move(done)(std::move(result));
               std::vector<std::shared_ptr<Run>> forgotten;  // dropped after the lock
               MutexLock lock(&mu_);
               --closes_in_flight_;
               forgotten = ForgetClosedLocked();
             });
}

void RunRegistry::CloseRun(const std::string& run_id, const std::string& writer_id,
                           v1::SessionStatus status, CloseDone done) {
  std::optional<Closing> closing;
  std::shared_ptr<Run> still_held;
  std::shared_ptr<Run> closing_already;
  absl::StatusOr<v1::RunInfo> answer = absl::UnknownError("not answered");
  {
    MutexLock lock(&mu_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) {
      answer = absl::NotFoundError(absl::StrCat("run \"", run_id, "\" is not known"));
    } else if (Known& known = it->second; known.state != v1::RUN_STATE_OPEN) {
      // A writer's release is idempotent (a retried call, an expired
      // hold); closing a closed run for everyone is a mistake worth naming.
      if (writer_id.empty()) {
        answer = absl::FailedPreconditionError(absl::StrCat(
            "run \"", run_id, "\" is already ",
            known.state == v1::RUN_STATE_CLOSING ? "closing" : "closed"));
      } else if (known.state == v1::RUN_STATE_CLOSING) {
        closing_already = known.run;  // answered once the close has synced
      } else {
        answer = InfoLocked(known);
      }
    } else {
      if (Severity(status) >= Severity(known.end_status)) known.end_status = status;
      known.released = true;
      if (writer_id.empty()) {
        const size_t holds = known.leases.ReleaseAll();
        NoteReleased(run_id, holds);
        spdlog::info("run={} CloseRun for every writer ({} holds)", run_id, holds);
      } else if (known.leases.Release(writer_id)) {
        context_.metrics->RunLeaseReleased(run_id);
        spdlog::debug("run={} writer={} released its hold", run_id, writer_id);
      }
      if (known.leases.empty()) {
        closing = BeginCloseLocked(known);
      } else {
        still_held = known.run;
      }
    }
  }
  // What this writer sent is durable once `run` has closed: its close syncs.
  auto answer_when_closed = [this, run_id](const std::shared_ptr<Run>& run, CloseDone reply) {
    run->WhenClosed([this, run_id, reply = std::move(reply)](absl::Status closed) mutable {
      if (closed.ok()) {
        std::move(reply)(Info(run_id));
      } else {
        std::move(reply)(closed);
      }
    });
  };
  if (closing) {
    FinishClose(*std::move(closing), std::move(done));
  } else if (closing_already) {
    answer_when_closed(closing_already, std::move(done));
  } else if (still_held) {
    // The others keep writing; this writer learns that what it sent is
    // durable. When the last of them closes the run first (FAILED_PRECONDITION
    // from the flush), its close is what syncs this writer's data.
    still_held->Flush(writer_id, 0, /*sync=*/true,
                      [this, run_id, run = still_held, answer_when_closed,
                       done = std::move(done)](absl::Status flushed) mutable {
                        if (flushed.ok()) {
                          std::move(done)(Info(run_id));
                        } else if (absl::IsFailedPrecondition(flushed)) {
                          answer_when_closed(run, std::move(done));
                        } else {
                          std::move(done)(flushed);
                        }
                      });
  } else {
    std::move(done)(std::move(answer));
  }
}

std::vector<std::shared_ptr<Run>> RunRegistry::ForgetClosedLocked() {
  std::vector<std::pair<uint64_t, std::string_view>> idle;  // (closed_order, run id)
  int closed = 0;
  for (const auto& [run_id, known] : runs_) {
    if (known.state != v1::RUN_STATE_CLOSED) continue;
    ++closed;
    // Only the registry refers to it: no stream, call or close completion
    // can reach it through another pointer, so forgetting it is final.
    if (known.run.use_count() == 1 && known.writers.use_count() == 1) {
      idle.emplace_back(known.closed_order, run_id);
    }
  }
  std::vector<std::shared_ptr<Run>> forgotten;
  if (closed <= kClosedRunsKept) return forgotten;
  std::sort(idle.begin(), idle.end());
  const size_t forget = std::min(idle.size(), static_cast<size_t>(closed - kClosedRunsKept));
  std::vector<std::string> run_ids;  // idle's views die with their entries
  for (size_t i = 0; i < forget; ++i) run_ids.emplace_back(idle[i].second);
  for (const std::string& run_id : run_ids) {
    auto it = runs_.find(run_id);
    forgotten.push_back(std::move(it->second.run));
    runs_.erase(it);
    spdlog::debug("run={} forgotten (closed; the last {} closed runs are kept)", run_id,
                  kClosedRunsKept);
  }
  return forgotten;
}

int RunRegistry::ExpireLeases(absl::Time now) {
  std::vector<Closing> closing;
  std::vector<std::shared_ptr<Run>> forgotten;  // dropped after the lock
  {
    MutexLock lock(&mu_);
    // Closed runs a stream held at their close are forgotten once let go.
    forgotten = ForgetClosedLocked();
    for (auto& [run_id, known] : runs_) {
      if (known.state != v1::RUN_STATE_OPEN) continue;
      const std::vector<std::string> expired = known.leases.Expire(now);
      for (const std::string& writer_id : expired) {
        context_.metrics->RunLeaseExpired(run_id);
        spdlog::info("run={} writer={} lease expired ({} without a stream): hold released",
                     run_id, writer_id, absl::FormatDuration(context_.options->writer_lease));
      }
      if (!expired.empty() && known.leases.empty()) closing.push_back(BeginCloseLocked(known));
    }
  }
  for (Closing& one : closing) {
    FinishClose(std::move(one), [](absl::StatusOr<v1::RunInfo> closed) {
      if (!closed.ok()) {
        spdlog::error("run closing after its leases expired: {}",
                      std::string(closed.status().message()));
      }
    });
  }
  return static_cast<int>(closing.size());
}

absl::Status RunRegistry::CloseAllForShutdown(absl::Time deadline) {
  // Leases stop counting: a run must not get a session end because its
  // writers' streams ended with the daemon's.
  StopLeaseThread();
  std::vector<Closing> closing;
  {
    MutexLock lock(&mu_);
    for (auto& [run_id, known] : runs_) {
      if (known.state != v1::RUN_STATE_OPEN) continue;
      closing.push_back(BeginCloseLocked(known));
      closing.back().session_end = false;
    }
  }
  struct Errors {
    Mutex mu;
    std::vector<std::string> list ABSL_GUARDED_BY(mu);
  };
  auto errors = std::make_shared<Errors>();
  for (Closing& one : closing) {
    const std::string run_id = one.run->run_id();
    FinishClose(std::move(one), [errors, run_id](absl::StatusOr<v1::RunInfo> closed) {
      if (!closed.ok() && closed.status().code() != absl::StatusCode::kFailedPrecondition) {
        MutexLock lock(&errors->mu);
        errors->list.push_back(absl::StrCat(run_id, ": ", closed.status().message()));
      }
    });
  }
  {
    // Also waits for the runs that were closing already (CloseRun, leases).
    MutexLock lock(&mu_);
    auto all_closed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closes_in_flight_ == 0;
    };
    if (!mu_.AwaitWithDeadline(Condition(&all_closed), deadline)) {
      return absl::DeadlineExceededError(
          absl::StrCat(closes_in_flight_, " runs still closing at the shutdown deadline"));
    }
  }
  MutexLock lock(&errors->mu);
  if (!errors->list.empty()) {
    return absl::InternalError(absl::StrCat("closing runs: ", absl::StrJoin(errors->list, "; ")));
  }
  return absl::OkStatus();
}

}  // namespace tblog::daemon
