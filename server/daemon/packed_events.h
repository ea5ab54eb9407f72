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
// its largest cost, above the encoding itself. A client sending faster than
// the run's writer writes leaves several converted batches waiting at once
// (the worker pool converts them as they arrive), and each of them needs a
// set: with room for only two spares, nearly every batch of such a backlog
// faulted in a fresh one. So up to kMaxSpares sets are kept, of at most
// kMaxSpareBytes per buffer and kMaxSpareTotalBytes in all (the oldest
// leaving first): at most 64 MiB more than the daemon would hold otherwise,
// what two sets of the largest kept size came to before, and only while
// scalars flow: the daemon's flush tick frees the spares once none was taken
// or given back for kIdleRelease (ReleaseIdleSpares), so an idle daemon
// holds none (README, Memory).
#ifndef TBLOG_DAEMON_PACKED_EVENTS_H_
#define TBLOG_DAEMON_PACKED_EVENTS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "engine/io/raw_bytes.h"

namespace tblog::daemon {

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

  // Spare sets kept for reuse, the largest buffer kept (bytes or events'
  // capacity in bytes), and the most all spares hold together; a smaller
  // buffer than kMinSpareBytes costs little to allocate and is not kept.
  // Eight sets of a 1 MiB batch of scalars (about 7.5 MiB each) fit.
  static constexpr size_t kMaxSpares = 8;
  static constexpr size_t kMinSpareBytes = size_t{64} << 10;
  static constexpr size_t kMaxSpareBytes = size_t{16} << 20;
  static constexpr size_t kMaxSpareTotalBytes = size_t{64} << 20;

  PackedEvents() = default;
  PackedEvents(PackedEvents&&) noexcept = default;
  PackedEvents& operator=(PackedEvents&&) noexcept = default;
  PackedEvents(const PackedEvents&) = default;
  PackedEvents& operator=(const PackedEvents&) = default;
  // Hands `bytes` and `events` to the spare list (when their size is worth
  // keeping and the list has room).
  ~PackedEvents();

  // Takes a spare set's buffers in place of this one's own (which must be
  // empty), if one holds `bytes` and `events` without being much larger
  // (the daemon's budget counts what a batch holds by capacity, and
  // ConversionEstimate bounds it); they come back empty, with their
  // capacity. Thread-safe, as is the destructor.
  void TakeSpareStorage(size_t bytes, size_t events);

  // Frees every spare set when none was taken or given back since
  // `now - kIdleRelease`; returns the bytes freed. Thread-safe.
  static constexpr absl::Duration kIdleRelease = absl::Seconds(2);
  static size_t ReleaseIdleSpares(absl::Time now);
  // The bytes the spare sets hold now (tests, metrics).
  static size_t SpareBytes();

  // Serialized tb::Events, each as EventOut::event; grown without zero-fill
  // (EncodeTo overwrites every byte).
  RawBytes bytes;
  std::vector<Event> events;
  std::vector<Series> series;

  std::string_view event(size_t i) const {
    const size_t begin = i == 0 ? 0 : events[i - 1].end;
    return std::string_view(bytes).substr(begin, events[i].end - begin);
  }
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_PACKED_EVENTS_H_
