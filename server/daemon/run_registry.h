// The runs this daemon process knows: OpenRun (create, resume, the
// timestamped layout), lookup by run id, CloseRun, ListRuns. Every directory
// is built from validated components joined under the log directory, and
// created with mkdir without following symlinks. All of its file I/O goes
// through the daemon's FileSystem.
//
// Leases (tblog.proto, "Leases"): each open run has a RunLeases, its writers'
// holds. OpenRun, Write streams (AttachStream) and WriteBatch (Touch) take or
// renew holds; CloseRun and lease expiry release them; the registry closes a
// run when its last hold goes. Its own thread expires leases, a few times per
// lease (at least every second).
//
// Closed runs: the registry keeps the last kClosedRunsKept closed runs
// (GetRun and ListRuns show them, later writes get FAILED_PRECONDITION) and
// forgets older ones once idle (no Write stream or call holds them any more),
// so a long-lived daemon's memory does not grow with every run it ever
// opened. A forgotten run is a run on disk like any other: OpenRun resumes
// it from its files and checkpoint (sequences, what is written, so resends
// are still duplicates) and its owner's record (run_owner.h).
#ifndef TBLOG_DAEMON_RUN_REGISTRY_H_
#define TBLOG_DAEMON_RUN_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/run.h"
#include "daemon/run_leases.h"
#include "daemon/writer_binding.h"
#include "engine/io/file_system.h"
#include "base/sync.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

// Thread-safe.
class RunRegistry {
 public:
  // How many closed runs the registry keeps at most; more only while
  // something still holds them (ForgetClosedLocked).
  static constexpr int kClosedRunsKept = 100;

  using CloseDone = absl::AnyInvocable<void(absl::StatusOr<v1::RunInfo>) &&>;

  // A Write stream's share in its writer's hold on a run (AttachStream);
  // destroying it tells the registry that the stream ended. Must not outlive
  // the registry.
  class StreamHold {
   public:
    StreamHold(RunRegistry* registry, std::shared_ptr<Run> run, std::string writer_id)
        : registry_(registry), run_(std::move(run)), writer_id_(std::move(writer_id)) {}
    ~StreamHold();
    StreamHold(const StreamHold&) = delete;
    StreamHold& operator=(const StreamHold&) = delete;

   private:
    RunRegistry* const registry_;
    const std::shared_ptr<Run> run_;
    const std::string writer_id_;
  };

  // `logdir` exists. `context`'s parts are borrowed and outlive the registry;
  // its options' file.file_system does the registry's file I/O, its
  // writer_lease is the lease. Starts the lease thread; the destructor stops
  // it and waits for the runs still closing.
  RunRegistry(RunContext context, std::string logdir);
  ~RunRegistry();
  RunRegistry(const RunRegistry&) = delete;
  RunRegistry& operator=(const RunRegistry&) = delete;

  // OpenRun as tblog.proto describes it, for the identity `caller`
  // (run_owner.h). Does file I/O (mkdir, resume repair): call it from a
  // worker, not a gRPC thread. Opening a run that is open in this process
  // returns the same run (several writers, one run); either way
  // request.writer_id holds it. UNAVAILABLE while the run is closing. The
  // first caller to open a run owns it; another identity is refused
  // (PERMISSION_DENIED). A run never nests in another (run_nesting.h):
  // INVALID_ARGUMENT.
  absl::StatusOr<v1::OpenRunResponse> OpenRun(const v1::OpenRunRequest& request,
                                              std::string_view caller = "");

  // The run with this id (open or closed), or null.
  std::shared_ptr<Run> Find(std::string_view run_id) const;
  // Its RunInfo with state and holders; NOT_FOUND.
  absl::StatusOr<v1::RunInfo> Info(std::string_view run_id) const;

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

  // A Write stream of `writer_id` is bound to `run`: the writer holds the run
  // while the returned StreamHold lives. Null when `run` is not open (nothing
  // to hold: its writes fail anyway). Never blocks; no I/O.
  std::unique_ptr<StreamHold> AttachStream(const std::shared_ptr<Run>& run,
                                           const std::string& writer_id);
  // A WriteBatch of `writer_id` ("" = anonymous) to `run`: takes or renews
  // its hold when the run is open. Never blocks; no I/O.
  void Touch(const std::shared_ptr<Run>& run, const std::string& writer_id);

