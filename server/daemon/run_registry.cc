#include "daemon/run_registry.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/checkpoint.h"
#include "daemon/names.h"
#include "daemon/resume_scan.h"
#include "daemon/run_nesting.h"
#include "daemon/run_owner.h"
#include "engine/io/event_file_writer.h"
#include "base/status_util.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {
namespace {

double NowSeconds() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

// Often enough that a hold outlives its lease by a small fraction of it, and
// at least once a second.
absl::Duration LeaseTick(absl::Duration lease) {
  return std::clamp(lease / 4, absl::Milliseconds(5), absl::Seconds(1));
}

// A machine crash must not lose a run directory whose files were fsynced.
bool SyncNewDirectories(const DaemonOptions& options) {
  return options.file.sync != SyncPolicy::kNever;
}

}  // namespace

RunRegistry::RunRegistry(RunContext context, std::string logdir)
    : context_(context), fs_(*context.options->file.file_system), logdir_(std::move(logdir)) {
  lease_thread_ = std::thread([this] { LeaseLoop(); });
}

RunRegistry::~RunRegistry() {
  StopLeaseThread();
  MutexLock lock(&mu_);
  auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closes_in_flight_ == 0; };
  mu_.Await(Condition(&none));
}

RunRegistry::StreamHold::~StreamHold() { registry_->StreamEnded(run_, writer_id_); }

void RunRegistry::LeaseLoop() {
  const absl::Duration tick = LeaseTick(context_.options->writer_lease);
  MutexLock lock(&lease_mu_);
  auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lease_mu_) { return stop_; };
  while (!lease_mu_.AwaitWithTimeout(Condition(&stop), tick)) {
    lease_mu_.Unlock();
    ExpireLeases(absl::Now());
    lease_mu_.Lock();
  }
}

void RunRegistry::StopLeaseThread() {
  {
    MutexLock lock(&lease_mu_);
    stop_ = true;
  }
  if (lease_thread_.joinable()) lease_thread_.join();
}

absl::StatusOr<std::string> RunRegistry::CreateTimestampedDir(const v1::OpenRunRequest& request) {
  if (!request.experiment().empty()) {
    TBLOG_RETURN_IF_ERROR(MakeDirectoriesUnder(fs_, logdir_, request.experiment(),
                                               SyncNewDirectories(*context_.options)));
  }
  const std::string base = TimestampedRunName(absl::Now(), request.name());
  const std::string prefix = request.experiment().empty() ? "" : request.experiment() + "/";
  for (int attempt = 1; attempt <= 1000; ++attempt) {
    const std::string run_path =
        attempt == 1 ? prefix + base : absl::StrCat(prefix, base, "-", attempt);
    const std::string dir = absl::StrCat(logdir_, "/", run_path);
    // mkdir is the atomic test: two runs opened in the same second get
    // different directories.
    const absl::Status made = fs_.CreateDir(dir);
    if (made.ok()) {
      if (SyncNewDirectories(*context_.options)) {
        TBLOG_RETURN_IF_ERROR(fs_.SyncDir(dir.substr(0, dir.rfind('/'))));
      }
      return run_path;
    }
    if (!absl::IsAlreadyExists(made)) return made;
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("1000 runs named ", prefix, base, "[-N] already exist"));
}

