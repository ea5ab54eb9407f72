// RecordStream's shared-memory ring (record_stream.h, shm_ring.h): made on
// the sender thread once a large tensor wants it, so that Writer::Open, the
// training thread and writers of scalars only never pay for allocating and
// pre-faulting it, attached again for every stream (the daemon drops a
// ring with the stream that bound it), and grown on the sender thread when
// a tensor asks for more room (the training thread meanwhile waits for room
// or sends bytes). The first ring is sized for the tensor that asked for it.
#include <algorithm>

#include "record_stream.h"

namespace tblog {

std::string RecordStream::AttachRing() {
  const std::string socket = ShmRing::SocketFor(options_.target, options_.shm_socket);
  if (socket.empty() || options_.shm_ring_bytes == 0 || ring_failed_) return "";
  // Short: the daemon answers at once or is not there (bytes then).
  const absl::Duration timeout = std::min(options_.rpc_timeout, absl::Seconds(2));
  if (ring_ == nullptr) {
    const size_t tensor = ring_wanted_.load(std::memory_order_relaxed);
    if (tensor == 0) return "";  // no large tensor yet
    // Sized at once for the tensor that asked (ShmRing::SizeFor), rather
    // than grown when the next one fills it: a growth maps the ring again
    // on both sides and allocates its new part meanwhile, with the training
    // thread waiting for room (48 ms from 64 to 128 MiB for 16M floats,
    // bench/README.md).
    auto ring = ShmRing::Create(
        ShmRing::SizeFor(tensor, options_.shm_ring_bytes, options_.shm_ring_max_bytes),
        options_.shm_ring_max_bytes);
    if (!ring.ok()) {
      ring_failed_ = true;  // e.g. no memfd here: bytes, for good
      return "";
    }
    ring_ = *std::move(ring);
    ring_view_.store(ring_.get(), std::memory_order_release);
  }
  absl::StatusOr<std::string> token = ring_->Attach(socket, timeout);
  // Refused at that size (the daemon's rings share half its in-flight
  // budget) before any slice was taken: room for one tensor, if it is too
  // large to travel as bytes, else shm_ring_bytes, as without the tensor's
  // hint. UNAVAILABLE (no daemon at the socket) would not answer a smaller
  // ring either.
  const size_t tensor = ring_wanted_.load(std::memory_order_relaxed);
  for (const size_t smaller :
       {tensor > options_.max_record_bytes
            ? ShmRing::SizeFor((tensor + 1) / 2, options_.shm_ring_bytes,
                               options_.shm_ring_max_bytes)
            : size_t{0},
        options_.shm_ring_bytes}) {
    if (token.ok() || token.status().code() == absl::StatusCode::kUnavailable) break;
    if (smaller != 0 && ring_->ShrinkUnused(smaller)) token = ring_->Attach(socket, timeout);
  }
  return token.ok() ? *token : "";
}

void RecordStream::RingTried() {
  if (!ring_urgent_.exchange(false, std::memory_order_relaxed)) return;
  MutexLock lock(&ring_mu_);
  ++ring_tries_;
}

ShmRing* RecordStream::ShmRingForOversize(size_t bytes) {
  if (ShmRing::SocketFor(options_.target, options_.shm_socket).empty() ||
      options_.shm_ring_bytes == 0) {
    return shm_ring();
  }
  const absl::Time deadline = absl::Now() + kOversizeRingWait;
  while (true) {
    ShmRing* ring = shm_ring();
    if (ring == nullptr) {
      size_t wanted = ring_wanted_.load(std::memory_order_relaxed);
      while (wanted < bytes &&
             !ring_wanted_.compare_exchange_weak(wanted, bytes, std::memory_order_relaxed)) {
      }
    } else if (!ring->usable() || !ring->WantGrowthFor(bytes)) {
      return ring;  // holds it (a slice once there is room), or never will
    }
    uint64_t tries = 0;
    {
      MutexLock lock(&ring_mu_);
      tries = ring_tries_;
    }
    ring_urgent_.store(true, std::memory_order_relaxed);
    WakeSender();
    MutexLock lock(&ring_mu_);
    auto tried = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ring_mu_) { return ring_tries_ != tries; };
    if (!ring_mu_.AwaitWithDeadline(Condition(&tried), deadline)) return shm_ring();
    if (shm_ring() == nullptr && ring_failed_.load()) return nullptr;  // cannot be made
  }
}

std::string RecordStream::ShmMissReason() const {
  if (ShmRing::SocketFor(options_.target, options_.shm_socket).empty() ||
      options_.shm_ring_bytes == 0) {
    return "no shared memory with the daemon (a remote target, or shm_socket \"off\")";
  }
  const ShmRing* ring = shm_ring();
  if (ring == nullptr) return "no shared-memory ring could be made here";
  if (!ring->usable()) {
    return absl::StrCat("the shared-memory ring could not be attached: ",
                        ring->attach_status().message());
  }
  return absl::StrCat("the shared-memory ring (", ring->size(), " bytes, growth up to ",
                      options_.shm_ring_max_bytes,
                      ": WriterOptions::shm_ring_max_bytes, and what the daemon accepts) had "
                      "no room for it");
}

void RecordStream::GrowRingIfWanted() {
  if (ring_ == nullptr || ring_->growth_wanted() == 0) return;
  // A refusal keeps the ring's size; ShmRing remembers it and asks no more.
  (void)ring_->Grow(ShmRing::SocketFor(options_.target, options_.shm_socket),
                    std::min(options_.rpc_timeout, absl::Seconds(2)));
}

}  // namespace tblog
