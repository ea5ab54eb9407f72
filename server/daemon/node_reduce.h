// `--upstream-forward reduced` (README "Upstream mode"): a node daemon that
// writes its runs itself, except the reduced records (Record.reduce), whose
// contributions it combines per point and forwards to the upstream tblogd as
// partial aggregates (Reduce.partial) under a writer id of its own
// (NodeWriterId, node_reduce_sender.h). This is
// the combining half and the acknowledgement gate; node_reduce_sender.h sends
// the partials.
//
// Combining: the run's writer hands each contribution over (Take) instead of
// merging it into the run's own reductions (aggregate.h). Contributions of
// one (run, subrun, tag, step) merge into one pending point, which records
// the batches (run, writer, sequence) whose contributions it holds. A point
// is due when every writer that has contributed to its run on this node has
// reported it, when its group (Reduce.group_size) is complete, or
// kNodeReduceDelay after its first contribution, whichever is first; the
// sender then takes it (TakeDue) into a partial. A contribution arriving
// after its point went opens a new point: the upstream merges the partials,
// and their contributor ids keep anything from being counted twice.
//
// The ack rule: a client batch is acknowledged only once its records are in
// the local files AND every partial holding its contributions has been
// acknowledged by the upstream. The run asks Defer() for each batch it
// would acknowledge: a batch still held is acknowledged later, by this
// class, through its AckSink, once its last partial is acknowledged
// (Acknowledged). Every sequence the run reports for a writer (acks,
// OpenRun's writer_sequences, the resume floor) goes through Cap(): never at
// or above a batch still held, nor past the last batch the run passed to
// Defer since this daemon started, so a client that reconnects resends it. A
// resent batch the local run already holds is a duplicate there, but its
// contributions are taken again (the upstream drops a contributor it has).
// After this daemon restarts it knows nothing of what the upstream has, so
// until a writer sends again its sequences are reported as 0: the writer
// resends every batch it has not had acknowledged (what it holds), and the
// local run drops what it already has.
//
// Memory: pending and unacknowledged points of all runs hold at most
// kMaxHeldBytes; a contribution that would open another point past it is
// refused (RESOURCE_EXHAUSTED, as a run's own reductions are). While the
// upstream is down nothing is acknowledged, so the clients' own bounded
// buffers fill and they block: the flow control of `all` mode.
//
// Thread safety: every method is thread-safe (one mutex, never held while
// calling an AckSink). The run calls Take, Defer and Cap under its own lock:
// the run's lock comes before this one, and this class never calls into a run.
#ifndef TBLOG_DAEMON_NODE_REDUCE_H_
#define TBLOG_DAEMON_NODE_REDUCE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "daemon/record_converter.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

class AckSink;

// How long a node waits for the rest of its local writers before sending a
// point's partial anyway: far below any sensible --reduce-timeout (the
// upstream's), so a slow or dead rank delays the node's other ranks' values
// by at most this much.
inline constexpr absl::Duration kNodeReduceDelay = absl::Milliseconds(500);

// A partial ready to go upstream: its record, and the batches it holds.
struct NodePartial {
  v1::Record record;
  // (writer id, sequence) of the local batches whose contributions it holds.
  std::vector<std::pair<std::string, uint64_t>> batches;
  size_t bytes = 0;  // of NodeReduce's held bytes
};

class NodeReduce {
 public:
  static constexpr size_t kMaxHeldBytes = size_t{256} << 20;

  // `delay`: kNodeReduceDelay, shorter in tests.
  explicit NodeReduce(absl::Duration delay = kNodeReduceDelay);
  ~NodeReduce();
  NodeReduce(const NodeReduce&) = delete;
  NodeReduce& operator=(const NodeReduce&) = delete;

