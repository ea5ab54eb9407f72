#include "daemon/packed_events.h"

#include <utility>

#include "absl/base/thread_annotations.h"
#include "base/sync.h"

namespace tblog::daemon {
namespace {

struct Storage {
  RawBytes bytes;
  std::vector<PackedEvents::Event> events;
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
  // Keeps `storage`. When the list is full its oldest spare leaves, in
  // `storage`, for the caller to free outside the lock: the latest sizes are
  // the likeliest to fit the next batches.
  void Put(Storage& storage) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (count_ < PackedEvents::kMaxSpares) {
      spares_[count_++] = std::move(storage);
      return;
    }
    Storage oldest = std::move(spares_[0]);
    for (size_t i = 1; i < count_; ++i) spares_[i - 1] = std::move(spares_[i]);
    spares_[count_ - 1] = std::move(storage);
    storage = std::move(oldest);
  }

  // Takes a spare that fits (Fits) into `storage`.
  bool Take(size_t bytes, size_t events, Storage& storage) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    for (size_t i = count_; i-- > 0;) {  // the latest first
      Storage& spare = spares_[i];
      if (Fits(spare.bytes.capacity(), bytes) && Fits(spare.events.capacity(), events)) {
        storage = std::move(spare);
        if (i != count_ - 1) spare = std::move(spares_[count_ - 1]);
        --count_;
        return true;
      }
    }
    return false;
  }

 private:
  Mutex mu_;  // tblog::Mutex (base/sync.h): seen by TSan
  Storage spares_[PackedEvents::kMaxSpares] ABSL_GUARDED_BY(mu_);
  size_t count_ ABSL_GUARDED_BY(mu_) = 0;
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
  TheSpares().Put(storage);
}

void PackedEvents::TakeSpareStorage(size_t bytes_wanted, size_t events_wanted) {
  Storage storage;
  if (!TheSpares().Take(bytes_wanted, events_wanted, storage)) return;
  bytes = std::move(storage.bytes);
  events = std::move(storage.events);
}

}  // namespace tblog::daemon
