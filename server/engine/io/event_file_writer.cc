#include "engine/io/event_file_writer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/io/raw_bytes.h"
#include "engine/io/record_writer.h"
#include "base/status_util.h"

namespace tblog {
namespace {

// Makes file names unique within the process, even for files opened in the
// same second (TensorBoard's writer uses a global counter the same way).
std::atomic<uint64_t> g_file_counter{0};

std::string LocalHostName() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

class EventFileWriter::Impl {
 public:
  Impl(std::string dir, EventFileOptions options)
      : dir_(std::move(dir)), options_(std::move(options)), fs_(*options_.file_system) {
    if (options_.hostname.empty()) options_.hostname = LocalHostName();
  }

  absl::Status Start() { return OpenNewFile(); }

  absl::Status WriteSerialized(std::string_view event_bytes) {
    TBLOG_RETURN_IF_ERROR(ReadyForEvent());
    AppendRecord(event_bytes, /*is_event=*/true);
    ++stats_.records_written;
    // Accepted: a failure here leaves the event buffered for the next file,
    // and error_ reports it from the next call on.
    if (buffer_.size() >= options_.buffer_bytes) (void)WriteBuffer();
    return absl::OkStatus();
  }

  absl::Status WriteSerializedRun(std::string_view bytes, size_t count,
                                  absl::FunctionRef<size_t(size_t)> end_of, size_t* accepted) {
    *accepted = 0;
    size_t begin = 0;  // of the next event in `bytes`
    while (*accepted < count) {
      // Per chunk, what WriteSerialized checks per event: nothing in a chunk
      // changes the outcome (a rotation or an error comes only from writing
      // the buffer, which ends a chunk).
      TBLOG_RETURN_IF_ERROR(ReadyForEvent());
      // The events up to the first that fills the buffer (then written) or,
      // once the file holds an event, that reaches max_file_bytes (then the
      // next one starts a new file), as one by one.
      const size_t at = buffer_.size();
      const size_t buffer_room = options_.buffer_bytes > at ? options_.buffer_bytes - at : 0;
      const uint64_t max_file = options_.max_file_bytes;
      uint64_t file_room = UINT64_MAX;
      if (max_file > 0 && events_in_file_ > 0) {
        file_room = max_file > file_bytes_ ? max_file - file_bytes_ : 0;
      }
      const size_t first = *accepted;
      size_t last = first;  // one past the chunk's last event
      size_t framed = 0;
      size_t end = begin;
      do {
        const size_t next = end_of(last++);
        framed += FramedRecordSize(next - end);
        end = next;
      } while (last < count && framed < buffer_room && framed < file_room);
      buffer_.resize_for_overwrite(at + framed);  // FrameRecordTo writes every byte
      char* p = buffer_.data() + at;
      for (size_t i = first; i < last; ++i) {
        const size_t next = end_of(i);
        p = FrameRecordTo(std::string_view(bytes.data() + begin, next - begin), p);
        begin = next;
        pending_.push_back({static_cast<size_t>(p - buffer_.data()), /*is_event=*/true});
      }
      file_bytes_ += framed;
      stats_.records_written += last - first;
      *accepted = last;
      // Accepted, as in WriteSerialized.
      if (buffer_.size() >= options_.buffer_bytes) (void)WriteBuffer();
    }
    return absl::OkStatus();
  }

  absl::Status Flush(bool sync) {
    if (closed_) return close_status_;
    TBLOG_RETURN_IF_ERROR(WriteOut());
    return MaybeSync(sync);
  }

  absl::Status WriteOut() {
    if (closed_) return close_status_;
    if (!error_.ok()) {
      // The old file's tail is unknown: leave it and carry what was not
      // written whole into a fresh file.
      TBLOG_RETURN_IF_ERROR(RecoverWithNewFile());
    }
    if (!FileStillAtPath()) {
      stats_.records_lost += events_in_file_;
      TBLOG_RETURN_IF_ERROR(OpenNewFile());
    }
    return WriteBuffer();
  }

  absl::Status Close() {
    if (closed_) return close_status_;
    absl::Status status = Flush(/*sync=*/false);
    if (file_) {
      const absl::Status closed = file_->Close();
      if (status.ok()) status = closed;
      file_.reset();
    }
    closed_ = true;
    close_status_ = status;
    return status;
  }

  const std::string& path() const { return path_; }
  const EventFileStats& stats() const { return stats_; }
  // Buffered bytes, or an error that a flush would try to mend.
  bool has_pending() const { return !closed_ && (!buffer_.empty() || !error_.ok()); }

