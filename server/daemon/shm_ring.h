// A client's shared-memory ring, as the daemon sees it: a sealed memfd the
// client handed over the side socket (shm_socket.h), mapped read-only. A
// Tensor of the client's Write stream may then name a slice of it
// (tblog.proto, Tensor.shm) instead of carrying its bytes, and the converters
// read the elements straight from the mapping.
//
// Why a sealed memfd passed with SCM_RIGHTS rather than a file in a shared
// memory-backed volume: the daemon maps exactly what it was handed (no path
// to race on or to point elsewhere), and F_SEAL_SHRINK guarantees that the
// client can never truncate the file under the mapping, which would make the
// daemon's next read of a slice a SIGBUS. A plain file in a tmpfs volume
// offers no such guarantee. Passing an fd also proves the client is on this
// host: a remote client cannot.
//
// What a client can still do, and why it is harmless: it can rewrite a slice
// while the daemon reads it. The converters that take slices (histogram
// values, image pixels, embedding matrices: ViewTensor's allow_shm) read
// every element as plain data and never index memory by it without
// clamping, so such a record logs garbage but never crashes the daemon.
#ifndef TBLOG_DAEMON_SHM_RING_H_
#define TBLOG_DAEMON_SHM_RING_H_

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

// One mapped ring. Immutable after Map, so thread-safe; the mapping is
// dropped with the object (shared by the stream that bound it and by the
// conversions that read it, so it outlives both).
class ShmRing {
 public:
  // Maps `fd` (taken: closed whatever the outcome) read-only, after checking
  // that it is a memfd sealed against shrinking (F_SEAL_SHRINK) that holds
  // at least `declared_bytes` (> 0), and maps that many. INVALID_ARGUMENT says what was wrong;
  // INTERNAL when mmap fails.
  static absl::StatusOr<std::unique_ptr<ShmRing>> Map(int fd, uint64_t declared_bytes);

  ~ShmRing();
  ShmRing(const ShmRing&) = delete;
  ShmRing& operator=(const ShmRing&) = delete;

  size_t size() const { return size_; }
  // Whether `info` (an fstat) is the file this ring maps: a growth
  // (ShmRings::Grow) must hand over the same memfd.
  bool IsFile(const struct stat& info) const {
    return info.st_dev == device_ && info.st_ino == inode_;
  }

  // The bytes [offset, offset + length) of the ring; INVALID_ARGUMENT
  // "<field>: shm: ..." when they are not inside it. The view borrows the
  // mapping: the caller keeps the ring alive while it reads.
  absl::StatusOr<std::string_view> Slice(const v1::ShmSlice& slice, std::string_view field) const;

 private:
  ShmRing(const std::byte* base, size_t size, dev_t device, ino_t inode)
      : base_(base), size_(size), device_(device), inode_(inode) {}

  const std::byte* const base_;
  const size_t size_;
  const dev_t device_;
  const ino_t inode_;
};

// Finds the ring a Write stream bound under its token (ShmRings, in the
// daemon). Thread-safe.
class ShmRingLookup {
 public:
  virtual ~ShmRingLookup() = default;
  // The ring bound to a stream under `token`, or null (unknown, or its
  // stream has ended).
  virtual std::shared_ptr<const ShmRing> FindBound(std::string_view token) const = 0;
};

// The ring the converters on this thread resolve Tensor.shm slices against,
// for the lifetime of the object (RecordConverter::ConvertBatch sets it for
// each batch of a stream with a ring). A thread-local rather than a
// parameter, so that every converter reaches it through ViewTensor without
// each of them passing it on. Nests; not movable.
class ScopedShmRing {
 public:
  explicit ScopedShmRing(const ShmRing* ring);
  ~ScopedShmRing();
  ScopedShmRing(const ScopedShmRing&) = delete;
  ScopedShmRing& operator=(const ScopedShmRing&) = delete;

  // The innermost ring of this thread, or null.
  static const ShmRing* Current();

 private:
  const ShmRing* const previous_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_SHM_RING_H_