absl::StatusOr<v1::OpenRunResponse> RunRegistry::OpenRun(const v1::OpenRunRequest& request,
                                                         std::string_view caller) {
  const Limits& limits = context_.options->limits;
  if (!request.experiment().empty()) {
    TBLOG_RETURN_IF_ERROR(ValidateRelativePath(request.experiment(), "experiment", limits));
    TBLOG_RETURN_IF_ERROR(CheckNotReserved(request.experiment(), "experiment"));
  }
  if (!request.name().empty()) {
    TBLOG_RETURN_IF_ERROR(ValidatePathComponent(request.name(), "run name", limits));
  }
  if (!request.run_path().empty()) {
    TBLOG_RETURN_IF_ERROR(ValidateRelativePath(request.run_path(), "run_path", limits));
    TBLOG_RETURN_IF_ERROR(CheckNotReserved(request.run_path(), "run_path"));
  }
  if (!request.filename_suffix().empty()) {
    TBLOG_RETURN_IF_ERROR(
        ValidatePathComponent(request.filename_suffix(), "filename_suffix", limits));
  }
  if (!v1::OpenMode_IsValid(request.mode())) {
    return absl::InvalidArgumentError(absl::StrCat("mode: unknown OpenMode ", request.mode()));
  }
  if (request.run_path().empty() && request.mode() != v1::OPEN_MODE_DEFAULT) {
    return absl::InvalidArgumentError(
        "mode: OPEN_MODE_CREATE and OPEN_MODE_RESUME need run_path");
  }
  TBLOG_RETURN_IF_ERROR(RunReductions::ValidateOpen(request));
  // Hparams are checked before anything is created.
  auto open_events = context_.converter->OpenRunEvents(request, NowSeconds());
  if (!open_events.ok()) return open_events.status();

  MutexLock open_lock(&open_mu_);
  v1::OpenRunResponse response;
  std::string run_path = request.run_path();
  const std::map<std::string, std::string> labels(request.labels().begin(),
                                                  request.labels().end());
  int open_runs = 0;
  {
    MutexLock lock(&mu_);
    open_runs = OpenRunCountLocked();
    auto it = run_path.empty() ? runs_.end() : runs_.find(run_path);
    if (it != runs_.end()) {
      TBLOG_RETURN_IF_ERROR(CheckRunOwner(it->second.owner, caller, run_path, "open"));
    }
    if (it != runs_.end() && it->second.state == v1::RUN_STATE_CLOSING) {
      // Its files are being completed: a new Run on the same directory now
      // would race with that. The close takes milliseconds.
      return absl::UnavailableError(absl::StrCat(
          "run \"", run_path, "\" is closing (its last writer released it); retry"));
    }
    if (it != runs_.end() && it->second.state == v1::RUN_STATE_OPEN) {
      if (request.mode() == v1::OPEN_MODE_CREATE) {
        return absl::AlreadyExistsError(
            absl::StrCat("run_path \"", run_path, "\" exists (it is open in this daemon)"));
      }
      // A second writer joins the run (or one reconnects).
      TBLOG_RETURN_IF_ERROR(it->second.run->reductions().Configure(request));
      HoldLocked(it->second, run_path, request.writer_id(), &labels);
      response.set_run_id(run_path);
      response.set_run_path(run_path);
      response.set_directory(it->second.run->directory());
      response.set_resumed(true);
      for (const auto& [writer, sequence] : it->second.run->WriterSequences()) {
        (*response.mutable_writer_sequences())[writer] = sequence;
      }
      return response;
    }
  }
  if (open_runs >= limits.max_runs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "tblogd has ", open_runs, " open runs, the limit (--max-runs); close a run first"));
  }

  std::map<std::string, uint64_t> writer_sequences;
  ResumedFiles resumed_files;
  SeriesSteps last_steps, reduced_steps;  // ResumeRepair's
  std::vector<std::string> pending_contributions;  // ResumeRepair::contributions
  bool resumed = false;
  // Runs never nest (run_nesting.h). Serialized by open_mu_ with every other
  // OpenRun, so no run appears around or inside this one meanwhile.
  const bool timestamped = run_path.empty();
  const std::string_view near = timestamped ? std::string_view(request.experiment()) : run_path;
  const std::string_view what = timestamped ? "experiment" : "run_path";
  if (!near.empty()) {
    TBLOG_RETURN_IF_ERROR(CheckKnownNesting(near, what, /*path_is_parent=*/timestamped));
    TBLOG_RETURN_IF_ERROR(
        CheckNoRunNearOnDisk(fs_, logdir_, near, what, /*path_is_parent=*/timestamped));
  }
  const std::string daemon_id = DaemonIdentity(context_.options->file);
  std::string owner_record;  // what the run's directory says of its owner
  if (run_path.empty()) {
    auto created = CreateTimestampedDir(request);
    if (!created.ok()) return created.status();
    run_path = *std::move(created);
  } else {
    const std::string dir = absl::StrCat(logdir_, "/", run_path);
    const bool exists = fs_.Stat(dir).ok();
    if (exists && request.mode() == v1::OPEN_MODE_CREATE) {
      return absl::AlreadyExistsError(absl::StrCat("run_path \"", run_path, "\" exists"));
    }
    if (!exists && request.mode() == v1::OPEN_MODE_RESUME) {
      return absl::NotFoundError(absl::StrCat("run_path \"", run_path, "\" does not exist"));
    }
    // Creates the missing components and checks the existing ones, refusing
    // symlinks anywhere under the log directory.
    TBLOG_RETURN_IF_ERROR(
        MakeDirectoriesUnder(fs_, logdir_, run_path, SyncNewDirectories(*context_.options)));
    if (exists) {
      // The owner recorded on disk (run_owner.h) guards a run this process
      // does not know (any more) as the registry's entry guards one it does.
      auto record = ReadOwnerRecord(fs_, dir, daemon_id);
      if (!record.ok()) return record.status();
      owner_record = *std::move(record);
      TBLOG_RETURN_IF_ERROR(CheckOwnerRecord(owner_record, caller, run_path));
      auto repair = RepairRunForResume(dir, daemon_id, &fs_);
      if (!repair.ok()) return Annotate(repair.status(), absl::StrCat("resuming ", run_path));
      for (const std::string& warning : repair->warnings) {
        spdlog::warn("run={} resume: {}", run_path, warning);
      }
      spdlog::info("run={} resume: scanned {} bytes in {} event files, {} batches held in part, "
                   "cut {} bytes of torn tails from {} files",
                   run_path, repair->bytes_scanned, repair->files_scanned,
                   repair->resumed.batches.size(), repair->bytes_removed, repair->files_truncated);
      writer_sequences = std::move(repair->writer_sequences);
      resumed_files = std::move(repair->resumed);
      last_steps = std::move(repair->last_steps);
      reduced_steps = std::move(repair->reduced_steps);
      pending_contributions = std::move(repair->contributions);
      resumed = true;
    }
  }

  if (!caller.empty() && owner_record != OwnerRecord(caller)) {
    TBLOG_RETURN_IF_ERROR(WriteOwnerRecord(fs_, absl::StrCat(logdir_, "/", run_path), daemon_id,
                                           caller, SyncNewDirectories(*context_.options)));
  }
  auto run = std::make_shared<Run>(context_, run_path, absl::StrCat(logdir_, "/", run_path),
                                   labels, request.filename_suffix(), writer_sequences,
                                   std::move(resumed_files));
  // A new run takes any settings (a fresh RunReductions); a resumed one
  // never writes again a reduced point its files hold.
  TBLOG_RETURN_IF_ERROR(run->reductions().Configure(request));
  run->reductions().NoteWritten(last_steps, reduced_steps);
  if (!pending_contributions.empty()) {
    const RunReductions::RestoreCounts restored =
        run->reductions().Restore(pending_contributions, absl::Now());
    spdlog::info("run={} resume: restored {} pending reduced points ({} contributions, {} "
                 "records skipped)",
                 run_path, restored.points, restored.contributions, restored.undecodable);
  }
  if (!open_events->events.empty() || !open_events->files.empty()) {
    run->SubmitEvents(*std::move(open_events), [run_path](absl::Status status) {
      if (!status.ok()) {
        spdlog::error("run={} writing the hparams session start: {}", run_path,
                      std::string(status.message()));
      }
    });
  }
  {
    MutexLock lock(&mu_);
    // Replaces the entry of the run's closed predecessor, if any; a closed run
    // keeps its owner and its writers' bindings.
    std::string owner(caller);
    auto writers = std::make_shared<WriterBindings>();
    if (auto old = runs_.find(run_path); old != runs_.end()) {
      owner = old->second.owner;
      writers = old->second.writers;
      runs_.erase(old);
    }
    Known& known = runs_.emplace(run_path, Known{.run = run,
                                                 .hparams = request.hparams(),
                                                 .leases = RunLeases(context_.options->writer_lease),
                                                 .owner = std::move(owner),
                                                 .writers = std::move(writers)})
                       .first->second;
    HoldLocked(known, run_path, request.writer_id(), &labels);
  }
  spdlog::info("run={} opened resumed={} labels={}", run_path, resumed, request.labels_size());

  response.set_run_id(run_path);
  response.set_run_path(run_path);
  response.set_directory(run->directory());
  response.set_resumed(resumed);
  // As the run reports them (lower than its files hold while a node daemon
  // forwards their reductions: node_reduce.h).
  for (const auto& [writer, sequence] : run->WriterSequences()) {
    (*response.mutable_writer_sequences())[writer] = sequence;
  }
  return response;
}