 private:
  // A whole record waiting in buffer_, which it ends at `end`.
  struct PendingRecord {
    size_t end;
    bool is_event;  // false for the file_version record
  };

  // Before an event is taken: fails when closed or in error, and rotates
  // when the current file is full.
  absl::Status ReadyForEvent() {
    if (closed_) return absl::FailedPreconditionError(absl::StrCat("writing to closed ", path_));
    TBLOG_RETURN_IF_ERROR(error_);
    if (options_.max_file_bytes > 0 && file_bytes_ >= options_.max_file_bytes &&
        events_in_file_ > 0) {
      TBLOG_RETURN_IF_ERROR(Rotate());
    }
    return absl::OkStatus();
  }

  void AppendRecord(std::string_view payload, bool is_event) {
    const size_t at = buffer_.size();
    buffer_.resize_for_overwrite(at + FramedRecordSize(payload.size()));
    FrameRecordTo(payload, buffer_.data() + at);
    pending_.push_back({buffer_.size(), is_event});
    file_bytes_ += FramedRecordSize(payload.size());
  }

  // Opens a new file and puts its file_version record before whatever events
  // are still buffered, then writes them. Leaves the old file (if any) as is.
  absl::Status OpenNewFile() {
    // Its bytes are written or abandoned: nothing to report.
    if (file_) (void)file_->Close();
    file_.reset();
    const bool sync_dirs = options_.sync != SyncPolicy::kNever;
    std::vector<std::string> created;  // innermost first
    if (absl::Status status = MakeDirectories(&created); !status.ok()) return error_ = status;
    for (const std::string& dir : sync_dirs ? created : std::vector<std::string>{}) {
      NoteUnsyncedDir(Parent(dir));
    }
    if (!options_.defer_directory_syncs) {
      if (absl::Status status = SyncDirectories(); !status.ok()) return error_ = status;
    }
    const absl::Time now = options_.clock();
    path_ = absl::StrCat(dir_, "/",
                         absl::StrFormat("events.out.tfevents.%010d.%s.%d.%06d%s",
                                         absl::ToUnixSeconds(now), options_.hostname,
                                         static_cast<int>(::getpid()),
                                         g_file_counter.fetch_add(1), options_.filename_suffix));
    auto file = fs_.OpenWritable(path_, FileSystem::OpenMode::kCreateNew);
    if (!file.ok()) return error_ = file.status();
    file_ = *std::move(file);
    auto info = fs_.Stat(path_);
    if (!info.ok()) return error_ = info.status();
    identity_ = *info;
    ++stats_.files_opened;
    last_sync_ = now;
    events_in_file_ = 0;
    writeback_from_ = file_->Size();
    torn_ = false;
    error_ = absl::OkStatus();
    if (sync_dirs) {
      // The file's data gets fsynced on flush; its name needs the directory's.
      NoteUnsyncedDir(dir_);
      if (!options_.defer_directory_syncs) {
        if (absl::Status status = SyncDirectories(); !status.ok()) return error_ = status;
      }
    }

    // Keep the buffered events, drop a file_version meant for an older file.
    std::string carried;
    std::vector<PendingRecord> carried_records;
    size_t start = 0;
    for (const PendingRecord& record : pending_) {
      if (record.is_event) {
        carried.append(buffer_.view().substr(start, record.end - start));
        carried_records.push_back({carried.size(), true});
      }
      start = record.end;
    }
    buffer_.clear();
    pending_.clear();
    file_bytes_ = 0;
    tensorboard::Event version;
    version.set_wall_time(absl::ToDoubleSeconds(now - absl::UnixEpoch()));
    stats_.latest_file_time = std::max(stats_.latest_file_time, version.wall_time());
    version.set_file_version("brain.Event:2");
    version.mutable_source_metadata()->set_writer(options_.source_writer);
    AppendRecord(version.SerializeAsString(), /*is_event=*/false);
    const size_t base = buffer_.size();
    buffer_ += carried;
    file_bytes_ += carried.size();
    for (const PendingRecord& record : carried_records) {
      pending_.push_back({base + record.end, true});
    }
    // Write now so the new file is a valid event file from the start.
    return WriteBuffer();
  }

