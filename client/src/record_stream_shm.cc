// RecordStream's shared-memory ring (record_stream.h, shm_ring.h): made on
// the sender thread once a large tensor wants it, so that Writer::Open, the
// training thread and writers of scalars only never pay for allocating and
// pre-faulting it, attached again for every stream (the daemon drops a
// ring with the stream that bound it), and grown on the sender thread when
// a tensor asks for more room (the training thread meanwhile waits for room
// or sends bytes).
#include <algorithm>

#include "record_stream.h"

namespace tblog {

std::string RecordStream::AttachRing() {
  const std::string socket = ShmRing::SocketFor(options_.target, options_.shm_socket);
  if (socket.empty() || options_.shm_ring_bytes == 0 || ring_failed_) return "";
  if (ring_ == nullptr) {
    if (!ring_wanted_.load(std::memory_order_relaxed)) return "";  // no large tensor yet
    auto ring = ShmRing::Create(options_.shm_ring_bytes, options_.shm_ring_max_bytes);
    if (!ring.ok()) {
      ring_failed_ = true;  // e.g. no memfd here: bytes, for good
      return "";
    }
    ring_ = *std::move(ring);
    ring_view_.store(ring_.get(), std::memory_order_release);
  }
  // Short: the daemon answers at once or is not there (bytes then).
  auto token = ring_->Attach(socket, std::min(options_.rpc_timeout, absl::Seconds(2)));
  return token.ok() ? *token : "";
}

void RecordStream::GrowRingIfWanted() {
  if (ring_ == nullptr || ring_->growth_wanted() == 0) return;
  // A refusal keeps the ring's size; ShmRing remembers it and asks no more.
  (void)ring_->Grow(ShmRing::SocketFor(options_.target, options_.shm_socket),
                    std::min(options_.rpc_timeout, absl::Seconds(2)));
}

}  // namespace tblog
