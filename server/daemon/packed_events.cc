#include "daemon/packed_events.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tblog::daemon {
namespace {

struct Storage {
  PackedBytes bytes;
  std::vector<PackedEvents::Event> events;
};

class Spares {
 public:
  // Keeps `storage` when there is room; frees it (in the caller, outside the
  // lock) otherwise.
  void Put(Storage& storage) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (count_ == PackedEvents::kMaxSpares) return;
    spares_[count_++] = std::move(storage);
  }

  bool Take(Storage& storage) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (count_ == 0) return false;
    storage = std::move(spares_[--count_]);
    return true;
  }

 private:
  absl::Mutex mu_;
  Storage spares_[PackedEvents::kMaxSpares] ABSL_GUARDED_BY(mu_);
  size_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// Never destroyed: a PackedEvents may die during static destruction.
Spares& TheSpares() {
  static Spares* const spares = new Spares;
  return *spares;
}

bool WorthKeeping(size_t bytes) {
  return bytes >= PackedEvents::kMinSpareBytes && bytes <= PackedEvents::kMaxSpareBytes;
}

}  // namespace

void PackedBytes::resize_for_overwrite(size_t size) {
  if (size > capacity_) {
    const size_t capacity = std::max(size, 2 * capacity_);
    // Default-initialised: no zero-fill.
    std::unique_ptr<char[]> data = std::make_unique_for_overwrite<char[]>(capacity);
    if (size_ > 0) std::memcpy(data.get(), data_.get(), size_);
    data_ = std::move(data);
    capacity_ = capacity;
  }
  size_ = size;
}

PackedBytes& PackedBytes::operator+=(std::string_view bytes) {
  const size_t at = size_;
  resize_for_overwrite(at + bytes.size());
  if (!bytes.empty()) std::memcpy(data_.get() + at, bytes.data(), bytes.size());
  return *this;
}

PackedEvents::~PackedEvents() {
  if (!WorthKeeping(bytes.capacity()) || !WorthKeeping(events.capacity() * sizeof(Event))) {
    return;
  }
  Storage storage{std::move(bytes), std::move(events)};
  storage.bytes.clear();
  storage.events.clear();
  TheSpares().Put(storage);
}

void PackedEvents::TakeSpareStorage() {
  Storage storage;
  if (!TheSpares().Take(storage)) return;
  bytes = std::move(storage.bytes);
  events = std::move(storage.events);
}

}  // namespace tblog::daemon