std::shared_ptr<Run> RunRegistry::Find(std::string_view run_id) const {
  MutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  return it == runs_.end() ? nullptr : it->second.run;
}

absl::StatusOr<v1::RunInfo> RunRegistry::Info(std::string_view run_id) const {
  MutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("run_id \"", std::string(run_id), "\" is not known to this daemon"));
  }
  return InfoLocked(it->second);
}

RunRegistry::Known* RunRegistry::KnownLocked(const Run& run) {
  auto it = runs_.find(run.run_id());
  return it != runs_.end() && it->second.run.get() == &run ? &it->second : nullptr;
}

v1::RunInfo RunRegistry::InfoLocked(const Known& known) const {
  v1::RunInfo info = known.run->Info();
  info.set_state(known.state);
  info.set_open(known.state == v1::RUN_STATE_OPEN);  // also between closing and Close()
  known.leases.AppendTo(info);
  return info;
}

void RunRegistry::HoldLocked(Known& known, std::string_view run_id, const std::string& writer_id,
                             const std::map<std::string, std::string>* labels) {
  if (!known.leases.Holds(writer_id)) context_.metrics->RunLeaseAcquired(run_id);
  known.leases.Hold(writer_id, absl::Now(), labels);
}

void RunRegistry::NoteReleased(std::string_view run_id, size_t holds) {
  for (size_t i = 0; i < holds; ++i) context_.metrics->RunLeaseReleased(run_id);
}

