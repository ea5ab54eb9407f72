#include "daemon/run_files.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"
#include "base/status_util.h"
#include "daemon/names.h"
#include "daemon/resume_scan.h"

namespace tblog::daemon {

absl::Status MakeDirectoriesUnder(FileSystem& fs, const std::string& base,
                                  std::string_view relative,
                                  std::vector<std::string>* created_in) {
  std::string path = base;
  for (absl::string_view part : absl::StrSplit(Sv(relative), '/', absl::SkipEmpty())) {
    const std::string parent = path;
    absl::StrAppend(&path, "/", part);
    const absl::Status made = fs.CreateDir(path);
    if (made.ok()) {
      if (created_in != nullptr) created_in->push_back(parent);
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

absl::Status MakeDirectoriesUnder(FileSystem& fs, const std::string& base,
                                  std::string_view relative, bool sync_parents) {
  std::vector<std::string> created_in;
  TBLOG_RETURN_IF_ERROR(MakeDirectoriesUnder(fs, base, relative, &created_in));
  if (sync_parents) {
    for (const std::string& parent : created_in) TBLOG_RETURN_IF_ERROR(fs.SyncDir(parent));
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

double Seconds(absl::Time time) { return absl::ToDoubleSeconds(time - absl::UnixEpoch()); }

// `options` for a new writer in `dir`: named by the daemon identity, and on a
// clock moved on past the latest second in the names there, if need be, so
// that its files sort after every event file of the directory (TensorBoard
// reads them in name order and never goes back), whether the daemon restarts
// within a second, with a smaller pid, or after the clock stepped back. The
// clock keeps running: only file names and file_version times move.
EventFileOptions OptionsSortingLast(EventFileOptions options, const std::string& daemon_id,
                                    FileSystem& fs, const std::string& dir) {
  options.hostname = daemon_id;
  // A flush must not wait on the disk: the new file's name is fsynced with
  // its data (the durable sync), not when it is created.
  options.defer_directory_syncs = true;
  const uint64_t latest = LatestEventFileSecond(fs, dir);
  const absl::Time now = options.clock();
  const absl::Time floor = absl::FromUnixSeconds(static_cast<int64_t>(latest) + 1);
  if (latest > 0 && now < floor) {
    options.clock = [clock = std::move(options.clock), offset = floor - now] {
      return clock() + offset;
    };
  }
  return options;
}

}  // namespace

RunFiles::RunFiles(std::string run_id, std::string directory, EventFileOptions file_options,
                   const Limits& limits, std::map<std::string, uint64_t> writer_sequences,
                   ResumedFiles resumed, std::atomic<uint64_t>* steps_back)
    : run_id_(std::move(run_id)),
      daemon_id_(DaemonIdentity(file_options)),
      directory_(std::move(directory)),
      file_options_(std::move(file_options)),
      fs_(*file_options_.file_system),
      limits_(limits),
      checkpoint_sequences_(std::move(writer_sequences)),
      recovered_(std::move(resumed.batches)),
      steps_back_(steps_back),
      resumed_files_(std::move(resumed.files)) {
  for (const auto& [key, batch] : recovered_) {
    for (const auto& [subrun, part] : batch.parts) {
      if (part.events > 0) skip_[key][subrun] = part.events;
    }
  }
}

// Like a crash as far as batches go (no end markers): tests use it so.
RunFiles::~RunFiles() { (void)CloseWriters(/*end_batches=*/false); }

absl::Status RunFiles::WriteParts(const Converted& converted, size_t* next_part, bool* io,
                                  const BatchKey& batch) {
  MutexLock lock(&mu_);
  if (batch != current_) StartBatch(batch);
  const size_t files = converted.files.size();
  const size_t events = files + converted.events.size();
  for (; *next_part < events; ++*next_part) {
    const absl::Status status = *next_part < files
                                    ? WriteSideFile(converted.files[*next_part], io)
                                    : WriteEvent(converted.events[*next_part - files], batch, io);
    if (!status.ok()) return status;
  }
  if (converted.packed.events.empty()) return absl::OkStatus();
  size_t index = *next_part - events;
  const absl::Status status = WritePacked(converted.packed, &index, batch, io);
  *next_part = events + index;
  return status;
}

struct RunFiles::SeriesTarget {
  SubrunWriter* writer = nullptr;  // null: not looked up yet
  // With a batch: its current_parts_ entry, its skip_ entry (null: nothing
  // to skip) and the last step of the series (null: not counted).
  uint64_t* events = nullptr;
  uint64_t* skip = nullptr;
  LastStep* last = nullptr;
};

absl::Status RunFiles::FindTarget(const PackedEvents::Series& series, const BatchKey& batch,
                                  bool* io, SeriesTarget& target) {
  auto subrun = Subrun(series.subrun, io);
  if (!subrun.ok()) return subrun.status();
  SubrunWriter& writer = **subrun;
  // Nothing else writes to the files until WritePacked returns, so the
  // marker stays the last one before every event of the series.
  *io = true;
  if (writer.open != batch) TBLOG_RETURN_IF_ERROR(SwitchBatch(writer, batch));
  *io = false;
  target = SeriesTarget{&writer};
  if (batch.empty()) return absl::OkStatus();
  target.events = &current_parts_[series.subrun];
  if (auto it = skip_.find(batch); it != skip_.end()) target.skip = &it->second[series.subrun];
  if (steps_back_ != nullptr) {
    target.last = &last_steps_[batch.writer_id][series.subrun][series.tag];
  }
  return absl::OkStatus();
}

absl::Status RunFiles::WritePacked(const PackedEvents& packed, size_t* index,
                                   const BatchKey& batch, bool* io) {
  std::vector<SeriesTarget> targets(packed.series.size());
  const std::vector<PackedEvents::Event>& events = packed.events;
  while (*index < events.size()) {
    SeriesTarget& target = targets[events[*index].series];
    if (target.writer == nullptr) {
      TBLOG_RETURN_IF_ERROR(FindTarget(packed.series[events[*index].series], batch, io, target));
    }
    if (target.skip != nullptr && *target.skip > 0) {
      --*target.skip;  // in the files since before the crash
      ++*index;
      continue;
    }
    // The run of events from here going to the same file, their series
    // looked up and nothing of theirs to skip (the usual case: the whole
    // record), framed in bulk.
    SubrunWriter& writer = *target.writer;
    const size_t first = *index;
    size_t last = first + 1;
    while (last < events.size()) {
      const SeriesTarget& next = targets[events[last].series];
      if (next.writer != &writer || (next.skip != nullptr && *next.skip > 0)) break;
      ++last;
    }
    const size_t base = first == 0 ? 0 : events[first - 1].end;
    size_t accepted = 0;
    // As in WriteEvent: an error is the event writer's, the event not taken.
    const absl::Status status = writer.writer->WriteSerializedRun(
        std::string_view(packed.bytes).substr(base, events[last - 1].end - base), last - first,
        [&](size_t i) { return events[first + i].end - base; }, &accepted);
    writer.records_since_sync += accepted;
    for (size_t i = first; i < first + accepted; ++i) {
      const SeriesTarget& written = targets[events[i].series];
      if (written.events != nullptr) ++*written.events;
      if (written.last != nullptr) {
        const PackedEvents::Series& series = packed.series[events[i].series];
        NoteStep(*written.last, events[i].step, batch.writer_id, series.subrun, series.tag);
      }
    }
    *index = first + accepted;
    if (!status.ok()) {
      *io = true;
      return status;
    }
  }
  return absl::OkStatus();
}

void RunFiles::StartBatch(const BatchKey& batch) {
  if (!current_done_ && !current_.empty()) {
    RecoveredBatch& unfinished = recovered_[current_];
    for (const auto& [subrun, events] : current_parts_) unfinished.parts[subrun].events += events;
  }
  current_ = batch;
  current_parts_.clear();
  recent_part_ = nullptr;
  current_done_ = batch.empty();
}

void RunFiles::NoteBatchWritten(const std::string& writer_id, uint64_t sequence) {
  MutexLock lock(&mu_);
  uint64_t& checkpointed = checkpoint_sequences_[writer_id];
  checkpointed = std::max(checkpointed, sequence);
  const BatchKey key{writer_id, sequence};
  if (current_ != key) StartBatch(key);  // no record reached the files
  // Its end marker goes into each sub-run it touched, with their number. (A
  // batch that wrote no event has no marker: a resume cannot tell it was
  // written, and the client resends it, harmlessly.)
  for (const auto& [subrun, events] : current_parts_) {
    auto it = subruns_.find(subrun);
    if (it != subruns_.end() && it->second.open == key) {
      it->second.open_parts = static_cast<uint32_t>(current_parts_.size());
    }
  }
  current_done_ = true;
  // Settled: the batches of this writer up to here.
  const auto settled = [&](const auto& entry) {
    return entry.first.writer_id == writer_id && entry.first.sequence <= sequence;
  };
  std::erase_if(recovered_, settled);
  std::erase_if(skip_, settled);
}

absl::Status RunFiles::SwitchBatch(SubrunWriter& writer, const BatchKey& begin) {
  BatchMarker marker{writer.open, writer.open_parts, begin};
  const absl::Status status = writer.writer->WriteSerialized(
      EncodeBatchMarkerEvent(marker, Seconds(file_options_.clock())));
  if (!status.ok()) return status;
  ++writer.records_since_sync;
  writer.open = begin;
  writer.open_parts = 0;
  return status;
}

void RunFiles::NoteStep(const std::string& writer_id, const EventOut& event) {
  if (steps_back_ == nullptr) return;
  std::string_view tag;
  int64_t step = event.step;
  if (event.tag_size > 0) {
    tag = std::string_view(event.event).substr(event.tag_offset, event.tag_size);
  } else if (!TagAndStep(event.event, &tag, &step)) {
    return;
  }
  if (recent_steps_ == nullptr || recent_steps_writer_ != writer_id ||
      recent_steps_subrun_ != event.subrun) {
    recent_steps_ = &last_steps_[writer_id][event.subrun];
    recent_steps_writer_ = writer_id;
    recent_steps_subrun_ = event.subrun;
  }
  TagSteps& tags = *recent_steps_;
  auto it = tags.find(absl::string_view(tag.data(), tag.size()));  // not std:: in this abseil
  if (it == tags.end()) it = tags.emplace(std::string(tag), LastStep{}).first;
  NoteStep(it->second, step, writer_id, event.subrun, tag);
}

void RunFiles::NoteStep(LastStep& last, int64_t step, const std::string& writer_id,
                        std::string_view subrun, std::string_view tag) {
  if (last.seen && step <= last.step) {
    steps_back_->fetch_add(1, std::memory_order_relaxed);
    if (!last.warned) {  // once per tag in the log; every point in the metric
      last.warned = true;
      spdlog::warn("run={} writer={} sub-run=\"{}\" tag=\"{}\": step {} after step {}: "
                   "TensorBoard hides this tag's points from step {} on (points of one tag "
                   "must come in step order, so from one writer)",
                   run_id_, writer_id, subrun, tag, step, last.step, step);
    }
  }
  last.step = step;
  last.seen = true;
}

absl::StatusOr<RunFiles::SubrunWriter*> RunFiles::Subrun(const std::string& subrun, bool* io) {
  auto it = subruns_.find(subrun);
  if (it == subruns_.end()) {
    if (static_cast<int>(subruns_.size()) >= limits_.max_subruns_per_run) {
      return absl::ResourceExhaustedError(
          absl::StrCat("run \"", run_id_, "\" already has ", limits_.max_subruns_per_run,
                       " sub-runs (--max-subruns-per-run); sub-run \"",
                       EscapeForMessage(subrun), "\" refused"));
    }
    std::string dir = directory_;
    if (!subrun.empty()) {
      TBLOG_RETURN_IF_ERROR(ValidateRelativePath(subrun, "sub-run", limits_));
      std::vector<std::string> created_in;
      absl::Status made = MakeDirectoriesUnder(fs_, directory_, subrun, &created_in);
      NoteUnsyncedDirs(std::move(created_in));
      if (!made.ok()) {
        *io = IsIoError(made);
        return made;
      }
      absl::StrAppend(&dir, "/", Sv(subrun));
    }
    auto writer =
        EventFileWriter::Create(dir, OptionsSortingLast(file_options_, daemon_id_, fs_, dir));
    if (!writer.ok()) {
      *io = true;
      return writer.status();
    }
    it = subruns_.emplace(subrun, SubrunWriter{std::move(*writer), 0, {}, 0}).first;
  }
  return &it->second;
}

absl::Status RunFiles::WriteEvent(const EventOut& event, const BatchKey& batch, bool* io) {
  auto subrun = Subrun(event.subrun, io);
  if (!subrun.ok()) return subrun.status();
  SubrunWriter& writer = **subrun;
  // Errors from here on are the event writer's: the event was not taken
  // (EventFileWriter's contract), a retry offers it again.
  *io = true;
  if (writer.open != batch) TBLOG_RETURN_IF_ERROR(SwitchBatch(writer, batch));
  if (!batch.empty()) {
    if (recent_part_ == nullptr || recent_part_subrun_ != event.subrun) {
      recent_part_ = &current_parts_[event.subrun];
      recent_part_subrun_ = event.subrun;
    }
    uint64_t& events = *recent_part_;
    if (event.reduced) {
      // Not one of the batch's own events (EventOut::reduced): never skipped
      // nor counted, but the sub-run gets the batch's end marker.
      TBLOG_RETURN_IF_ERROR(writer.writer->WriteSerialized(event.event));
      ++writer.records_since_sync;
      *io = false;
      return absl::OkStatus();
    }
    if (auto it = skip_.find(batch); it != skip_.end()) {
      if (uint64_t& left = it->second[event.subrun]; left > 0) {
        --left;  // in the files since before the crash
        *io = false;
        return absl::OkStatus();
      }
    }
    TBLOG_RETURN_IF_ERROR(writer.writer->WriteSerialized(event.event));
    ++events;
    NoteStep(batch.writer_id, event);
  } else {
    TBLOG_RETURN_IF_ERROR(writer.writer->WriteSerialized(event.event));
  }
  ++writer.records_since_sync;
  *io = false;
  return absl::OkStatus();
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

absl::Status RunFiles::EndOpenBatch(SubrunWriter& entry) {
  // The open batch ends before a flush, so the checkpoint's position is
  // between batches. A writer with an I/O error takes the marker only once
  // its flush has carried it over to a fresh file.
  if (entry.open.empty() || SwitchBatch(entry, {}).ok()) return absl::OkStatus();
  absl::Status status = entry.writer->Flush(false);
  if (status.ok()) status = SwitchBatch(entry, {});
  return status;
}

absl::Status RunFiles::WriteOutAll() {
  MutexLock lock(&mu_);
  absl::Status first_error;
  for (auto& [subrun, entry] : subruns_) {
    absl::Status status = EndOpenBatch(entry);
    if (status.ok()) status = entry.writer->WriteOut();
    if (!status.ok() && first_error.ok()) first_error = status;
  }
  return first_error;
}

absl::Status RunFiles::FlushAll(bool sync, bool* synced) {
  MutexLock lock(&mu_);
  absl::Status first_error;
  bool all_synced = true;
  for (auto& [subrun, entry] : subruns_) {
    const uint64_t syncs_before = entry.writer->stats().syncs;
    absl::Status status = EndOpenBatch(entry);
    // A flush not asked to sync never waits on the disk, not even when the
    // engine's interval is due: with --fsync interval the syncs come as sync
    // flushes (Run::sync_due); --fsync flush syncs every flush.
    if (status.ok()) {
      status = sync || file_options_.sync == SyncPolicy::kOnFlush
                   ? entry.writer->Flush(sync && entry.records_since_sync > 0)
                   : entry.writer->WriteOut();
    }
    if (status.ok() && entry.writer->stats().syncs > syncs_before) entry.records_since_sync = 0;
    if (entry.records_since_sync > 0) all_synced = false;
    if (!status.ok() && first_error.ok()) first_error = status;
  }
  *synced = first_error.ok() && all_synced;
  return first_error;
}

absl::Status RunFiles::WriteCheckpoint(bool sync, SeriesSteps reduced_steps,
                                       std::vector<std::string> pending_points) {
  MutexLock lock(&mu_);
  CheckpointState state;
  state.reduced_steps = std::move(reduced_steps);
  state.pending_points = std::move(pending_points);
  state.writer_sequences = checkpoint_sequences_;
  state.batches = recovered_;
  if (!current_done_) {
    RecoveredBatch& unfinished = state.batches[current_];
    for (const auto& [subrun, events] : current_parts_) unfinished.parts[subrun].events += events;
  }
  // Not before any file it accounts for was created.
  state.time = Seconds(file_options_.clock());
  for (const auto& [subrun, writer] : subruns_) {
    const std::string& path = writer.writer->current_path();
    auto info = fs_.Stat(path);
    if (!info.ok()) continue;
    state.files.push_back({subrun, BaseName(path), info->size});
    state.time = std::max(state.time, writer.writer->stats().latest_file_time);
  }
  for (const auto& file : resumed_files_) {
    if (subruns_.count(file.subrun) == 0) state.files.push_back(file);
  }
  if (!checkpoint_) {
    // Its directory and name are fsynced with the first durable checkpoint
    // (below), not now: a flush does not wait on the disk.
    auto opened = CheckpointFile::Open(directory_, daemon_id_, /*sync_directories=*/false, &fs_);
    if (!opened.ok()) return opened.status();
    checkpoint_ = std::move(*opened);
    NoteUnsyncedDirs({directory_, absl::StrCat(directory_, "/", kCheckpointDir)});
  }
  if (sync) {
    // Recovery ordering: a checkpoint written with sync is what advances
    // durable_sequence (run.cc acks it only after this returns OK, and only
    // after FlushAll fsynced every file, each event file writer fsyncing its
    // own new names first). So the names made since the last durable
    // checkpoint (sub-run directories, .tblogd, the checkpoint itself) are
    // fsynced here, before the checkpoint's contents: a durable ack implies
    // that every entry leading to the acknowledged data survives a machine
    // crash. A crash before that loses at most entries of data never called
    // durable, which the writers still hold and resend (the run directory
    // itself is fsynced when OpenRun creates it).
    while (!unsynced_dirs_.empty()) {
      TBLOG_RETURN_IF_ERROR(fs_.SyncDir(*unsynced_dirs_.begin()));
      unsynced_dirs_.erase(unsynced_dirs_.begin());
    }
  }
  return checkpoint_->Write(std::move(state), sync);
}

void RunFiles::NoteUnsyncedDirs(std::vector<std::string> dirs) {
  if (file_options_.sync == SyncPolicy::kNever) return;  // durability left to the OS
  for (std::string& dir : dirs) unsynced_dirs_.insert(std::move(dir));
}

absl::Status RunFiles::CloseAll() { return CloseWriters(/*end_batches=*/true); }

absl::Status RunFiles::CloseWriters(bool end_batches) {
  MutexLock lock(&mu_);
  absl::Status first_error;
  for (auto& [subrun, entry] : subruns_) {
    absl::Status status;
    if (end_batches && !entry.open.empty()) status = SwitchBatch(entry, {});
    const absl::Status closed = entry.writer->Close();
    if (status.ok()) status = closed;
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