  // CloseRun as tblog.proto describes it. With a writer_id, releases its
  // hold: `done` gets the RunInfo once that writer's batches are flushed and
  // synced, or once the run is closed when it was the last hold. Without,
  // closes the run for every writer. Writes the hparams session end, flushes,
  // syncs and closes the run when it closes. NOT_FOUND; FAILED_PRECONDITION
  // (already closed, without a writer_id). `done` runs on a worker or inline.
  void CloseRun(const std::string& run_id, const std::string& writer_id,
                v1::SessionStatus status, CloseDone done);

  // Releases the holds whose lease ended at or before `now` and closes the
  // runs left without one (session end FAILURE unless a holder called
  // CloseRun). The lease thread calls it; tests call it with a time of
  // their choosing. Returns the number of runs it began to close.
  int ExpireLeases(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // Stops the lease thread, closes every open run without a session end (the
  // daemon stops; the runs may be resumed later) and waits until they, and
  // the runs that were closing already, are closed or `deadline`.
  // DEADLINE_EXCEEDED says how many are still closing.
  absl::Status CloseAllForShutdown(absl::Time deadline);

  // Every run known (open, closing, closed) with its state and holders, or
  // only those `owner` owns (run_owner.h: without tokens every run's owner
  // is "").
  std::vector<v1::RunInfo> List(std::optional<std::string_view> owner = std::nullopt) const;
  // The open runs, or only those `owner` owns.
  std::vector<std::shared_ptr<Run>> OpenRuns(
      std::optional<std::string_view> owner = std::nullopt) const;
  // Runs open now: what --max-runs counts, and the tblogd_active_runs gauge.
  // Closing and closed runs do not count.
  int OpenRunCount() const;

  const std::string& logdir() const { return logdir_; }

 private:
  struct Known {
    std::shared_ptr<Run> run;
    v1::HParams hparams;  // for the session end when it closes
    RunLeases leases;
    v1::RunState state = v1::RUN_STATE_OPEN;
    // The most severe status the holders' CloseRun calls gave, and whether
    // any holder called it (if none did, the trainers vanished: FAILURE).
    v1::SessionStatus end_status = v1::SESSION_STATUS_UNSPECIFIED;
    bool released = false;
    std::string owner;    // the identity that opened it first (run_owner.h)
    std::shared_ptr<WriterBindings> writers = std::make_shared<WriterBindings>();
    uint64_t closed_order = 0;  // when CLOSED: its rank among the closes, from 1
  };
  // What closing one run needs, gathered under mu_ and used after it.
  struct Closing {
    std::shared_ptr<Run> run;
    v1::HParams hparams;
    v1::SessionStatus status;
    bool session_end = true;  // false at shutdown: the run may be resumed
  };

  int OpenRunCountLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The entry of this very Run object (not one reopened since), or null.
  Known* KnownLocked(const Run& run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::RunInfo InfoLocked(const Known& known) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes or renews `writer_id`'s hold on `known`, counting a new hold in the
  // run's lease metrics (each acquired hold is later released or expired).
  void HoldLocked(Known& known, std::string_view run_id, const std::string& writer_id,
                  const std::map<std::string, std::string>* labels)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts `holds` holds of `run_id` released (CloseRun, the run closing).
  void NoteReleased(std::string_view run_id, size_t holds);
  // Marks an open run closing (its last hold is gone) and says how to close it.
  Closing BeginCloseLocked(Known& known) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues the session end and the close on the run; then marks it closed
  // and calls `done` with its final RunInfo (on a worker, or inline).
  void FinishClose(Closing closing, CloseDone done) ABSL_LOCKS_EXCLUDED(mu_);
  void StreamEnded(const std::shared_ptr<Run>& run, const std::string& writer_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets the oldest closed runs that nothing holds (no Run or bindings
  // reference but the registry's) while more than kClosedRunsKept are closed.
  // Returns them, for the caller to drop once mu_ is released.
  std::vector<std::shared_ptr<Run>> ForgetClosedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LeaseLoop() ABSL_LOCKS_EXCLUDED(lease_mu_);
  void StopLeaseThread() ABSL_LOCKS_EXCLUDED(lease_mu_);

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
  // Closes queued and not yet done (FinishClose): the destructor waits for
  // them, since their completions use the registry.
  int closes_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t closes_done_ ABSL_GUARDED_BY(mu_) = 0;  // Known::closed_order's source

  // The lease thread sleeps on lease_mu_ until stop_ or its next tick.
  Mutex lease_mu_;
  bool stop_ ABSL_GUARDED_BY(lease_mu_) = false;
  std::thread lease_thread_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_RUN_REGISTRY_H_
