// The runs this daemon process knows: OpenRun (create, resume, the
// timestamped layout), lookup by run id, CloseRun, ListRuns. Every directory
// is built from validated components joined under the log directory, and
// created with mkdir without following symlinks. All of its file I/O goes
// through the daemon's FileSystem.
#ifndef TBLOG_DAEMON_RUN_REGISTRY_H_
#define TBLOG_DAEMON_RUN_REGISTRY_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/run.h"
#include "daemon/writer_binding.h"
#include "engine/io/file_system.h"
#include "base/sync.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

// Thread-safe.
class RunRegistry {
 public:
  using CloseDone = absl::AnyInvocable<void(absl::StatusOr<v1::RunInfo>) &&>;

  // `logdir` exists. `context`'s parts are borrowed and outlive the registry;
  // its options' file.file_system does the registry's file I/O.
  RunRegistry(RunContext context, std::string logdir);
  RunRegistry(const RunRegistry&) = delete;
  RunRegistry& operator=(const RunRegistry&) = delete;

  // OpenRun as tblog.proto describes it, for the identity `caller`
  // (run_owner.h). Does file I/O (mkdir, resume repair): call it from a
  // worker, not a gRPC thread. Opening a run that is open in this process
  // returns the same run (several writers, one run). The first caller to open
  // a run owns it; another identity is refused (PERMISSION_DENIED). A run
  // never nests in another (run_nesting.h): INVALID_ARGUMENT.
  absl::StatusOr<v1::OpenRunResponse> OpenRun(const v1::OpenRunRequest& request,
                                              std::string_view caller = "");

  // The run with this id (open or closed), or null.
  std::shared_ptr<Run> Find(std::string_view run_id) const;

  // A run with what guards it: its owner and its writers' bindings.
  struct Guarded {
    std::shared_ptr<Run> run;
    std::shared_ptr<WriterBindings> writers;  // shared with the registry
  };
  // The run `run_id` for `caller`: NOT_FOUND when unknown (the message says
  // "call OpenRun"), PERMISSION_DENIED (naming `action`) when another
  // identity owns it (run_owner.h).
  absl::StatusOr<Guarded> FindFor(std::string_view run_id, std::string_view caller,
                                  std::string_view action) const;

  // Writes the hparams session end, flushes, syncs and closes the run; `done`
  // gets its final RunInfo. NOT_FOUND / FAILED_PRECONDITION (already closed).
  void CloseRun(const std::string& run_id, v1::SessionStatus status, CloseDone done);

  // Closes every open run without a session end (the daemon stops; the runs
  // may be resumed later) and waits until they are closed or `deadline`.
  // DEADLINE_EXCEEDED names the runs still closing.
  absl::Status CloseAllForShutdown(absl::Time deadline);

  // The runs known (open or closed), or only those `owner` owns
  // (run_owner.h: without tokens every run's owner is "").
  std::vector<v1::RunInfo> List(std::optional<std::string_view> owner = std::nullopt) const;
  // The open runs, or only those `owner` owns.
  std::vector<std::shared_ptr<Run>> OpenRuns(
      std::optional<std::string_view> owner = std::nullopt) const;
  // Runs open now: what --max-runs counts, and the tblogd_active_runs gauge.
  int OpenRunCount() const;

  const std::string& logdir() const { return logdir_; }

 private:
  int OpenRunCountLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  struct Known {
    std::shared_ptr<Run> run;
    v1::HParams hparams;  // for the session end at CloseRun
    std::string owner;    // the identity that opened it first (run_owner.h)
    std::shared_ptr<WriterBindings> writers = std::make_shared<WriterBindings>();
  };

  // The registry's half of the nesting check (run_nesting.h): a known run
  // above `path` (or at it, when `path_is_parent`), or below it.
  absl::Status CheckKnownNesting(std::string_view path, std::string_view what,
                                 bool path_is_parent) const ABSL_LOCKS_EXCLUDED(mu_);

  // Creates the directory of a new timestamped run; returns its run path.
  absl::StatusOr<std::string> CreateTimestampedDir(const v1::OpenRunRequest& request);

  const RunContext context_;
  FileSystem& fs_;            // context_.options->file.file_system
  const std::string logdir_;  // absolute
  // Serializes OpenRun: the check for an open run, the directory work and
  // the registration are one step. Held across that I/O, never by gRPC threads.
  Mutex open_mu_;
  mutable Mutex mu_ ABSL_ACQUIRED_AFTER(open_mu_);
  std::map<std::string, Known, std::less<>> runs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_RUN_REGISTRY_H_
