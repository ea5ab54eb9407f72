#include "daemon/shm_rings.h"

#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/status_util.h"

namespace tblog::daemon {
namespace {

// 128 bits from the kernel's CSPRNG, hex: a stream binds a ring only by
// knowing its token, which only the client that attached it was told.
absl::StatusOr<std::string> RandomToken() {
  char bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
    }
    got += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(absl::string_view(bytes, sizeof(bytes)));
}

}  // namespace

ShmRings::ShmRings(ByteBudget* budget, size_t max_total_bytes, int max_rings)
    : budget_(budget), max_total_bytes_(max_total_bytes), max_rings_(max_rings) {}

ShmRings::~ShmRings() {
  MutexLock lock(&mu_);
  if (bytes_ > 0) budget_->Unpin(bytes_);
}

absl::StatusOr<std::string> ShmRings::Attach(int fd, uint64_t ring_bytes, absl::Time now) {
  // Checked before mapping, so a refused ring costs nothing.
  if (ring_bytes > max_total_bytes_) {
    if (fd >= 0) ::close(fd);
    return TooLarge(ring_bytes);
  }
  absl::StatusOr<std::unique_ptr<ShmRing>> ring = ShmRing::Map(fd, ring_bytes);
  if (!ring.ok()) return ring.status();
  absl::StatusOr<std::string> token = RandomToken();
  if (!token.ok()) return token.status();
  std::shared_ptr<const ShmRing> mapped = *std::move(ring);
  {
    MutexLock lock(&mu_);
    if (static_cast<int>(entries_.size()) >= max_rings_ ||
        bytes_ + mapped->size() > max_total_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the ", entries_.size(), " rings attached now take ", bytes_, " of the rings' ",
          max_total_bytes_, " bytes (half of --max-inflight-bytes; at most ", max_rings_,
          " rings): no room for ", mapped->size(), " more; send bytes, or retry later"));
    }
    bytes_ += mapped->size();
    entries_[*token] = Entry{mapped, false, now + kBindWithin};
  }
  // The pages are held already, so the charge does not wait; pinned, so that
  // a batch larger than what rings leave still goes through alone.
  budget_->Pin(mapped->size());
  return token;
}

absl::Status ShmRings::TooLarge(uint64_t ring_bytes) const {
  return absl::InvalidArgumentError(absl::StrCat(
      "a ring of ", ring_bytes, " bytes is larger than the rings' share of the in-flight "
      "budget (", max_total_bytes_, " bytes: half of --max-inflight-bytes); attach a smaller "
      "ring or raise --max-inflight-bytes"));
}

absl::Status ShmRings::Grow(int fd, uint64_t ring_bytes, std::string_view token) {
  struct stat info {};
  const bool stated = fd >= 0 && ::fstat(fd, &info) == 0;
  std::shared_ptr<const ShmRing> current;
  {
    MutexLock lock(&mu_);
    auto it = entries_.find(Sv(token));
    if (it != entries_.end()) current = it->second.ring;
  }
  // Every check that needs no mapping comes first: a refused growth costs
  // no page-table work.
  absl::Status refused;
  if (current == nullptr) {
    refused = absl::NotFoundError(
        "grow_token: no ring is attached under this token (its stream ended, or it was never "
        "bound); attach a new ring");
  } else if (!stated || !current->IsFile(info)) {
    refused = absl::InvalidArgumentError(
        "grow_token: the file descriptor is not the memfd attached under this token");
  } else if (ring_bytes <= current->size()) {
    refused = absl::InvalidArgumentError(absl::StrCat(
        "grow: ring_bytes ", ring_bytes, " is not larger than the ring's ", current->size()));
  } else if (ring_bytes > max_total_bytes_) {
    refused = TooLarge(ring_bytes);
  }
  if (!refused.ok()) {
    if (fd >= 0) ::close(fd);
    return refused;
  }
  absl::StatusOr<std::unique_ptr<ShmRing>> ring = ShmRing::Map(fd, ring_bytes);
  if (!ring.ok()) return ring.status();
  std::shared_ptr<const ShmRing> mapped = *std::move(ring);
  std::shared_ptr<const ShmRing> replaced;  // unmapped outside the lock, when last
  size_t added = 0;
  {
    MutexLock lock(&mu_);
    auto it = entries_.find(Sv(token));
    // Dropped meanwhile, or grown by a racing request to this size or more.
    if (it == entries_.end() || it->second.ring->size() >= mapped->size()) {
      return absl::FailedPreconditionError(
          "grow_token: the ring was dropped or grown meanwhile; attach again");
    }
    added = mapped->size() - it->second.ring->size();
    if (bytes_ + added > max_total_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the ", entries_.size(), " rings attached now take ", bytes_, " of the rings' ",
          max_total_bytes_, " bytes (half of --max-inflight-bytes): no room to grow this one by ",
          added, "; it keeps its size"));
    }
    bytes_ += added;
    replaced = std::exchange(it->second.ring, std::move(mapped));
  }
  budget_->Pin(added);  // outside the lock, as in Attach
  return absl::OkStatus();
}