  absl::Status RecoverWithNewFile() {
    const absl::Status previous = error_;
    // A failed file that holds no event is litter (e.g. one attempt per
    // Flush while the disk stays full): remove it.
    if (file_ && events_in_file_ == 0 && FileStillAtPath() && fs_.Remove(path_).ok()) {
      torn_ = false;
    }
    // The old file stays in the run: a reader must find whole records only.
    // Until the partial one is cut, nothing moves on (the error stays).
    if (absl::Status cut = CutTornTail(); !cut.ok()) {
      return Annotate(cut, absl::StrCat("cutting a partial record after \"", previous.message(),
                                        "\""));
    }
    const absl::Status status = OpenNewFile();
    if (!status.ok()) {
      return Annotate(status, absl::StrCat("recovering from \"", previous.message(), "\""));
    }
    return status;
  }

  // Hands buffer_ to the OS. On failure the records not written whole stay
  // buffered for the next file, and the error becomes sticky.
  absl::Status WriteBuffer() {
    if (!error_.ok()) return error_;
    // Append retries short writes; on an error, Size() still counts the part
    // of the buffer that reached the file.
    const uint64_t before = file_->Size();
    const absl::Status status = file_->Append(buffer_);
    const size_t written = static_cast<size_t>(file_->Size() - before);
    // Forget the records that reached the file whole.
    size_t done = 0;
    while (done < pending_.size() && pending_[done].end <= written) {
      if (pending_[done].is_event) ++events_in_file_;
      ++done;
    }
    const size_t done_bytes = done == 0 ? 0 : pending_[done - 1].end;
    stats_.bytes_written += done_bytes;
    if (status.ok()) StartWriteback();
    buffer_.erase_front(done_bytes);
    // One large record grew the buffer past its size: give the memory back
    // (the daemon's budget counts a record's copy only until it is written).
    if (buffer_.empty() && buffer_.capacity() > 2 * options_.buffer_bytes) buffer_ = RawBytes();
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(done));
    for (PendingRecord& record : pending_) record.end -= done_bytes;
    if (!status.ok()) {
      ++stats_.write_errors;
      error_ = status;
      if (written > done_bytes) {
        // A short write (disk full, RLIMIT_FSIZE) left part of a record: cut
        // it now, while the file is still ours; a failed cut is retried
        // before the writer moves on (RecoverWithNewFile).
        torn_ = true;
        whole_size_ = before + done_bytes;
        (void)CutTornTail();
      }
    }
    return status;
  }

  // Hands the bytes written since the last call to the OS's writeback once
  // there are options_.writeback_bytes of them.
  void StartWriteback() {
    if (options_.writeback_bytes == 0 || options_.sync == SyncPolicy::kNever) return;
    const uint64_t size = file_->Size();
    if (size < writeback_from_ + options_.writeback_bytes) return;
    file_->StartWriteback(writeback_from_, size - writeback_from_);
    writeback_from_ = size;
  }

  // Cuts the current file back to its last whole record after a short write.
  absl::Status CutTornTail() {
    if (!torn_) return absl::OkStatus();
    TBLOG_RETURN_IF_ERROR(file_->Truncate(whole_size_));
    torn_ = false;
    ++stats_.partial_records_cut;
    return absl::OkStatus();
  }

  absl::Status MaybeSync(bool force) {
    const absl::Time now = options_.clock();
    const bool due = force || options_.sync == SyncPolicy::kOnFlush ||
                     (options_.sync == SyncPolicy::kInterval &&
                      now - last_sync_ >= options_.sync_interval);
    if (!due) return absl::OkStatus();
    if (absl::Status status = file_->Sync(); !status.ok()) {
      ++stats_.write_errors;
      return error_ = status;
    }
    // Then the deferred names: data called durable must be reachable after a
    // machine crash (EventFileOptions::defer_directory_syncs), and nothing is
    // called durable before both are done. After the file's: its journal
    // commit (ext4, xfs) took the names' changes along, so these cost next
    // to nothing, where before it each cost a commit of its own. A failure
    // leaves the file's tail as it was (not sticky): the next sync retries.
    if (absl::Status status = SyncDirectories(); !status.ok()) {
      ++stats_.write_errors;
      return status;
    }
    ++stats_.syncs;
    last_sync_ = now;
    return absl::OkStatus();
  }

  void NoteUnsyncedDir(std::string dir) {
    // Rotations between two fsyncs name the same directory again.
    if (std::find(unsynced_dirs_.begin(), unsynced_dirs_.end(), dir) == unsynced_dirs_.end()) {
      unsynced_dirs_.push_back(std::move(dir));
    }
  }

