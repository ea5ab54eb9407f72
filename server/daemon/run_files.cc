#include "daemon/run_files.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "base/status_util.h"
#include "daemon/names.h"

namespace tblog::daemon {

absl::Status MakeDirectoriesUnder(FileSystem& fs, const std::string& base,
                                  std::string_view relative, bool sync_parents) {
  std::string path = base;
  for (absl::string_view part : absl::StrSplit(Sv(relative), '/', absl::SkipEmpty())) {
    const std::string parent = path;
    absl::StrAppend(&path, "/", part);
    const absl::Status made = fs.CreateDir(path);
    if (made.ok()) {
      if (sync_parents) TBLOG_RETURN_IF_ERROR(fs.SyncDir(parent));
      continue;
    }
    if (!absl::IsAlreadyExists(made)) return made;
    auto info = fs.Stat(path);
    if (!info.ok()) return info.status();
    if (info->type != FileInfo::Type::kDirectory) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " exists and is not a directory (symlinks are not followed)"));
    }
  }
  return absl::OkStatus();
}

namespace {

// An error of the file system (full, read-only, failing) rather than a
// refusal of what a client sent (a path through a non-directory).
bool IsIoError(const absl::Status& status) {
  return status.code() != absl::StatusCode::kFailedPrecondition;
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

RunFiles::RunFiles(std::string run_id, std::string directory, EventFileOptions file_options,
                   const Limits& limits, std::map<std::string, uint64_t> writer_sequences)
    : run_id_(std::move(run_id)),
      directory_(std::move(directory)),
      file_options_(std::move(file_options)),
      fs_(*file_options_.file_system),
      limits_(limits),
      checkpoint_sequences_(std::move(writer_sequences)) {}

RunFiles::~RunFiles() { (void)CloseAll(); }

absl::Status RunFiles::WriteParts(const Converted& converted, size_t* next_part, bool* io) {
  MutexLock lock(&mu_);
  const size_t files = converted.files.size();
  for (; *next_part < files + converted.events.size(); ++*next_part) {
    const absl::Status status = *next_part < files
                                    ? WriteSideFile(converted.files[*next_part], io)
                                    : WriteEvent(converted.events[*next_part - files], io);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

void RunFiles::NoteBatchWritten(const std::string& writer_id, uint64_t sequence) {
  MutexLock lock(&mu_);
  uint64_t& checkpointed = checkpoint_sequences_[writer_id];
  checkpointed = std::max(checkpointed, sequence);
}

absl::Status RunFiles::WriteEvent(const EventOut& event, bool* io) {
  auto it = subruns_.find(event.subrun);
  if (it == subruns_.end()) {
    if (static_cast<int>(subruns_.size()) >= limits_.max_subruns_per_run) {
      return absl::ResourceExhaustedError(
          absl::StrCat("run \"", run_id_, "\" already has ", limits_.max_subruns_per_run,
                       " sub-runs (--max-subruns-per-run); sub-run \"",
                       EscapeForMessage(event.subrun), "\" refused"));
    }
    std::string dir = directory_;
    if (!event.subrun.empty()) {
      TBLOG_RETURN_IF_ERROR(ValidateRelativePath(event.subrun, "sub-run", limits_));
      absl::Status made = MakeDirectoriesUnder(fs_, directory_, event.subrun,
                                               file_options_.sync != SyncPolicy::kNever);
      if (!made.ok()) {
        *io = IsIoError(made);
        return made;
      }
      absl::StrAppend(&dir, "/", Sv(event.subrun));
    }
    auto writer = EventFileWriter::Create(dir, file_options_);
    if (!writer.ok()) {
      *io = true;
      return writer.status();
    }
    it = subruns_.emplace(event.subrun, SubrunWriter{std::move(*writer), 0}).first;
  }
  // An error means the event was not taken (EventFileWriter's contract).
  absl::Status status = it->second.writer->WriteSerialized(event.event);
  if (!status.ok()) {
    *io = true;
    return status;
  }
  ++it->second.records_since_sync;
  return status;
}

absl::Status RunFiles::WriteSideFile(const SideFile& file, bool* io) {
  std::string relative = file.relative_path;
  if (!file.subrun.empty()) {
    TBLOG_RETURN_IF_ERROR(ValidateRelativePath(file.subrun, "sub-run", limits_));
    relative = absl::StrCat(Sv(file.subrun), "/", Sv(file.relative_path));
  }
  TBLOG_RETURN_IF_ERROR(ValidateRelativePath(relative, "side file", limits_));
  const size_t slash = relative.rfind('/');
  if (slash != std::string::npos) {
    absl::Status made = MakeDirectoriesUnder(fs_, directory_, relative.substr(0, slash));
    if (!made.ok()) {
      *io = IsIoError(made);
      return made;
    }
  }
  const std::string path = absl::StrCat(directory_, "/", relative);
  const absl::Status status =
      file.append_unique ? AppendUnlessPresent(path, file.contents)
                         : RewriteFile(fs_, path, file.contents, /*sync=*/false);
  // Rewriting it whole (or skipping what is there) is safe: retry. A symlink
  // there is refused for good.
  if (!status.ok()) *io = IsIoError(status);
  return status;
}

absl::Status RunFiles::AppendUnlessPresent(const std::string& path, std::string_view contents) {
  auto existing = ReadFileToString(fs_, path);
  if (!existing.ok() && !absl::IsNotFound(existing.status())) return existing.status();
  if (existing.ok() && existing->find(contents) != std::string::npos) return absl::OkStatus();
  auto out = fs_.OpenWritable(path, FileSystem::OpenMode::kAppend);
  if (!out.ok()) return out.status();
  TBLOG_RETURN_IF_ERROR((*out)->Append(contents));
  return (*out)->Close();
}

absl::Status RunFiles::FlushAll(bool sync, bool* synced) {
  MutexLock lock(&mu_);
  absl::Status first_error;
  bool all_synced = true;
  for (auto& [subrun, entry] : subruns_) {
    const uint64_t syncs_before = entry.writer->stats().syncs;
    absl::Status status = entry.writer->Flush(sync && entry.records_since_sync > 0);
    if (status.ok() && entry.writer->stats().syncs > syncs_before) entry.records_since_sync = 0;
    if (entry.records_since_sync > 0) all_synced = false;
    if (!status.ok() && first_error.ok()) first_error = status;
  }
  *synced = first_error.ok() && all_synced;
  return first_error;
}

absl::Status RunFiles::WriteCheckpoint(bool sync) {
  MutexLock lock(&mu_);
  CheckpointState state;
  state.writer_sequences = checkpoint_sequences_;
  // Not before any file it accounts for was created (a resume removes
  // tblogd's files created after the checkpoint's time).
  state.time = absl::ToDoubleSeconds(file_options_.clock() - absl::UnixEpoch());
  for (const auto& [subrun, writer] : subruns_) {
    const std::string& path = writer.writer->current_path();
    auto info = fs_.Stat(path);
    if (!info.ok()) continue;
    state.files.push_back({subrun, BaseName(path), info->size});
    state.time = std::max(state.time, writer.writer->stats().latest_file_time);
  }
  if (!checkpoint_) {
    auto opened = CheckpointFile::Open(directory_, file_options_.sync != SyncPolicy::kNever, &fs_);
    if (!opened.ok()) return opened.status();
    checkpoint_ = std::move(*opened);
  }
  return checkpoint_->Write(std::move(state), sync);
}

absl::Status RunFiles::CloseAll() {
  MutexLock lock(&mu_);
  absl::Status first_error;
  for (auto& [subrun, entry] : subruns_) {
    absl::Status status = entry.writer->Close();
    closed_files_bytes_ += entry.writer->stats().bytes_written;
    closed_files_count_ += static_cast<uint32_t>(entry.writer->stats().files_opened);
    if (!status.ok() && first_error.ok()) first_error = status;
  }
  subruns_.clear();
  return first_error;
}

RunFileTotals RunFiles::Totals() const {
  MutexLock lock(&mu_);
  RunFileTotals totals{closed_files_bytes_, closed_files_count_};
  for (const auto& [subrun, writer] : subruns_) {
    totals.bytes_written += writer.writer->stats().bytes_written;
    totals.files += static_cast<uint32_t>(writer.writer->stats().files_opened);
  }
  return totals;
}

}  // namespace tblog::daemon