absl::Status ShmRings::Bind(std::string_view token) {
  MutexLock lock(&mu_);
  auto it = entries_.find(Sv(token));
  if (it == entries_.end() || it->second.bound) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shm_ring: no ring waits under this token (unknown, bound by another stream, or not "
        "bound within ", absl::FormatDuration(kBindWithin), " of attaching); attach again"));
  }
  it->second.bound = true;
  return absl::OkStatus();
}

void ShmRings::Drop(std::string_view token) {
  std::shared_ptr<const ShmRing> ring;  // unmapped outside the lock, when last
  size_t bytes = 0;
  {
    MutexLock lock(&mu_);
    auto it = entries_.find(Sv(token));
    if (it == entries_.end()) return;
    ring = std::move(it->second.ring);
    bytes = ring->size();
    bytes_ -= bytes;
    entries_.erase(it);
  }
  budget_->Unpin(bytes);  // outside the lock: it may run waiters' callbacks
}

std::shared_ptr<const ShmRing> ShmRings::FindBound(std::string_view token) const {
  MutexLock lock(&mu_);
  auto it = entries_.find(Sv(token));
  if (it == entries_.end() || !it->second.bound) return nullptr;
  return it->second.ring;
}

void ShmRings::ExpireUnbound(absl::Time now) {
  std::vector<std::shared_ptr<const ShmRing>> expired;
  size_t bytes = 0;
  {
    MutexLock lock(&mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (!it->second.bound && it->second.expiry <= now) {
        bytes += it->second.ring->size();
        expired.push_back(std::move(it->second.ring));
        entries_.erase(it++);
      } else {
        ++it;
      }
    }
    bytes_ -= bytes;
  }
  if (bytes > 0) budget_->Unpin(bytes);
}

int ShmRings::rings() const {
  MutexLock lock(&mu_);
  return static_cast<int>(entries_.size());
}

size_t ShmRings::bytes() const {
  MutexLock lock(&mu_);
  return bytes_;
}

StreamShmRing::~StreamShmRing() {
  if (!token_.empty()) rings_->Drop(token_);
}

absl::Status StreamShmRing::Accept(v1::WriteRequest& request) {
  const std::string& named = request.shm_ring();
  if (!named.empty() && named != token_) {
    if (!token_.empty()) {
      return absl::InvalidArgumentError(
          "shm_ring: a stream binds one ring; this one names another; open another stream");
    }
    if (rings_ == nullptr) {
      return absl::FailedPreconditionError(
          "shm_ring: this tblogd takes no shared memory (no --shm-socket); send bytes");
    }
    TBLOG_RETURN_IF_ERROR(rings_->Bind(named));
    token_ = named;
  }
  request.set_shm_ring(token_);
  return absl::OkStatus();
}

}  // namespace tblog::daemon
