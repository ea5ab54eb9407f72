// The events of scalar columns (convert/scalars.h), packed: their bytes back
// to back in one buffer and, per event, where it ends, its step and its
// series. A batch holds up to millions of points: one string (allocation and
// free) per point cost more than encoding it, and the writer looks up each
// series' file and last step once per write rather than per point.
//
// Its two large buffers are recycled: a PackedEvents hands them, when it is
// destroyed, to a small process-wide spare list, and TakeSpareStorage takes
// them back for the next batch. A 1 MiB batch of scalars packs into about
// 6 MiB, which malloc gives back to the kernel when freed (the trim of a
// thread's heap), so every batch faulted in fresh zeroed pages: a profile of
// the daemon draining 1M scalars showed the page faults (and the unmaps) as
// its largest cost, above the encoding itself. At most kMaxSpares sets of at
// most kMaxSpareBytes each are kept, so an idle daemon holds at most a few
// tens of MiB more than it would otherwise.
#ifndef TBLOG_DAEMON_PACKED_EVENTS_H_
#define TBLOG_DAEMON_PACKED_EVENTS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tblog::daemon {

// A byte buffer that grows without zero-filling what it adds (std::string's
// resize writes every new byte, a pass as long as the encoding itself over a
// batch's millions of events). Move-only in spirit, copyable for tests.
class PackedBytes {
 public:
  PackedBytes() = default;
  PackedBytes(PackedBytes&& other) noexcept
      : data_(std::move(other.data_)), size_(other.size_), capacity_(other.capacity_) {
    other.size_ = other.capacity_ = 0;
  }
  PackedBytes& operator=(PackedBytes&& other) noexcept {
    data_ = std::move(other.data_);
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.size_ = other.capacity_ = 0;
    return *this;
  }
  PackedBytes(const PackedBytes& other) { *this += other; }
  PackedBytes& operator=(const PackedBytes& other) {
    if (this != &other) {
      clear();
      *this += other;
    }
    return *this;
  }

  // Sets the size to `size`. Bytes past the old size are left as they are
  // (uninitialised on a fresh allocation): the caller writes them. Grows the
  // capacity to at least twice the old one when it must, keeping the bytes.
  void resize_for_overwrite(size_t size);
  void clear() { size_ = 0; }
  PackedBytes& operator+=(std::string_view bytes);

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  operator std::string_view() const { return {data_.get(), size_}; }

 private:
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

struct PackedEvents {
  // The (sub-run, tag) of a run of points.
  struct Series {
    std::string subrun;
    std::string tag;
  };
  struct Event {
    size_t end;       // the event is bytes[previous event's end, end)
    int64_t step;     // its step (not parsed back out of the bytes)
    uint32_t series;  // index into `series`
  };

  // Spare sets kept for reuse, and the largest buffer kept (bytes or
  // events' capacity in bytes); a smaller buffer than kMinSpareBytes costs
  // little to allocate and is not kept.
  static constexpr size_t kMaxSpares = 2;
  static constexpr size_t kMinSpareBytes = size_t{64} << 10;
  static constexpr size_t kMaxSpareBytes = size_t{16} << 20;

  PackedEvents() = default;
  PackedEvents(PackedEvents&&) noexcept = default;
  PackedEvents& operator=(PackedEvents&&) noexcept = default;
  PackedEvents(const PackedEvents&) = default;
  PackedEvents& operator=(const PackedEvents&) = default;
  // Hands `bytes` and `events` to the spare list (when their size is worth
  // keeping and the list has room).
  ~PackedEvents();

  // Takes a spare set's buffers, if any, in place of this one's own (which
  // must be empty); they come back empty, with their capacity. Thread-safe,
  // as is the destructor.
  void TakeSpareStorage();

  PackedBytes bytes;  // serialized tb::Events, each as EventOut::event
  std::vector<Event> events;
  std::vector<Series> series;

  std::string_view event(size_t i) const {
    const size_t begin = i == 0 ? 0 : events[i - 1].end;
    return std::string_view(bytes).substr(begin, events[i].end - begin);
  }
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_PACKED_EVENTS_H_