  // A client opened `run_id` here (OpenRun succeeded): its reduce settings
  // are what the node's own OpenRun upstream asks for. The first non-zero
  // value of each is kept.
  void NoteOpen(const std::string& run_id, const v1::OpenRunRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Takes `converted.contribution` of batch `sequence` of `writer_id` (0:
  // unsequenced, then not held back) and returns `converted` without it (the
  // kept value, if any, is written locally). A `resent` batch (one the local
  // run holds already) may have reached the upstream before: its
  // contribution goes in a partial of its own, since the upstream drops a
  // whole partial when it counted any of its contributors. INVALID_ARGUMENT when the
  // contribution has no group size (neither its own nor the run's) or
  // disagrees with its pending point (op, kind, group size);
  // RESOURCE_EXHAUSTED past kMaxHeldBytes. `sink` gets the batch's ack when
  // it is deferred (Defer).
  absl::StatusOr<Converted> Take(const std::string& run_id, const std::string& writer_id,
                                 uint64_t sequence, bool resent,
                                 const std::shared_ptr<AckSink>& sink, Converted converted)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The run wrote batch `sequence` of `writer_id` (handed it to the OS) and
  // is about to acknowledge it: true when a partial still holds its
  // contributions; this class then sends its ack (completed_batches 1) once
  // they are all acknowledged upstream. A point goes upstream only once
  // every batch it holds got here and was flushed (in the run's checkpoint,
  // as Cap learns from the flushed_sequence of the run's acks): so whatever
  // reached the upstream is recorded here, and a batch the client resends
  // after a crash of this daemon is either new to both or a local duplicate
  // (`resent` in Take). This costs up to one --flush-interval of latency.
  bool Defer(const std::string& run_id, const std::string& writer_id, uint64_t sequence)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Caps the sequences of an ack the run is about to send to `writer_id`
  // below its first batch still held and at the last batch it passed to
  // Defer since this daemon started (and remembers the run's own values,
  // for the deferred acks).
  void Cap(const std::string& run_id, const std::string& writer_id, v1::WriteResponse& ack)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Runs `done` once no batch of `writer_id` through `through_sequence` (0:
  // any) is held any more: at once when none is, else from Acknowledged. A
  // writer's Flush completes only then, since a client takes a completed
  // Flush as an ack of every batch it covers.
  void WhenReleased(const std::string& run_id, const std::string& writer_id,
                    uint64_t through_sequence, absl::AnyInvocable<void() &&> done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The sequence to report for `writer_id` whose batches the run holds
  // through `written` (OpenRun's writer_sequences): below its first batch
  // still held; 0 for a writer not seen since this daemon started.
  uint64_t CapReported(const std::string& run_id, const std::string& writer_id, uint64_t written)
      ABSL_LOCKS_EXCLUDED(mu_);

  // For the sender. The runs with points due at `now` (all pending ones with
  // `all`, at shutdown), and their reduce settings.
  struct RunSettings {
    uint32_t group_size = 0;
    double timeout_seconds = 0;
  };
  std::vector<std::string> RunsWithDue(absl::Time now, bool all) const ABSL_LOCKS_EXCLUDED(mu_);
  RunSettings Settings(const std::string& run_id) const ABSL_LOCKS_EXCLUDED(mu_);
  // Takes the due points of `run_id` (at most `max_points`) as partials.
  std::vector<NodePartial> TakeDue(const std::string& run_id, absl::Time now, bool all,
                                   size_t max_points) ABSL_LOCKS_EXCLUDED(mu_);
  // The upstream acknowledged `partials` of `run_id`: batches no partial
  // holds any more are acknowledged to their writers.
  void Acknowledged(const std::string& run_id, const std::vector<NodePartial>& partials)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The earliest time a pending point falls due; InfiniteFuture when none.
  absl::Time NextDue() const ABSL_LOCKS_EXCLUDED(mu_);

  // Figures, for logs and tests.
  struct Stats {
    uint64_t contributions = 0;  // taken
    uint64_t partials_sent = 0;  // acknowledged by the upstream
    uint64_t batches_held = 0;   // now
    size_t held_bytes = 0;       // now
  };
  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // (subrun, tag, step, the contributors of a resent contribution sent
  // alone; "" for the point that combines the others).
  using PointKey = std::tuple<std::string, std::string, int64_t, std::string>;
  using BatchId = std::pair<std::string, uint64_t>;                 // (writer, sequence)
  struct Point;
  struct HeldBatch {
    int points = 0;  // pending or unacknowledged points holding its contributions
    bool written = false;   // in the local files (Defer)
    bool deferred = false;  // its ack waits for the upstream
    std::weak_ptr<AckSink> sink;
  };
  struct WriterView {
    uint64_t written = 0;  // the run's own values, last seen in Cap
    uint64_t flushed = 0;
    uint64_t durable = 0;
    // The highest sequence the run has handed to Defer since this daemon
    // started: every batch through it has been taken (Take). A resumed run
    // starts its sequences at what the checkpoint holds, before the
    // client's resends of those batches have been taken again; reporting
    // them then would let the client drop batches whose contributions this
    // process has not sent upstream yet (lost if it is killed before).
    uint64_t reached = 0;
  };
  struct RunState;

  // The lowest sequence of `writer` still held in `run`, 0 when none.
  static uint64_t FirstHeld(const RunState& run, const std::string& writer);
  // `value` capped below the first batch of `writer` still held and at the
  // last one that reached Defer (WriterView::reached).
  static uint64_t CapValue(const RunState& run, const std::string& writer, uint64_t value);

  const absl::Duration delay_;
  mutable Mutex mu_;
  std::map<std::string, std::unique_ptr<RunState>> runs_ ABSL_GUARDED_BY(mu_);
  size_t held_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t contributions_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t partials_sent_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t batches_held_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_NODE_REDUCE_H_
