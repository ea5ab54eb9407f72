#include "daemon/run_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "daemon/checkpoint.h"
#include "daemon/names.h"
#include "daemon/run_nesting.h"
#include "daemon/run_owner.h"
#include "engine/io/event_file_writer.h"
#include "base/status_util.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {
namespace {

double NowSeconds() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

// A machine crash must not lose a run directory whose files were fsynced.
bool SyncNewDirectories(const DaemonOptions& options) {
  return options.file.sync != SyncPolicy::kNever;
}

}  // namespace

RunRegistry::RunRegistry(RunContext context, std::string logdir)
    : context_(context), fs_(*context.options->file.file_system), logdir_(std::move(logdir)) {}

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
  // Hparams are checked before anything is created.
  auto open_events = context_.converter->OpenRunEvents(request, NowSeconds());
  if (!open_events.ok()) return open_events.status();

  MutexLock open_lock(&open_mu_);
  v1::OpenRunResponse response;
  std::string run_path = request.run_path();
  int open_runs = 0;
  {
    MutexLock lock(&mu_);
    open_runs = OpenRunCountLocked();
    auto it = run_path.empty() ? runs_.end() : runs_.find(run_path);
    if (it != runs_.end()) {
      TBLOG_RETURN_IF_ERROR(CheckRunOwner(it->second.owner, caller, run_path, "open"));
    }
    if (it != runs_.end() && it->second.run->open()) {
      if (request.mode() == v1::OPEN_MODE_CREATE) {
        return absl::AlreadyExistsError(
            absl::StrCat("run_path \"", run_path, "\" exists (it is open in this daemon)"));
      }
      // A second writer joins the run.
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
      auto repair = RepairRunForResume(dir, &fs_);
      if (!repair.ok()) return Annotate(repair.status(), absl::StrCat("resuming ", run_path));
      for (const std::string& warning : repair->warnings) {
        spdlog::warn("run={} resume: {}", run_path, warning);
      }
      if (repair->files_truncated > 0) {
        spdlog::info("run={} resume: cut {} bytes from {} event files", run_path,
                     repair->bytes_removed, repair->files_truncated);
      }
      writer_sequences = std::move(repair->writer_sequences);
      resumed = true;
    }
  }

  std::map<std::string, std::string> labels(request.labels().begin(), request.labels().end());
  auto run = std::make_shared<Run>(context_, run_path, absl::StrCat(logdir_, "/", run_path),
                                   std::move(labels), request.filename_suffix(), writer_sequences);
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
    Known& known = runs_[run_path];
    if (!known.run) known.owner = std::string(caller);  // a closed run keeps its owner, bindings
    known.run = run;
    known.hparams = request.hparams();
  }
  spdlog::info("run={} opened resumed={} labels={}", run_path, resumed, request.labels_size());

  response.set_run_id(run_path);
  response.set_run_path(run_path);
  response.set_directory(run->directory());
  response.set_resumed(resumed);
  for (const auto& [writer, sequence] : writer_sequences) {
    (*response.mutable_writer_sequences())[writer] = sequence;
  }
  return response;
}

std::shared_ptr<Run> RunRegistry::Find(std::string_view run_id) const {
  MutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  return it == runs_.end() ? nullptr : it->second.run;
}

void RunRegistry::CloseRun(const std::string& run_id, v1::SessionStatus status, CloseDone done) {
  std::shared_ptr<Run> run;
  v1::HParams hparams;
  {
    MutexLock lock(&mu_);
    auto it = runs_.find(run_id);
    if (it != runs_.end()) {
      run = it->second.run;
      hparams = it->second.hparams;
    }
  }
  if (!run) {
    std::move(done)(absl::NotFoundError(absl::StrCat("run \"", run_id, "\" is not known")));
    return;
  }
  if (!run->open()) {
    std::move(done)(
        absl::FailedPreconditionError(absl::StrCat("run \"", run_id, "\" is already closed")));
    return;
  }
  Converted final_events = context_.converter->CloseRunEvents(status, hparams, NowSeconds());
  run->Close(std::move(final_events),
             [run, done = std::move(done)](absl::Status close_status) mutable {
               spdlog::info("run={} closed status={}", run->run_id(),
                            close_status.ok() ? "OK" : std::string(close_status.message()));
               if (!close_status.ok()) {
                 std::move(done)(close_status);
               } else {
                 std::move(done)(run->Info());
               }
             });
}

absl::Status RunRegistry::CloseAllForShutdown(absl::Time deadline) {
  std::vector<std::shared_ptr<Run>> runs = OpenRuns();
  struct Pending {
    Mutex mu;
    int left ABSL_GUARDED_BY(mu) = 0;
    std::vector<std::string> errors ABSL_GUARDED_BY(mu);
  };
  auto pending = std::make_shared<Pending>();
  {
    MutexLock lock(&pending->mu);
    pending->left = static_cast<int>(runs.size());
  }
  for (const auto& run : runs) {
    run->Close(Converted{}, [pending, run](absl::Status status) {
      MutexLock lock(&pending->mu);
      --pending->left;
      if (!status.ok() && status.code() != absl::StatusCode::kFailedPrecondition) {
        pending->errors.push_back(absl::StrCat(run->run_id(), ": ", status.message()));
      }
    });
  }
  MutexLock lock(&pending->mu);
  auto all_closed = [&pending]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pending->mu) {
    return pending->left == 0;
  };
  if (!pending->mu.AwaitWithDeadline(Condition(&all_closed), deadline)) {
    return absl::DeadlineExceededError(
        absl::StrCat(pending->left, " runs still closing at the shutdown deadline"));
  }
  if (!pending->errors.empty()) {
    return absl::InternalError(absl::StrCat("closing runs: ", absl::StrJoin(pending->errors, "; ")));
  }
  return absl::OkStatus();
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
  std::vector<std::shared_ptr<Run>> runs;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, known] : runs_) {
      if (!owner || known.owner == *owner) runs.push_back(known.run);
    }
  }
  std::vector<v1::RunInfo> infos;
  infos.reserve(runs.size());
  for (const auto& run : runs) infos.push_back(run->Info());
  return infos;
}

int RunRegistry::OpenRunCount() const {
  MutexLock lock(&mu_);
  return OpenRunCountLocked();
}

int RunRegistry::OpenRunCountLocked() const {
  int open = 0;
  for (const auto& [id, known] : runs_) open += known.run->open() ? 1 : 0;
  return open;
}

std::vector<std::shared_ptr<Run>> RunRegistry::OpenRuns(
    std::optional<std::string_view> owner) const {
  std::vector<std::shared_ptr<Run>> runs;
  MutexLock lock(&mu_);
  for (const auto& [id, known] : runs_) {
    if (known.run->open() && (!owner || known.owner == *owner)) runs.push_back(known.run);
  }
  return runs;
}

}  // namespace tblog::daemon
