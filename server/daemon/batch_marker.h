// Batch markers: how tblogd's event files say which writer batches they hold,
// so that a daemon restarted after a crash knows, from the files alone, what
// a resent batch already put there (daemon/resume_scan.h).
//
// A marker is one record of the event file: an Event whose only known field
// is wall_time, plus field kBatchMarkerField (length-delimited), which
// TensorBoard's Event does not define. Both TensorBoard readers skip it: the
// Python EventAccumulator keeps the unknown field unparsed and finds neither
// a summary nor a graph nor a session log in it (it does not touch its
// purge state: that looks at summaries and session logs only); the Rust data
// server (prost) drops unknown fields and ignores an Event with no `what`
// but for its wall_time, which is why the marker carries the time it was
// written (never 0: that would move the run's start time to 1970). Its step
// is 0 and unused.
//
// Field kBatchMarkerField holds (hand-encoded, proto3 wire format):
//   message BatchMarker {
//     bytes  end_writer   = 1;  // the batch whose events end here...
//     uint64 end_sequence = 2;  //   (absent or 0: none)
//     uint32 end_parts    = 3;  // the batch is complete: it put events in this
//                               // many sub-runs (each ends with such a marker);
//                               // 0 = its events here stop, the batch did not
//                               // complete (an I/O error, a flush in between)
//     bytes  begin_writer   = 4;  // the batch whose events follow...
//     uint64 begin_sequence = 5;  //   (absent or 0: events of no batch follow)
//   }
// Stream rule, per sub-run (the daemon's own event files of one directory,
// in name order, as one stream): every event belongs to the batch that the
// last marker before it began, or to none. The daemon writes a marker before
// a batch's first event in a sub-run (ending the previous batch there), and
// ends each sub-run's open batch before a flush, so one marker per batch per
// sub-run in a flood, plus one per sub-run per flush.
#ifndef TBLOG_DAEMON_BATCH_MARKER_H_
#define TBLOG_DAEMON_BATCH_MARKER_H_

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

namespace tblog::daemon {

// The Event field number of a batch marker: far above TensorBoard's 1..10.
inline constexpr int kBatchMarkerField = 7474;
// The Event fields of a contribution record and of a reduced point's event
// (daemon/contribution_record.h).
inline constexpr int kContributionField = 7475;
inline constexpr int kReducedPointField = 7476;

// One writer batch.
struct BatchKey {
  std::string writer_id;
  uint64_t sequence = 0;  // 0: none (events of no batch)
  bool empty() const { return sequence == 0; }
  auto operator<=>(const BatchKey&) const = default;
};

struct BatchMarker {
  BatchKey end;          // empty: the marker ends no batch
  uint32_t end_parts = 0;
  BatchKey begin;        // empty: events of no batch follow
  bool operator==(const BatchMarker&) const = default;
};

// The serialized Event of `marker`, with `wall_time` (seconds since the epoch).
std::string EncodeBatchMarkerEvent(const BatchMarker& marker, double wall_time);

// What one serialized Event of an event file is to the resume scan.
enum class EventKind {
  kEvent,        // data (a summary, a graph, a session log...)
  kFileVersion,  // the first record of a file
  kMarker,       // a batch marker (*marker filled)
  kUndecodable,  // not an Event: counted as data
  // daemon/contribution_record.h: not events of their batch.
  kContribution,  // a contribution record (*contribution: its Record's bytes)
  kReducedPoint,  // a reduced point's summary event
};
// Classifies `event_bytes` by its top-level fields, without parsing the
// summary (the scan reads every record written since the checkpoint).
// `contribution` may be null.
EventKind ClassifyEvent(std::string_view event_bytes, BatchMarker* marker,
                        std::string_view* contribution = nullptr);

// The step and the first summary value's tag of `event_bytes`; false when it
// has no summary value with a tag. A wire-level look, cheap enough for every
// event of a batch.
bool TagAndStep(std::string_view event_bytes, std::string_view* tag, int64_t* step);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_BATCH_MARKER_H_
