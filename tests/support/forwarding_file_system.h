// A FileSystem that passes every call to another one, and a WritableFile that
// does the same: a test derives from them and overrides only the calls it
// observes (which fsyncs reach the disk, in what order; the writeback hints
// a file gets), leaving the rest to the real file system underneath.
//
// Thread safety: as the file system and files wrapped. Ownership: `base` is
// borrowed and outlives the ForwardingFileSystem; a ForwardingWritableFile
// owns the file it wraps.
#ifndef TBLOG_TESTS_SUPPORT_FORWARDING_FILE_SYSTEM_H_
#define TBLOG_TESTS_SUPPORT_FORWARDING_FILE_SYSTEM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/io/file_system.h"

namespace tblog::testing {

class ForwardingWritableFile : public WritableFile {
 public:
  explicit ForwardingWritableFile(std::unique_ptr<WritableFile> base) : base_(std::move(base)) {}

  absl::Status Append(std::string_view data) override { return base_->Append(data); }
  absl::Status Truncate(uint64_t size) override { return base_->Truncate(size); }
  absl::Status Sync() override { return base_->Sync(); }
  void StartWriteback(uint64_t offset, uint64_t length) override {
    base_->StartWriteback(offset, length);
  }
  absl::Status Close() override { return base_->Close(); }
  uint64_t Size() const override { return base_->Size(); }

 private:
  std::unique_ptr<WritableFile> base_;
};

class ForwardingFileSystem : public FileSystem {
 public:
  explicit ForwardingFileSystem(FileSystem* base = FileSystem::Default()) : base_(base) {}

  absl::Status CreateDir(const std::string& path) override { return base_->CreateDir(path); }
  absl::Status SyncDir(const std::string& path) override { return base_->SyncDir(path); }
  // Opens through `base`, then hands the file to Wrap.
  absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path,
                                                             OpenMode mode) override {
    auto file = base_->OpenWritable(path, mode);
    if (!file.ok()) return file.status();
    return Wrap(path, *std::move(file));
  }
  absl::StatusOr<std::unique_ptr<ReadableFile>> OpenReadable(const std::string& path) override {
    return base_->OpenReadable(path);
  }
  absl::Status Remove(const std::string& path) override { return base_->Remove(path); }
  absl::StatusOr<FileInfo> Stat(const std::string& path) override { return base_->Stat(path); }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    return base_->ListDir(path);
  }

 protected:
  // The file OpenWritable returns for `file` opened at `path`: `file` itself
  // unless a test wraps it (in a ForwardingWritableFile of its own).
  virtual std::unique_ptr<WritableFile> Wrap(const std::string& path,
                                             std::unique_ptr<WritableFile> file) {
    (void)path;
    return file;
  }

 private:
  FileSystem* base_;
};

}  // namespace tblog::testing

#endif  // TBLOG_TESTS_SUPPORT_FORWARDING_FILE_SYSTEM_H_