  // fsyncs the directories holding entries made since the last call (order
  // does not matter: nothing is called durable before all are done); a
  // failing one and those after it stay for a retry.
  absl::Status SyncDirectories() {
    while (!unsynced_dirs_.empty()) {
      TBLOG_RETURN_IF_ERROR(fs_.SyncDir(unsynced_dirs_.front()));
      unsynced_dirs_.erase(unsynced_dirs_.begin());
      ++stats_.directory_syncs;
    }
    return absl::OkStatus();
  }

  // Finishes the current file (written and, unless kNever, synced) and
  // starts the next one.
  absl::Status Rotate() {
    TBLOG_RETURN_IF_ERROR(WriteBuffer());
    if (options_.sync != SyncPolicy::kNever) TBLOG_RETURN_IF_ERROR(MaybeSync(/*force=*/true));
    return OpenNewFile();
  }

  // False when the path is gone or names another file than the one we hold.
  bool FileStillAtPath() const {
    auto info = fs_.Stat(path_);
    return info.ok() && info->device == identity_.device && info->inode == identity_.inode;
  }

  static std::string Parent(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
  }

  // Creates dir_ and its missing parents, outermost first; `created` lists
  // the ones this call made, innermost first. A directory made meanwhile by
  // someone else (another writer of the run) is fine.
  absl::Status MakeDirectories(std::vector<std::string>* created) {
    std::vector<std::string> missing;  // innermost first
    for (std::string dir = dir_; !dir.empty() && dir != "/" && dir != "." &&
                                 absl::IsNotFound(fs_.Stat(dir).status());
         dir = Parent(dir)) {
      missing.push_back(dir);
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      const absl::Status status = fs_.CreateDir(*it);
      if (status.ok()) {
        created->insert(created->begin(), *it);
      } else if (!absl::IsAlreadyExists(status)) {
        return status;
      }
    }
    return absl::OkStatus();
  }

  const std::string dir_;
  EventFileOptions options_;
  FileSystem& fs_;  // options_.file_system
  EventFileStats stats_;
  std::string path_;
  std::unique_ptr<WritableFile> file_;  // null before the first file and after Close()
  FileInfo identity_;                   // of the file at path_ when we created it
  RawBytes buffer_;                    // whole framed records not yet written
  std::vector<PendingRecord> pending_;  // the records in buffer_, in order
  uint64_t file_bytes_ = 0;            // current file: written + buffered
  uint64_t events_in_file_ = 0;        // events written whole to the current file
  uint64_t writeback_from_ = 0;        // current file: not yet handed to StartWriteback
  absl::Time last_sync_;
  absl::Status error_;  // sticky: the current file's tail is unknown
  // Directories whose new entries are not yet fsynced (SyncDirectories).
  std::vector<std::string> unsynced_dirs_;
  // The current file holds part of a record past whole_size_ (a short write
  // whose cut failed so far).
  bool torn_ = false;
  uint64_t whole_size_ = 0;
  bool closed_ = false;
  absl::Status close_status_;
};

absl::StatusOr<std::unique_ptr<EventFileWriter>> EventFileWriter::Create(
    std::string dir, EventFileOptions options) {
  auto impl = std::make_unique<Impl>(std::move(dir), std::move(options));
  TBLOG_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<EventFileWriter>(new EventFileWriter(std::move(impl)));
}

EventFileWriter::EventFileWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EventFileWriter::~EventFileWriter() { (void)impl_->Close(); }

absl::Status EventFileWriter::Write(const tensorboard::Event& event) {
  return impl_->WriteSerialized(event.SerializeAsString());
}

absl::Status EventFileWriter::WriteSerialized(std::string_view event_bytes) {
  return impl_->WriteSerialized(event_bytes);
}

absl::Status EventFileWriter::WriteSerializedRun(std::string_view bytes, size_t count,
                                                 absl::FunctionRef<size_t(size_t)> end_of,
                                                 size_t* accepted) {
  return impl_->WriteSerializedRun(bytes, count, end_of, accepted);
}

absl::Status EventFileWriter::Flush(bool sync) { return impl_->Flush(sync); }

absl::Status EventFileWriter::WriteOut() {
  // Cheap when idle: no stat of the file when there is nothing to hand over.
  if (!impl_->has_pending()) return absl::OkStatus();
  return impl_->WriteOut();
}

absl::Status EventFileWriter::Close() { return impl_->Close(); }

const std::string& EventFileWriter::current_path() const { return impl_->path(); }

const EventFileStats& EventFileWriter::stats() const { return impl_->stats(); }

}  // namespace tblog
