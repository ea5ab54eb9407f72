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
namespace {

// Makes a ring of `bytes` into `*ring` and attaches it: the token, or why
// not (`*ring` stays null when making it failed, see ShmRing::Create).
absl::StatusOr<std::string> MakeRing(size_t bytes, size_t max_bytes, const std::string& socket,
                                     absl::Duration timeout, std::unique_ptr<ShmRing>* ring) {
  auto made = ShmRing::Create(bytes, max_bytes);
  if (!made.ok()) return made.status();
  *ring = *std::move(made);
  return (*ring)->Attach(socket, timeout);
}

}  // namespace

std::string RecordStream::AttachRing() {
  const std::string socket = ShmRing::SocketFor(options_.target, options_.shm_socket);
  if (socket.empty() || options_.shm_ring_bytes == 0 || ring_failed_) return "";
  // Short: the daemon answers at once or is not there (bytes then).
  const absl::Duration timeout = std::min(options_.rpc_timeout, absl::Seconds(2));
  if (ring_ != nullptr) {
    auto token = ring_->Attach(socket, timeout);
    return token.ok() ? *token : "";
  }
  const size_t tensor = ring_wanted_.load(std::memory_order_relaxed);
  if (tensor == 0) return "";  // no large tensor yet
  // Sized at once for the tensor that asked (ShmRing::SizeFor), rather than
  // grown when the next one fills it: a growth maps the ring again on both
  // sides and allocates its new part meanwhile, with the training thread
  // waiting for room (48 ms from 64 to 128 MiB for 16M floats, bench/README.md).
  const size_t sized =
      ShmRing::SizeFor(tensor, options_.shm_ring_bytes, options_.shm_ring_max_bytes);
  absl::StatusOr<std::string> token =
      MakeRing(sized, options_.shm_ring_max_bytes, socket, timeout, &ring_);
  if (!token.ok() && ring_ != nullptr && sized > options_.shm_ring_bytes &&
      token.status().code() != absl::StatusCode::kUnavailable) {
    // Refused at that size (the daemon's rings share half its in-flight
    // budget): shm_ring_bytes, as without the tensor's hint. UNAVAILABLE
    // (no daemon at the socket) would not answer a smaller ring either.
    ring_.reset();
    token = MakeRing(options_.shm_ring_bytes, options_.shm_ring_max_bytes, socket, timeout, &ring_);
  }
  if (ring_ == nullptr) {
    ring_failed_ = true;  // e.g. no memfd here: bytes, for good
    return "";
  }
  // Published once attached (or refused): the record path only ever sees
  // this one ring.
  ring_view_.store(ring_.get(), std::memory_order_release);
  return token.ok() ? *token : "";
}

void RecordStream::GrowRingIfWanted() {
  if (ring_ == nullptr || ring_->growth_wanted() == 0) return;
  // A refusal keeps the ring's size; ShmRing remembers it and asks no more.
  (void)ring_->Grow(ShmRing::SocketFor(options_.target, options_.shm_socket),
                    std::min(options_.rpc_timeout, absl::Seconds(2)));
}

}  // namespace tblog
