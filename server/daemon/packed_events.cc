#include "daemon/packed_events.h"

#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/base/thread_annotations.h"
#include "base/sync.h"

namespace tblog::daemon {
namespace {

struct Storage {
  RawBytes bytes;
  std::vector<PackedEvents::Event> events;

  size_t held() const {
    return bytes.capacity() + events.capacity() * sizeof(PackedEvents::Event);
  }
};

// A spare of `capacity` is taken for `wanted`: it holds it, with at most
// half as much again unused.
bool Fits(size_t capacity, size_t wanted) {
  return capacity >= wanted && capacity - wanted <= wanted / 2;
}

bool WorthKeeping(size_t bytes) {
  return bytes >= PackedEvents::kMinSpareBytes && bytes <= PackedEvents::kMaxSpareBytes;
}

class Spares {
 public:
  // Keeps `storage`. When the list is full, or would hold more than
  // kMaxSpareTotalBytes, its oldest spares leave, into `evicted`, for the
  // caller to free outside the lock: the latest sizes are the likeliest to
  // fit the next batches.
  void Put(Storage& storage, std::vector<Storage>& evicted) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    size_t drop = 0;  // the oldest spares that leave
    size_t held = held_ + storage.held();
    while (drop < count_ && (count_ - drop >= PackedEvents::kMaxSpares ||
                             held > PackedEvents::kMaxSpareTotalBytes)) {
      held -= spares_[drop].held();
      evicted.push_back(std::move(spares_[drop]));
      ++drop;
    }
    if (drop > 0) {  // (never a self-move: it would empty the spare)
      for (size_t i = drop; i < count_; ++i) spares_[i - drop] = std::move(spares_[i]);
      count_ -= drop;
    }
    spares_[count_++] = std::move(storage);
    held_ = held;
    last_used_ = absl::Now();
  }

  // Moves every spare into `freed` if none was taken or put since `since`;
  // returns the bytes they hold.
  size_t TakeAllIfIdle(absl::Time since, std::vector<Storage>& freed) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (last_used_ > since) return 0;
    const size_t bytes = held_;
    for (size_t i = 0; i < count_; ++i) freed.push_back(std::move(spares_[i]));
    count_ = 0;
    held_ = 0;
    return bytes;
  }

  size_t held() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return held_;
  }

  // Takes a spare that fits (Fits) into `storage`.
  bool Take(size_t bytes, size_t events, Storage& storage) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    for (size_t i = count_; i-- > 0;) {  // the latest first
      Storage& spare = spares_[i];
      if (Fits(spare.bytes.capacity(), bytes) && Fits(spare.events.capacity(), events)) {
        held_ -= spare.held();
        storage = std::move(spare);
        // The rest keep their order, oldest first (Put drops from the front).
        for (size_t j = i + 1; j < count_; ++j) spares_[j - 1] = std::move(spares_[j]);
        --count_;
        last_used_ = absl::Now();
        return true;
      }
    }
    return false;
  }

 private:
  mutable Mutex mu_;  // tblog::Mutex (base/sync.h): seen by TSan
  Storage spares_[PackedEvents::kMaxSpares] ABSL_GUARDED_BY(mu_);
  size_t count_ ABSL_GUARDED_BY(mu_) = 0;
  size_t held_ ABSL_GUARDED_BY(mu_) = 0;  // Storage::held() of spares_[0, count_)
  absl::Time last_used_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // a Take or Put
};

// Never destroyed: a PackedEvents may die during static destruction.
Spares& TheSpares() {
  static Spares* const spares = new Spares;
  return *spares;
}

}  // namespace

PackedEvents::~PackedEvents() {
  if (!WorthKeeping(bytes.capacity()) || !WorthKeeping(events.capacity() * sizeof(Event))) {
    return;
  }
  Storage storage{std::move(bytes), std::move(events)};
  storage.bytes.clear();
  storage.events.clear();
  // A single set never exceeds the total (2 x kMaxSpareBytes <= it).
  static_assert(2 * kMaxSpareBytes <= kMaxSpareTotalBytes);
  std::vector<Storage> evicted;  // freed here, outside the lock
  TheSpares().Put(storage, evicted);
}

size_t PackedEvents::ReleaseIdleSpares(absl::Time now) {
  std::vector<Storage> freed;  // freed here, outside the lock
  return TheSpares().TakeAllIfIdle(now - kIdleRelease, freed);
}

size_t PackedEvents::SpareBytes() { return TheSpares().held(); }

void PackedEvents::TakeSpareStorage(size_t bytes_wanted, size_t events_wanted) {
  Storage storage;
  if (!TheSpares().Take(bytes_wanted, events_wanted, storage)) return;
  bytes = std::move(storage.bytes);
  events = std::move(storage.events);
}

}  // namespace tblog::daemon
