// ShmRing: the C++ client's side of tblogd's shared-memory path (tblog.proto,
// "Shared-memory rings"). A sealed, pre-faulted memfd the client writes
// tensors into; the daemon maps the same pages after the client hands the fd
// over its --shm-socket, and a Tensor then names a slice (Tensor.shm) instead
// of carrying the bytes through gRPC: one copy on the training thread (into
// the ring) instead of four (message, socket out, socket in, daemon buffer).
//
// Slices are allocated on the caller's thread (which may wait a bounded time
// for acknowledgements to free room, rather than send a large tensor as
// bytes: backpressure that keeps the cheap path) and freed when the batch
// that names them is acknowledged (RecordStream drops it) or when the sender
// turns them back into bytes (a stream the daemon gave no ring). Allocation
// is first-fit at the head of a ring, freed space is reclaimed from the tail
// as batches are acknowledged in order, so the ring works as a FIFO.
//
// Growth: a ring starts at WriterOptions::shm_ring_bytes; a tensor that
// leaves no room for a second one of its size (no double buffering: the
// trainer would wait for each conversion) asks the sender thread to grow
// it, by powers of two, up to shm_ring_max_bytes and what the daemon
// accepts. The ring's address range is reserved at its largest, so growing
// maps the new part in place and slices never move.
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

  // A pre-faulted, shrink-sealed memfd of `bytes`, in an address range of
  // `max_bytes` (at least `bytes`) reserved up front, so that the ring grows
  // in place (Grow) without moving. Errors are the system's (memfd_create,
  // ftruncate, mmap), the caller then sends bytes.
  static absl::StatusOr<std::unique_ptr<ShmRing>> Create(size_t bytes, size_t max_bytes = 0);
  // The size a ring of `bytes` grows to for a tensor of `tensor_bytes`:
  // doubled until it holds two of them (so that the trainer copies one in
  // while the daemon converts the other), at most `max_bytes`, never less
  // than `bytes`. Growth (Take) and the first ring's size (RecordStream)
  // follow this one rule.
  static size_t SizeFor(size_t tensor_bytes, size_t bytes, size_t max_bytes);
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
  // `grow_token` set: the request grows that ring (tblog.proto).
  static absl::StatusOr<v1::ShmAttachResponse> Exchange(const std::string& socket_path, int fd,
                                                        uint64_t ring_bytes,
                                                        absl::Duration timeout,
                                                        const std::string& grow_token = "");

  // Makes an attached-nowhere ring of more than `bytes` a ring of `bytes`
  // (sender thread): what follows a refusal of its size. Its pages past
  // `bytes` are given back (the memfd keeps its size: it cannot shrink),
  // and no growth to its old size or more is asked (Grow). False, touching
  // nothing, when the ring is attached, holds a slice, or is not larger.
  bool ShrinkUnused(size_t bytes);

  // Whether the last Attach succeeded: records use slices only then.
  bool usable() const;

  // Tensors smaller than this go as bytes: a slice saves nothing there.
  static constexpr size_t kMinSliceBytes = size_t{16} << 10;
  // How long Take(wait) waits for acknowledgements to free room before the
  // caller sends bytes: long enough for the daemon to convert what fills the
  // ring, short enough that a daemon gone quiet costs a bounded stall.
  static constexpr absl::Duration kRoomWait = absl::Seconds(2);

  // A slice taken for a tensor: its offset in the ring and where to write it.
  struct Slice {
    uint64_t offset;
    std::byte* data;
  };
  // Takes a free slice of `bytes` (a tensor the caller writes in place), or
  // nullopt: the ring is not usable, `bytes` is small or larger than the
  // ring, or the ring is full and (with `wait`) stays full for kRoomWait.
  // A tensor that leaves no room for a second of its size asks the sender
  // to grow the ring (growth_wanted). The caller then Point()s a tensor at
  // the slice, or Free()s it.
  std::optional<Slice> Take(size_t bytes, bool wait);
  // Makes `tensor` name `slice`, holding `bytes` (Tensor.shm), and counts it.
  void Point(const Slice& slice, size_t bytes, v1::Tensor* tensor);
  // Frees a slice taken and never handed to the daemon.
  void Free(uint64_t offset);

  // Take, a copy of `data` into the slice, Point: false, touching nothing,
  // when Take gives no slice (the caller sends bytes). The copy runs
  // outside the lock, with non-temporal stores for large tensors: the
  // training thread does not wait for the destination's cache lines, and
  // the copy does not evict the trainer's working set. `with_range` and a
  // float32 `tensor` (dtype set): the copy also finds the values' min and
  // max, sent as ShmSlice.range when all are finite and differ, so that the
  // daemon reads the slice once for a uniform histogram instead of twice.
  bool CopyIn(std::span<const std::byte> data, v1::Tensor* tensor, bool wait = false,
              bool with_range = false);

  // Frees the slices `request`'s tensors name (an acknowledged batch). Only
  // reads the request's records, so the sender may be writing it meanwhile.
  void Release(const v1::WriteRequest& request);
  // Frees the slice of one record (one the stream refused to take).
  void Release(const v1::Record& record);
  // Whether `record` names a slice.
  static bool NamesSlice(const v1::Record& record);
  // The tensor of `record` that may name a slice (histogram values, image
  // pixels, embedding matrix), or null for other kinds.
  static v1::Tensor* SliceTensorOf(v1::Record& record);
  // Turns `request`'s slices back into bytes in the message and frees them:
  // for a stream the daemon gave no ring. Returns the number of tensors.
  int Inline(v1::WriteRequest& request);

  // For a tensor too large to travel as bytes, which has no other way than
  // the ring (RecordStream::ShmRingFor): asks the sender to grow the ring
  // to hold two of it or, once the daemon refused that, one. False, asking
  // nothing, when the ring holds it already or no growth could (the
  // capacity, or a size the daemon refused).
  bool WantGrowthFor(size_t bytes);

  // The size the ring should grow to (a tensor asked, Take), or 0. Sender
  // thread: then Grow().
  size_t growth_wanted() const { return grow_wanted_.load(std::memory_order_relaxed); }
  // Grows the ring to growth_wanted() (sender thread): extends the memfd,
  // asks the daemon on `socket_path` to map the larger size (under the
  // token of the last Attach) and, once it has, maps the new part here.
  // A refusal keeps the ring as it was, and no growth to that size or more
  // is asked again; the status says why.
  absl::Status Grow(const std::string& socket_path, absl::Duration timeout);

  size_t size() const;
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
  ShmRing(int fd, std::byte* base, size_t size, size_t capacity)
      : fd_(fd), base_(base), capacity_(capacity), size_(size), file_bytes_(size) {}
  // Where a slice of `length` (aligned) would go now, without taking it.
  std::optional<uint64_t> FitLocked(uint64_t length) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreeLocked(uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks the sender for a ring that holds two slices of `length`.
  void WantGrowthLocked(uint64_t length) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RaiseGrowthWanted(size_t target);

  const int fd_;
  std::byte* const base_;  // the reserved range of capacity_ bytes
  const size_t capacity_;  // the most the ring may grow to
  mutable Mutex mu_;
  size_t size_ ABSL_GUARDED_BY(mu_);  // what the daemon maps, and slices use
  // Sender thread only: the memfd's size (a refused growth leaves it larger
  // than size_, its extra pages never touched). The smallest size refused:
  // written by the sender, read by WantGrowthFor.
  size_t file_bytes_;
  std::atomic<size_t> grow_refused_{SIZE_MAX};
  std::atomic<size_t> grow_wanted_{0};
  // Live allocations in ring order, oldest first; head_ is where the next
  // one starts (offset of the byte after the newest).
  std::deque<Allocation> allocations_ ABSL_GUARDED_BY(mu_);
  uint64_t head_ ABSL_GUARDED_BY(mu_) = 0;
  bool usable_ ABSL_GUARDED_BY(mu_) = false;
  std::string token_ ABSL_GUARDED_BY(mu_);  // of the last Attach
  absl::Status attach_status_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> tensors_{0};
};

}  // namespace tblog

#endif  // TBLOG_CLIENT_SHM_RING_H_
