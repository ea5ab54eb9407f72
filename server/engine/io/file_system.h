// The one seam between tblog and the file system. The event file writer, the
// record reader and the daemon (run directories, side files, checkpoints,
// resume repair, the unix socket) do all their file I/O through a FileSystem,
// so a test can put a fault-injecting one in its place
// (tests/support/fault_file_system.h) while production uses Default(): plain
// POSIX calls, one system call per method, no buffering. The event file hot
// path is one Append per flushed 256 KiB buffer, so the virtual call costs
// nothing measurable.
//
// Errors are values built from errno that name the operation and the path:
// "creating /logs/run/train: No space left on device". The code follows
// absl::ErrnoToStatus, so a name that exists answers ALREADY_EXISTS and a
// missing one NOT_FOUND; a symlink where one is refused answers
// FAILED_PRECONDITION (a refusal, not an I/O error: retrying will not help).
//
// Modes: what the POSIX file system creates gets exactly the modes of its
// FileModes (0644 files, 0755 directories unless Posix() is given others),
// whatever the process umask is, so TensorBoard running as another user can
// read the logs. Files and directories that exist keep their modes.
//
// Thread safety: a FileSystem is safe to call from any thread. A WritableFile
// or ReadableFile belongs to one user at a time.
#ifndef TBLOG_ENGINE_IO_FILE_SYSTEM_H_
#define TBLOG_ENGINE_IO_FILE_SYSTEM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tblog {

// The permission bits (0..0777) the POSIX file system gives the files and
// directories it creates, set with fchmod after creation, so the umask does
// not narrow them.
struct FileModes {
  uint32_t file = 0644;
  uint32_t dir = 0755;

  friend bool operator==(const FileModes&, const FileModes&) = default;
};

// What Stat says of a name. Symlinks are reported, never followed.
struct FileInfo {
  enum class Type { kRegular, kDirectory, kSymlink, kSocket, kOther };
  Type type = Type::kOther;
  uint64_t size = 0;
  // Identity: a file moved away and replaced by another at the same path
  // has another (device, inode).
  uint64_t device = 0;
  uint64_t inode = 0;
};

// A file open for writing at a position that only moves forward. Destroying
// it closes it, ignoring the error (call Close() to see it).
class WritableFile {
 public:
  virtual ~WritableFile() = default;

  // Writes all of `data` at the write position, retrying short writes. On an
  // error part of `data` may have reached the file: Size() counts it.
  virtual absl::Status Append(std::string_view data) = 0;
  // Cuts (or extends) the file to `size` bytes; the write position stays.
  virtual absl::Status Truncate(uint64_t size) = 0;
  // Makes the written data durable (fdatasync).
  virtual absl::Status Sync() = 0;
  // Asks the OS to start writing [offset, offset + length) to the disk and
  // returns without waiting (sync_file_range's SYNC_FILE_RANGE_WRITE): a
  // hint, so that a later Sync() finds little left to write. Promises no
  // durability; an error shows at the next Sync(). By default, nothing.
  virtual void StartWriteback(uint64_t offset, uint64_t length) {
    (void)offset;
    (void)length;
  }
  // Closes the file. Idempotent; later Appends fail.
  virtual absl::Status Close() = 0;
  // The write position: the file's size at open (kAppend) or 0 (kCreateNew,
  // kOverwrite), plus every byte Append has put in the file since.
  virtual uint64_t Size() const = 0;
};

// A file open for reading at any offset; it may grow while it is read.
class ReadableFile {
 public:
  virtual ~ReadableFile() = default;

  // Reads up to `n` bytes at `offset` into `to`. Fewer only at the end of
  // the file (0 past it). Errors name the path and the offset.
  virtual absl::StatusOr<size_t> ReadAt(uint64_t offset, char* to, size_t n) = 0;
  // The file's size now.
  virtual absl::StatusOr<uint64_t> Size() = 0;
};

class FileSystem {
 public:
  enum class OpenMode {
    kCreateNew,  // create; ALREADY_EXISTS when the name exists
    kAppend,     // create if missing; write after the existing bytes
    kOverwrite,  // create if missing; write from offset 0 over the old bytes
  };

  // The POSIX file system, creating with FileModes{}. Never null; lives as
  // long as the process.
  static FileSystem* Default();
  // The POSIX file system creating with `modes` (bits above 0777 dropped;
  // the owner's rw- on files and rwx on directories added: the file system
  // needs them). Never null; lives as long as the process; the same object for
  // equal modes, Default() for FileModes{}. Thread-safe.
  static FileSystem* Posix(FileModes modes);

  virtual ~FileSystem() = default;

  // Creates directory `path` (FileModes::dir for the POSIX file system), one
  // level. ALREADY_EXISTS when the name exists, whatever it is.
  virtual absl::Status CreateDir(const std::string& path) = 0;
  // fsyncs directory `path`: the entries created or removed in it survive a
  // machine crash.
  virtual absl::Status SyncDir(const std::string& path) = 0;
  // Opens `path` for writing (FileModes::file when this creates it; an
  // existing file keeps its mode). Never follows a symlink at `path`
  // (FAILED_PRECONDITION). The caller owns the file.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path,
                                                                     OpenMode mode) = 0;
  // Opens `path` for reading, following symlinks. The caller owns the file.
  virtual absl::StatusOr<std::unique_ptr<ReadableFile>> OpenReadable(const std::string& path) = 0;
  // Removes the name `path` (not a directory).
  virtual absl::Status Remove(const std::string& path) = 0;
  // What `path` is, without following a symlink there. NOT_FOUND if nothing.
  virtual absl::StatusOr<FileInfo> Stat(const std::string& path) = 0;
  // The names in directory `path`, "." and ".." excepted, in no order.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;
};

// Whole-file helpers, built on the interface (so a fault injected into one
// of its calls shows through them).

// The contents of regular file `path`; NOT_FOUND when missing,
// FAILED_PRECONDITION for a symlink or anything but a regular file.
absl::StatusOr<std::string> ReadFileToString(FileSystem& fs, const std::string& path);

// Replaces the contents of `path` with `contents`: writes them from offset 0
// over the old bytes, then cuts the file to their length, then syncs when
// `sync`. A failure part way leaves new bytes followed by old ones, never an
// empty file (a reader that checks a CRC, as the checkpoint's does, tells).
absl::Status RewriteFile(FileSystem& fs, const std::string& path, std::string_view contents,
                         bool sync);

// Cuts existing file `path` (no symlink) to `length` bytes and syncs it.
absl::Status TruncateFile(FileSystem& fs, const std::string& path, uint64_t length);

}  // namespace tblog

#endif  // TBLOG_ENGINE_IO_FILE_SYSTEM_H_
