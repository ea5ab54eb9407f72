// A FileSystem for tests that wraps another one (real files in a temp dir)
// and makes chosen calls fail: the n-th Append with ENOSPC, a Sync with EIO,
// a directory creation, a truncate... Append faults may let a prefix of the
// data through first (a short write, then the error), as a disk that fills up
// in the middle of a write does. Every call is counted per kind, faulted or
// not, so a test can also assert what the code did.
//
// Unlike RLIMIT_FSIZE (file_size_limit.h) it is per object, so tests running
// in parallel threads do not disturb each other, and it reaches every kind of
// call, not only writes.
//
// Thread safety: thread-safe (the daemon's workers call it concurrently).
// Ownership: `base` is borrowed and outlives this; the files it opens hold a
// pointer back to it, so it outlives them too.
#ifndef TBLOG_TESTS_SUPPORT_FAULT_FILE_SYSTEM_H_
#define TBLOG_TESTS_SUPPORT_FAULT_FILE_SYSTEM_H_

#include <cerrno>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "base/sync.h"
#include "engine/io/file_system.h"

namespace tblog {

// The kinds of calls, one per method of FileSystem and of its files.
enum class FileOp {
  kCreateDir,
  kSyncDir,
  kOpenWritable,
  kOpenReadable,
  kRemove,
  kStat,
  kListDir,
  kAppend,
  kTruncate,
  kSync,
  kClose,
  kRead,
};

// One armed fault: Fault(FileOp::kAppend, ENOSPC).Skip(5) fails the 6th
// Append from now, once.
struct Fault {
  static constexpr int kForever = -1;

  Fault(FileOp fault_op, int fault_error) : op(fault_op), error(fault_error) {}
  // Matching calls that pass before the first failure (0: the next fails).
  Fault& Skip(int calls) { skip = calls; return *this; }
  // Matching calls that fail then; kForever: every one from then on.
  Fault& Times(int calls) { times = calls; return *this; }
  // kAppend: bytes of the data that reach the file before the error.
  Fault& KeepBytes(size_t bytes) { keep_bytes = bytes; return *this; }
  // Only calls on a path containing `part`.
  Fault& OnPathsWith(std::string part) { path_contains = std::move(part); return *this; }

  FileOp op;
  int error;  // errno of the failure
  int skip = 0;
  int times = 1;
  size_t keep_bytes = 0;
  std::string path_contains;  // "" = any path
};

class FaultFileSystem : public FileSystem {
 public:
  explicit FaultFileSystem(FileSystem* base = FileSystem::Default()) : base_(base) {}

  // Adds a fault; several may be armed at once (the first that matches a
  // call decides it).
  void Inject(Fault fault) {
    MutexLock lock(&mu_);
    faults_.push_back(std::move(fault));
  }
  // Disarms every fault (the disk has space again).
  void Clear() {
    MutexLock lock(&mu_);
    faults_.clear();
  }
  // Calls of kind `op` so far, failed ones included.
  int calls(FileOp op) const {
    MutexLock lock(&mu_);
    auto it = calls_.find(op);
    return it == calls_.end() ? 0 : it->second;
  }
  // Calls that failed because of a fault.
  int failures() const {
    MutexLock lock(&mu_);
    return failures_;
  }

