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
  // budget) before any slice was taken: shm_ring_bytes, as without the
  // tensor's hint. UNAVAILABLE (no daemon at the socket) would not answer
  // a smaller ring either.
  if (!token.ok() && token.status().code() != absl::StatusCode::kUnavailable &&
      ring_->ShrinkUnused(options_.shm_ring_bytes)) {
    token = ring_->Attach(socket, timeout);
  }
  return token.ok() ? *token : "";
}

void RecordStream::GrowRingIfWanted() {
  if (ring_ == nullptr || ring_->growth_wanted() == 0) return;
  // A refusal keeps the ring's size; ShmRing remembers it and asks no more.
  (void)ring_->Grow(ShmRing::SocketFor(options_.target, options_.shm_socket),
                    std::min(options_.rpc_timeout, absl::Seconds(2)));
}

}  // namespace tblog
