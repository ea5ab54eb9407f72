// The shared-memory rings clients have attached (shm_socket.h takes them),
// by the token each was given, from attach until the Write stream that bound
// the ring ends (tblog.proto, WriteRequest.shm_ring).
//
// Budget: a ring's size is charged to the daemon's in-flight budget
// (--max-inflight-bytes) from attach until it is dropped, because its pages,
// mapped and read by the daemon, are part of what the daemon holds for
// requests. Rings together may take at most `max_total_bytes` (half of the
// budget), so that streams always keep room for their messages: a ring
// larger than that is refused outright (INVALID_ARGUMENT), one that does not
// fit next to the rings attached now is RESOURCE_EXHAUSTED (the client sends
// bytes instead). The mapping itself may outlive its charge by the
// conversion of a batch that read it when the stream ended.
//
// A ring that no stream binds within kBindWithin is dropped (a client that
// died between attaching and binding, or never meant to bind).
#ifndef TBLOG_DAEMON_SHM_RINGS_H_
#define TBLOG_DAEMON_SHM_RINGS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "daemon/byte_budget.h"
#include "daemon/shm_ring.h"

namespace tblog::daemon {

// Thread-safe. Borrows the budget, which must outlive it.
class ShmRings final : public ShmRingLookup {
 public:
  static constexpr absl::Duration kBindWithin = absl::Seconds(30);

  // At most `max_rings` rings and `max_total_bytes` bytes attached at once.
  ShmRings(ByteBudget* budget, size_t max_total_bytes, int max_rings);
  // Gives back the charges of the rings still attached.
  ~ShmRings() override;
  ShmRings(const ShmRings&) = delete;
  ShmRings& operator=(const ShmRings&) = delete;

  // Maps `fd` (taken) as a ring of `ring_bytes` (ShmRing::Map checks it),
  // charges it and returns its token: 32 hex digits of 128 random bits. The
  // errors are those of ShmAttachResponse.code (tblog.proto).
  absl::StatusOr<std::string> Attach(int fd, uint64_t ring_bytes, absl::Time now);

  // Grows the ring attached under `token` (bound or not) to `ring_bytes`:
  // `fd` (taken) must be the same memfd, extended by the client to that
  // size. Maps the larger size, charges the difference under the same
  // limits as Attach, and replaces the ring that FindBound returns (a
  // conversion reading the old mapping keeps it until it is done). The
  // errors are those of ShmAttachResponse.code; on error the ring is as it
  // was.
  absl::Status Grow(int fd, uint64_t ring_bytes, std::string_view token);

  // Binds the ring attached under `token` to the calling stream, once:
  // FAILED_PRECONDITION when no unbound ring has that token (unknown,
  // expired, or bound already). The stream calls Drop(token) when it ends.
  absl::Status Bind(std::string_view token);
  // Drops the ring (its charge given back; the mapping goes with the last
  // conversion reading it). Unknown tokens are ignored.
  void Drop(std::string_view token);

  std::shared_ptr<const ShmRing> FindBound(std::string_view token) const override;

  // Drops the rings that were not bound within kBindWithin of `now`.
  void ExpireUnbound(absl::Time now);

  // For the metrics: rings attached and their bytes.
  int rings() const;
  size_t bytes() const;

 private:
  struct Entry {
    std::shared_ptr<const ShmRing> ring;
    bool bound = false;
    absl::Time expiry;  // for an unbound ring
  };

  // INVALID_ARGUMENT for a ring of `ring_bytes` over max_total_bytes_.
  absl::Status TooLarge(uint64_t ring_bytes) const;

  ByteBudget* const budget_;
  const size_t max_total_bytes_;
  const int max_rings_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

// A Write stream's ring: bound by the first message that names its token,
// named on every batch the stream submits (so RecordConverter::ConvertBatch
// finds it), dropped when the stream ends (the object's destruction). Not
// thread-safe: the stream guards it.
class StreamShmRing {
 public:
  // `rings` may be null (no --shm-socket): then no message may name a ring.
  explicit StreamShmRing(ShmRings* rings) : rings_(rings) {}
  ~StreamShmRing();
  StreamShmRing(const StreamShmRing&) = delete;
  StreamShmRing& operator=(const StreamShmRing&) = delete;

  // Checks `request`'s shm_ring, binding the ring when it is the first to
  // name one, and sets it to the stream's token ("" without a ring), so that
  // a batch reads only its own stream's ring. FAILED_PRECONDITION when the
  // token binds no ring (ShmRings::Bind: the client attaches again after
  // reconnecting), INVALID_ARGUMENT for a second, different token.
  absl::Status Accept(v1::WriteRequest& request);

 private:
  ShmRings* const rings_;
  std::string token_;  // "" until bound
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_SHM_RINGS_H_
