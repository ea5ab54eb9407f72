#include "engine/io/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "base/sync.h"

namespace tblog {
namespace {

// errno -> a status that names what was done to which path. ELOOP from
// O_NOFOLLOW is a refusal of the symlink, not an I/O error.
absl::Status PosixError(int error, std::string_view what, const std::string& path) {
  if (error == ELOOP) {
    return absl::FailedPreconditionError(
        absl::StrCat(Sv(what), " ", path, ": is a symlink (symlinks are not followed)"));
  }
  return absl::ErrnoToStatus(error, absl::StrCat(Sv(what), " ", path));
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, uint64_t position)
      : path_(std::move(path)), fd_(fd), position_(position) {}
  ~PosixWritableFile() override { (void)Close(); }

  absl::Status Append(std::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(position_));
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError(errno, "writing", path_);
      }
      position_ += static_cast<uint64_t>(n);
      data.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  absl::Status Truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      return PosixError(errno, absl::StrCat("truncating to ", size, " bytes"), path_);
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (::fdatasync(fd_) != 0) return PosixError(errno, "syncing", path_);
    return absl::OkStatus();
  }

  void StartWriteback(uint64_t offset, uint64_t length) override {
#if defined(__linux__)
    // Errors (EIO) come back from the next fdatasync, which is what counts.
    (void)::sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(length),
                            SYNC_FILE_RANGE_WRITE);
#else
    (void)offset;
    (void)length;
#endif
  }

  absl::Status Close() override {
    if (fd_ < 0) return absl::OkStatus();
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) return PosixError(errno, "closing", path_);
    return absl::OkStatus();
  }

  uint64_t Size() const override { return position_; }

 private:
  const std::string path_;
  int fd_;
  uint64_t position_;
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixReadableFile() override { ::close(fd_); }

  absl::StatusOr<size_t> ReadAt(uint64_t offset, char* to, size_t n) override {
    size_t done = 0;
    while (done < n) {
      const ssize_t got = ::pread(fd_, to + done, n - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        return PosixError(errno, absl::StrCat("reading at offset ", offset + done, " of"), path_);
      }
      if (got == 0) break;  // the end of the file, for now
      done += static_cast<size_t>(got);
    }
    return done;
  }

  absl::StatusOr<uint64_t> Size() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return PosixError(errno, "stat of", path_);
    return static_cast<uint64_t>(st.st_size);
  }

 private:
  const std::string path_;
  const int fd_;
};

class PosixFileSystem final : public FileSystem {
 public:
  explicit PosixFileSystem(FileModes modes) : modes_(modes) {}

  absl::Status CreateDir(const std::string& path) override {
    if (::mkdir(path.c_str(), modes_.dir) != 0) return PosixError(errno, "creating directory", path);
    // mkdir's mode was narrowed by the umask: set it exactly, on the
    // directory just made (O_NOFOLLOW: not on a symlink put in its place).
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return PosixError(errno, "opening new directory", path);
    absl::Status status;
    if (::fchmod(fd, modes_.dir) != 0) status = PosixError(errno, "setting the mode of", path);
    ::close(fd);
    return status;
  }

  absl::Status SyncDir(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return PosixError(errno, "opening directory", path);
    absl::Status status;
    if (::fsync(fd) != 0) status = PosixError(errno, "syncing directory", path);
    ::close(fd);
    return status;
  }

  absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path,
                                                             OpenMode mode) override {
    constexpr int kFlags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC;
    // Created here or opened as it was: only a file made here gets the mode
    // (an existing one keeps its own), so creation is tried first. Twice,
    // for a file removed between the two opens.
    int fd = -1;
    bool created = false;
    for (int attempt = 0; attempt < 2 && fd < 0; ++attempt) {
      fd = ::open(path.c_str(), kFlags | O_CREAT | O_EXCL, modes_.file);
      created = fd >= 0;
      if (fd >= 0 || errno != EEXIST || mode == OpenMode::kCreateNew) break;
      fd = ::open(path.c_str(), kFlags);
      if (fd < 0 && errno != ENOENT) break;
    }
    if (fd < 0) return PosixError(errno, "creating", path);
    // open's mode was narrowed by the umask: set it exactly.
    if (created && ::fchmod(fd, modes_.file) != 0) {
      const int error = errno;
      ::close(fd);
      return PosixError(error, "setting the mode of", path);
    }
    uint64_t position = 0;
    if (mode == OpenMode::kAppend) {
      struct stat st {};
      if (::fstat(fd, &st) != 0) {
        const int error = errno;
        ::close(fd);
        return PosixError(error, "stat of", path);
      }
      position = static_cast<uint64_t>(st.st_size);
    }
    return std::make_unique<PosixWritableFile>(path, fd, position);
  }

  absl::StatusOr<std::unique_ptr<ReadableFile>> OpenReadable(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PosixError(errno, "opening for reading", path);
    return std::make_unique<PosixReadableFile>(path, fd);
  }

  absl::Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return PosixError(errno, "removing", path);
    return absl::OkStatus();
  }

  absl::StatusOr<FileInfo> Stat(const std::string& path) override {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return PosixError(errno, "stat of", path);
    FileInfo info;
    info.type = S_ISREG(st.st_mode)    ? FileInfo::Type::kRegular
                : S_ISDIR(st.st_mode)  ? FileInfo::Type::kDirectory
                : S_ISLNK(st.st_mode)  ? FileInfo::Type::kSymlink
                : S_ISSOCK(st.st_mode) ? FileInfo::Type::kSocket
                                       : FileInfo::Type::kOther;
    info.size = static_cast<uint64_t>(st.st_size);
    info.device = static_cast<uint64_t>(st.st_dev);
    info.inode = static_cast<uint64_t>(st.st_ino);
    return info;
  }

  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return PosixError(errno, "listing", path);
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* entry = ::readdir(dir)) {
      const std::string_view name = entry->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    const int error = errno;
    ::closedir(dir);
    if (error != 0) return PosixError(error, "listing", path);
    return names;
  }

 private:
  const FileModes modes_;
};

}  // namespace

FileSystem* FileSystem::Default() {
  static PosixFileSystem* const fs = new PosixFileSystem(FileModes{});  // never destroyed: no exit order
  return fs;
}

FileSystem* FileSystem::Posix(FileModes modes) {
  // The owner keeps rw- on files and rwx on directories: this file system
  // reads back, rewrites and lists what it made.
  modes.file = (modes.file & 0777) | 0600;
  modes.dir = (modes.dir & 0777) | 0700;
  if (modes == FileModes{}) return Default();
  // One object per modes, never destroyed (as Default's): callers keep the
  // pointer for the life of the process. Few distinct modes exist in one.
  static Mutex mu;
  static auto* const by_modes = new std::map<std::pair<uint32_t, uint32_t>, PosixFileSystem*>();
  MutexLock lock(&mu);
  PosixFileSystem*& fs = (*by_modes)[{modes.file, modes.dir}];
  if (fs == nullptr) fs = new PosixFileSystem(modes);
  return fs;
}

absl::StatusOr<std::string> ReadFileToString(FileSystem& fs, const std::string& path) {
  auto info = fs.Stat(path);
  if (!info.ok()) return info.status();
  if (info->type != FileInfo::Type::kRegular) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a regular file (symlinks are not followed)"));
  }
  auto file = fs.OpenReadable(path);
  if (!file.ok()) return file.status();
  std::string text;
  char buffer[8192];
  for (;;) {
    auto got = (*file)->ReadAt(text.size(), buffer, sizeof buffer);
    if (!got.ok()) return got.status();
    text.append(buffer, *got);
    if (*got < sizeof buffer) return text;
  }
}

absl::Status RewriteFile(FileSystem& fs, const std::string& path, std::string_view contents,
                         bool sync) {
  auto file = fs.OpenWritable(path, FileSystem::OpenMode::kOverwrite);
  if (!file.ok()) return file.status();
  TBLOG_RETURN_IF_ERROR((*file)->Append(contents));
  TBLOG_RETURN_IF_ERROR((*file)->Truncate(contents.size()));
  if (sync) TBLOG_RETURN_IF_ERROR((*file)->Sync());
  return (*file)->Close();
}

absl::Status TruncateFile(FileSystem& fs, const std::string& path, uint64_t length) {
  auto info = fs.Stat(path);
  if (!info.ok()) return info.status();
  if (info->type != FileInfo::Type::kRegular) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a regular file (symlinks are not followed)"));
  }
  auto file = fs.OpenWritable(path, FileSystem::OpenMode::kOverwrite);
  if (!file.ok()) return file.status();
  TBLOG_RETURN_IF_ERROR((*file)->Truncate(length));
  TBLOG_RETURN_IF_ERROR((*file)->Sync());
  return (*file)->Close();
}

}  // namespace tblog