  absl::Status CreateDir(const std::string& path) override {
    TBLOG_RETURN_IF_ERROR(Check(FileOp::kCreateDir, "creating directory", path));
    return base_->CreateDir(path);
  }
  absl::Status SyncDir(const std::string& path) override {
    TBLOG_RETURN_IF_ERROR(Check(FileOp::kSyncDir, "syncing directory", path));
    return base_->SyncDir(path);
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path,
                                                             OpenMode mode) override {
    TBLOG_RETURN_IF_ERROR(Check(FileOp::kOpenWritable, "creating", path));
    auto file = base_->OpenWritable(path, mode);
    if (!file.ok()) return file.status();
    return std::unique_ptr<WritableFile>(new Writable(this, path, *std::move(file)));
  }
  absl::StatusOr<std::unique_ptr<ReadableFile>> OpenReadable(const std::string& path) override {
    TBLOG_RETURN_IF_ERROR(Check(FileOp::kOpenReadable, "opening for reading", path));
    auto file = base_->OpenReadable(path);
    if (!file.ok()) return file.status();
    return std::unique_ptr<ReadableFile>(new Readable(this, path, *std::move(file)));
  }
  absl::Status Remove(const std::string& path) override {
    TBLOG_RETURN_IF_ERROR(Check(FileOp::kRemove, "removing", path));
    return base_->Remove(path);
  }
  absl::StatusOr<FileInfo> Stat(const std::string& path) override {
    TBLOG_RETURN_IF_ERROR(Check(FileOp::kStat, "stat of", path));
    return base_->Stat(path);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    TBLOG_RETURN_IF_ERROR(Check(FileOp::kListDir, "listing", path));
    return base_->ListDir(path);
  }

 private:
  class Writable : public WritableFile {
   public:
    Writable(FaultFileSystem* fs, std::string path, std::unique_ptr<WritableFile> base)
        : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}
    absl::Status Append(std::string_view data) override {
      size_t keep = 0;
      const absl::Status fault = fs_->Check(FileOp::kAppend, "writing", path_, &keep);
      if (fault.ok()) return base_->Append(data);
      if (keep > 0) TBLOG_RETURN_IF_ERROR(base_->Append(data.substr(0, keep)));
      return fault;
    }
    absl::Status Truncate(uint64_t size) override {
      TBLOG_RETURN_IF_ERROR(fs_->Check(FileOp::kTruncate, "truncating", path_));
      return base_->Truncate(size);
    }
    absl::Status Sync() override {
      TBLOG_RETURN_IF_ERROR(fs_->Check(FileOp::kSync, "syncing", path_));
      return base_->Sync();
    }
    absl::Status Close() override {
      const absl::Status closed = base_->Close();  // closed even when the fault says not
      TBLOG_RETURN_IF_ERROR(fs_->Check(FileOp::kClose, "closing", path_));
      return closed;
    }
    uint64_t Size() const override { return base_->Size(); }

   private:
    FaultFileSystem* const fs_;
    const std::string path_;
    const std::unique_ptr<WritableFile> base_;
  };

  class Readable : public ReadableFile {
   public:
    Readable(FaultFileSystem* fs, std::string path, std::unique_ptr<ReadableFile> base)
        : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}
    absl::StatusOr<size_t> ReadAt(uint64_t offset, char* to, size_t n) override {
      TBLOG_RETURN_IF_ERROR(fs_->Check(FileOp::kRead, "reading", path_));
      return base_->ReadAt(offset, to, n);
    }
    absl::StatusOr<uint64_t> Size() override { return base_->Size(); }

   private:
    FaultFileSystem* const fs_;
    const std::string path_;
    const std::unique_ptr<ReadableFile> base_;
  };

  // Counts the call; returns the error of the first armed fault that
  // matches it, as the POSIX file system words it ("writing <path>: ...").
  absl::Status Check(FileOp op, std::string_view what, const std::string& path,
                     size_t* keep_bytes = nullptr) {
    MutexLock lock(&mu_);
    ++calls_[op];
    for (Fault& fault : faults_) {
      if (fault.op != op || fault.times == 0 ||
          path.find(fault.path_contains) == std::string::npos) {
        continue;
      }
      if (fault.skip > 0) {
        --fault.skip;
        continue;
      }
      if (fault.times > 0) --fault.times;
      ++failures_;
      if (keep_bytes != nullptr) *keep_bytes = fault.keep_bytes;
      return absl::ErrnoToStatus(fault.error, absl::StrCat(Sv(what), " ", path));
    }
    return absl::OkStatus();
  }

  FileSystem* const base_;
  mutable Mutex mu_;
  std::vector<Fault> faults_ ABSL_GUARDED_BY(mu_);
  std::map<FileOp, int> calls_ ABSL_GUARDED_BY(mu_);
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tblog

#endif  // TBLOG_TESTS_SUPPORT_FAULT_FILE_SYSTEM_H_
