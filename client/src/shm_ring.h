// ShmRing: the C++ client's side of tblogd's shared-memory path (tblog.proto,
// "Shared-memory rings"). A sealed, pre-faulted memfd the client writes
// tensors into; the daemon maps the same pages after the client hands the fd
// over its --shm-socket, and a Tensor then names a slice (Tensor.shm) instead
// of carrying the bytes through gRPC: one copy on the training thread (into
// the ring) instead of four (message, socket out, socket in, daemon buffer).
//
// Slices are allocated on the caller's thread and freed when the batch that
// names them is acknowledged (RecordStream drops it) or when the sender
// turns them back into bytes (a stream the daemon gave no ring). Allocation
// is first-fit at the head of a ring, freed space is reclaimed from the tail
// as batches are acknowledged in order, so the ring works as a FIFO.
//
// Thread-safe (its own mutex, taken after RecordStream's mu_).
#ifndef TBLOG_CLIENT_SHM_RING_H_
#define TBLOG_CLIENT_SHM_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/sync.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog {

class ShmRing {
 public:
  // The --shm-socket of a daemon at `target`: `explicit_path` when set
  // ("off" = none), else "<path>.shm" for a "unix:<path>" target, else ""
  // (a remote daemon: no shared memory).
  static std::string SocketFor(const std::string& target, const std::string& explicit_path);

  // A pre-faulted, shrink-sealed memfd of `bytes`. Errors are the system's
  // (memfd_create, ftruncate, mmap), the caller then sends bytes.
  static absl::StatusOr<std::unique_ptr<ShmRing>> Create(size_t bytes);
  ~ShmRing();
  ShmRing(const ShmRing&) = delete;
  ShmRing& operator=(const ShmRing&) = delete;

  // Hands the ring to the daemon on `socket_path` and returns the token for
  // WriteRequest.shm_ring: a blocking exchange of two small messages (the
  // sender thread's, at each new stream). The daemon's refusal
  // (ShmAttachResponse) as its status; UNAVAILABLE when the socket cannot be
  // reached. Marks the ring usable() or not.
  absl::StatusOr<std::string> Attach(const std::string& socket_path, absl::Duration timeout);

  // The side socket's exchange, for any descriptor (Attach's, and tests'
  // forged ones): sends a ShmAttachRequest of `ring_bytes` with `fd` (none
  // when negative) to `socket_path` and returns the daemon's answer;
  // UNAVAILABLE when the socket cannot be reached or answers nothing.
  static absl::StatusOr<v1::ShmAttachResponse> Exchange(const std::string& socket_path, int fd,
                                                        uint64_t ring_bytes,
                                                        absl::Duration timeout);

  // Whether the last Attach succeeded: records use slices only then.
  bool usable() const;

  // Tensors smaller than this go as bytes: a slice saves nothing there.
  static constexpr size_t kMinSliceBytes = size_t{16} << 10;

  // Copies `data` into a free slice of the ring and points `tensor` at it
  // (Tensor.shm); false, touching nothing, when the ring is not usable, has
  // no room or `data` is small (the caller sends bytes). The copy runs
  // outside the lock.
  bool CopyIn(std::span<const std::byte> data, v1::Tensor* tensor);

  // Frees the slices `request`'s tensors name (an acknowledged batch). Only
  // reads the request's records, so the sender may be writing it meanwhile.
  void Release(const v1::WriteRequest& request);
  // Frees the slice of one record (one the stream refused to take).
  void Release(const v1::Record& record);
  // Whether `record` names a slice.
  static bool NamesSlice(const v1::Record& record);
  // Turns `request`'s slices back into bytes in the message and frees them:
  // for a stream the daemon gave no ring. Returns the number of tensors.
  int Inline(v1::WriteRequest& request);

  size_t size() const { return size_; }
  size_t used() const;
  // Tensors CopyIn took, and the last Attach's error (OK when attached).
  uint64_t tensors() const { return tensors_.load(std::memory_order_relaxed); }
  absl::Status attach_status() const;

 private:
  struct Allocation {
    uint64_t offset;
    uint64_t length;  // bytes taken, alignment included
    bool freed;
  };
  ShmRing(int fd, std::byte* base, size_t size) : fd_(fd), base_(base), size_(size) {}
  std::optional<uint64_t> AllocateLocked(uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreeLocked(uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int fd_;
  std::byte* const base_;
  const size_t size_;
  mutable Mutex mu_;
  // Live allocations in ring order, oldest first; head_ is where the next
  // one starts (offset of the byte after the newest).
  std::deque<Allocation> allocations_ ABSL_GUARDED_BY(mu_);
  uint64_t head_ ABSL_GUARDED_BY(mu_) = 0;
  bool usable_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status attach_status_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> tensors_{0};
};

}  // namespace tblog

#endif  // TBLOG_CLIENT_SHM_RING_H_