std::unique_ptr<RunRegistry::StreamHold> RunRegistry::AttachStream(
    const std::shared_ptr<Run>& run, const std::string& writer_id) {
  MutexLock lock(&mu_);
  Known* known = KnownLocked(*run);
  if (known == nullptr || known->state != v1::RUN_STATE_OPEN) return nullptr;
  if (!known->leases.Holds(writer_id)) context_.metrics->RunLeaseAcquired(run->run_id());
  known->leases.StreamStarted(writer_id, absl::Now());
  return std::make_unique<StreamHold>(this, run, writer_id);
}

void RunRegistry::StreamEnded(const std::shared_ptr<Run>& run, const std::string& writer_id) {
  MutexLock lock(&mu_);
  Known* known = KnownLocked(*run);
  if (known != nullptr && known->state == v1::RUN_STATE_OPEN) {
    known->leases.StreamEnded(writer_id, absl::Now());
  }
}

void RunRegistry::Touch(const std::shared_ptr<Run>& run, const std::string& writer_id) {
  MutexLock lock(&mu_);
  Known* known = KnownLocked(*run);
  if (known != nullptr && known->state == v1::RUN_STATE_OPEN) {
    HoldLocked(*known, run->run_id(), writer_id, nullptr);
  }
}

absl::StatusOr<RunRegistry::Guarded> RunRegistry::FindFor(std::string_view run_id,
                                                          std::string_view caller,
                                                          std::string_view action) const {
  MutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    return absl::NotFoundError(absl::StrCat("run_id ", EscapeForMessage(run_id),
                                            " is not known to this daemon; call OpenRun"));
  }
  TBLOG_RETURN_IF_ERROR(CheckRunOwner(it->second.owner, caller, run_id, action));
  return Guarded{it->second.run, it->second.writers};
}

absl::Status RunRegistry::CheckKnownNesting(std::string_view path, std::string_view what,
                                            bool path_is_parent) const {
  MutexLock lock(&mu_);
  std::vector<std::string_view> outer = ProperAncestors(path);
  if (path_is_parent) outer.push_back(path);
  for (std::string_view ancestor : outer) {
    if (runs_.find(ancestor) != runs_.end()) return RunInsideRunError(what, path, ancestor);
  }
  if (path_is_parent) return absl::OkStatus();
  // Keys below `path` sort right after "<path>/".
  const std::string below = absl::StrCat(Sv(path), "/");
  auto it = runs_.lower_bound(below);
  if (it != runs_.end() && it->first.compare(0, below.size(), below) == 0) {
    return RunAroundRunError(path, it->first);
  }
  return absl::OkStatus();
}

std::vector<v1::RunInfo> RunRegistry::List(std::optional<std::string_view> owner) const {
  MutexLock lock(&mu_);
  std::vector<v1::RunInfo> infos;
  for (const auto& [id, known] : runs_) {
    if (!owner || known.owner == *owner) infos.push_back(InfoLocked(known));
  }
  return infos;
}

int RunRegistry::OpenRunCount() const {
  MutexLock lock(&mu_);
  return OpenRunCountLocked();
}

int RunRegistry::OpenRunCountLocked() const {
  int open = 0;
  for (const auto& [id, known] : runs_) open += known.state == v1::RUN_STATE_OPEN ? 1 : 0;
  return open;
}

std::vector<std::shared_ptr<Run>> RunRegistry::OpenRuns(
    std::optional<std::string_view> owner) const {
  std::vector<std::shared_ptr<Run>> runs;
  MutexLock lock(&mu_);
  for (const auto& [id, known] : runs_) {
    if (known.state == v1::RUN_STATE_OPEN && (!owner || known.owner == *owner)) {
      runs.push_back(known.run);
    }
  }
  return runs;
}

}  // namespace tblog::daemon
