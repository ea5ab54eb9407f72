#include "engine/io/event_file_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("opening directory ", dir));
  absl::Status status;
  if (::fsync(fd) != 0) status = absl::ErrnoToStatus(errno, absl::StrCat("syncing directory ", dir));
  ::close(fd);
  return status;
}

class EventFileWriter::Impl {
 public:
  Impl(std::string dir, EventFileOptions options)
      : dir_(std::move(dir)), options_(std::move(options)) {
    if (options_.hostname.empty()) options_.hostname = LocalHostName();
  }
  ~Impl() {
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Start() { return OpenNewFile(); }

  absl::Status WriteSerialized(std::string_view event_bytes) {
    if (closed_) return absl::FailedPreconditionError(absl::StrCat("writing to closed ", path_));
    TBLOG_RETURN_IF_ERROR(error_);
    if (options_.max_file_bytes > 0 && file_bytes_ >= options_.max_file_bytes &&
        events_in_file_ > 0) {
      TBLOG_RETURN_IF_ERROR(Rotate());
    }
    AppendRecord(event_bytes, /*is_event=*/true);
    ++stats_.records_written;
    // Accepted: a failure here leaves the event buffered for the next file,
    // and error_ reports it from the next call on.
    if (buffer_.size() >= options_.buffer_bytes) (void)WriteBuffer();
    return absl::OkStatus();
  }

  absl::Status Flush(bool sync) {
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
    TBLOG_RETURN_IF_ERROR(WriteBuffer());
    return MaybeSync(sync);
  }

  absl::Status Close() {
    if (closed_) return close_status_;
    absl::Status status = Flush(/*sync=*/false);
    if (fd_ >= 0 && ::close(fd_) != 0 && status.ok()) {
      status = absl::ErrnoToStatus(errno, absl::StrCat("closing ", path_));
    }
    fd_ = -1;
    closed_ = true;
    close_status_ = status;
    return status;
  }

  const std::string& path() const { return path_; }
  const EventFileStats& stats() const { return stats_; }

 private:
  // A whole record waiting in buffer_, which it ends at `end`.
  struct PendingRecord {
    size_t end;
    bool is_event;  // false for the file_version record
  };

  void AppendRecord(std::string_view payload, bool is_event) {
    AppendFramedRecord(payload, &buffer_);
    pending_.push_back({buffer_.size(), is_event});
    file_bytes_ += FramedRecordSize(payload.size());
  }

  // Opens a new file and puts its file_version record before whatever events
  // are still buffered, then writes them. Leaves the old file (if any) as is.
  absl::Status OpenNewFile() {
    if (fd_ >= 0) {
      ::close(fd_);  // its bytes are written or abandoned; nothing to report
      fd_ = -1;
    }
    std::error_code ec;
    const bool sync_dirs = options_.sync != SyncPolicy::kNever;
    std::vector<std::filesystem::path> missing;  // innermost first
    for (std::filesystem::path p = dir_; sync_dirs && !p.empty() && p != p.parent_path() &&
                                         !std::filesystem::exists(p, ec);
         p = p.parent_path()) {
      missing.push_back(p);
    }
    std::filesystem::create_directories(dir_, ec);
    if (ec) {
      return error_ = absl::InternalError(
                 absl::StrCat("creating directory ", dir_, ": ", ec.message()));
    }
    for (const std::filesystem::path& created : missing) {
      if (absl::Status status = SyncDirectory(created.parent_path().string()); !status.ok()) {
        return error_ = status;
      }
      ++stats_.directory_syncs;
    }
    const absl::Time now = options_.clock();
    path_ = absl::StrCat(dir_, "/",
                         absl::StrFormat("events.out.tfevents.%010d.%s.%d.%06d%s",
                                         absl::ToUnixSeconds(now), options_.hostname,
                                         static_cast<int>(::getpid()),
                                         g_file_counter.fetch_add(1), options_.filename_suffix));
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      return error_ = absl::ErrnoToStatus(errno, absl::StrCat("creating event file ", path_));
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      return error_ = absl::ErrnoToStatus(errno, absl::StrCat("stat of new event file ", path_));
    }
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    ++stats_.files_opened;
    last_sync_ = now;
    events_in_file_ = 0;
    error_ = absl::OkStatus();
    if (sync_dirs) {
      // The file's data gets fsynced on flush; its name needs the directory's.
      if (absl::Status status = SyncDirectory(dir_); !status.ok()) return error_ = status;
      ++stats_.directory_syncs;
    }

    // Keep the buffered events, drop a file_version meant for an older file.
    std::string carried;
    std::vector<PendingRecord> carried_records;
    size_t start = 0;
    for (const PendingRecord& record : pending_) {
      if (record.is_event) {
        carried.append(buffer_, start, record.end - start);
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
    if (fd_ >= 0 && events_in_file_ == 0 && FileStillAtPath()) ::unlink(path_.c_str());
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
    size_t written = 0;
    absl::Status status;
    while (written < buffer_.size()) {
      const ssize_t n = ::write(fd_, buffer_.data() + written, buffer_.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        status = absl::ErrnoToStatus(errno, absl::StrCat("writing event file ", path_));
        break;
      }
      written += static_cast<size_t>(n);
    }
    stats_.bytes_written += written;
    // Forget the records that reached the file whole.
    size_t done = 0;
    while (done < pending_.size() && pending_[done].end <= written) {
      if (pending_[done].is_event) ++events_in_file_;
      ++done;
    }
    const size_t done_bytes = done == 0 ? 0 : pending_[done - 1].end;
    buffer_.erase(0, done_bytes);
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(done));
    for (PendingRecord& record : pending_) record.end -= done_bytes;
    if (!status.ok()) {
      ++stats_.write_errors;
      error_ = status;
    }
    return status;
  }

  absl::Status MaybeSync(bool force) {
    const absl::Time now = options_.clock();
    const bool due = force || options_.sync == SyncPolicy::kOnFlush ||
                     (options_.sync == SyncPolicy::kInterval &&
                      now - last_sync_ >= options_.sync_interval);
    if (!due) return absl::OkStatus();
    if (::fdatasync(fd_) != 0) {
      ++stats_.write_errors;
      return error_ = absl::ErrnoToStatus(errno, absl::StrCat("syncing event file ", path_));
    }
    ++stats_.syncs;
    last_sync_ = now;
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
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return false;
    return st.st_dev == dev_ && st.st_ino == ino_;
  }

  const std::string dir_;
  EventFileOptions options_;
  EventFileStats stats_;
  std::string path_;
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::string buffer_;                 // whole framed records not yet written
  std::vector<PendingRecord> pending_;  // the records in buffer_, in order
  uint64_t file_bytes_ = 0;            // current file: written + buffered
  uint64_t events_in_file_ = 0;        // events written whole to the current file
  absl::Time last_sync_;
  absl::Status error_;  // sticky: the current file's tail is unknown
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

absl::Status EventFileWriter::Flush(bool sync) { return impl_->Flush(sync); }

absl::Status EventFileWriter::Close() { return impl_->Close(); }

const std::string& EventFileWriter::current_path() const { return impl_->path(); }

const EventFileStats& EventFileWriter::stats() const { return impl_->stats(); }

}  // namespace tblog
