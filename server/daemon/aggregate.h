// Reductions across writers, the run's half (tblog.proto, "Reductions across
// writers"; the converter's half is reduce_convert.h): one RunReductions per
// run merges the contributions of its writers per point (subrun, tag, step)
// as their batches are written, and hands out each point's events once:
//  - with the batch of the contribution that completes its group (Absorb),
//    so a completed point is written, and acknowledged, with that batch;
//  - or, when the run's reduce timeout has passed since its first
//    contribution, to the run's flusher tick (TakeDue), or at the run's close
//    (TakeAll), from what arrived: the rest of the group counts as missing.
// A contribution for a pending point whose contributor it counted already is
// a duplicate (counted, dropped). One for no pending point, at or below the
// last step handed out for its subrun and tag, is late (counted, dropped):
// its point was written (or a later one of the series was, and TensorBoard
// keeps a tag's points in step order). A resumed run learns the last steps
// its files hold from its checkpoint and the resume scan (NoteWritten), so a
// contribution resent after a daemon crash does not write its point again.
//
// Crash durability: a contribution merged into a point that stays pending is
// handed back (Absorb) as a contribution record (daemon/contribution_record.h)
// to be written with its batch, so the batch's acknowledgement means the
// contribution is in the files; the point's event, once written, stands for
// its contributions. The run's checkpoint holds every pending point's state
// (PendingRecords), since the resume scan reads only past it; a resumed run
// gets the pending points back (Restore: the checkpoint's, then the records
// the scan read) with their contributors, so a resent contribution of a
// restored contributor is a duplicate, and later contributions or the timeout
// (counted from the restart) complete them.
//
// Memory: one entry per pending point (a scalar's state is a few numbers; an
// exponential histogram's, the range of its 1548 bins holding values) plus
// its contributors' ids, and the last step of each reduced series. The
// pending points of a run hold at most kMaxPendingBytes: a contribution that
// would open another point past it is refused (RESOURCE_EXHAUSTED), so
// writers cannot grow the daemon's memory without bound with points that
// never complete.
//
// Thread safety: every method is thread-safe (one mutex); the run's writer
// calls Absorb, TakeDue, TakeAll, WrittenSteps and PendingRecords (so what
// they hand out is in file order), GetRun AddTo.
#ifndef TBLOG_DAEMON_AGGREGATE_H_
#define TBLOG_DAEMON_AGGREGATE_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "daemon/checkpoint.h"
#include "daemon/metrics_reduce.h"
#include "daemon/record_converter.h"
#include "daemon/reduce_convert.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

class RunReductions {
 public:
  static constexpr size_t kMaxPendingBytes = size_t{256} << 20;

  // `default_timeout` (--reduce-timeout) applies until an OpenRun gives the
  // run its own. `metrics` (borrowed, may be null) gets the daemon-wide counts.
  RunReductions(absl::Duration default_timeout, ReduceMetrics* metrics);
  RunReductions(const RunReductions&) = delete;
  RunReductions& operator=(const RunReductions&) = delete;

  // The reduce fields of an OpenRunRequest, checked before anything is
  // opened: INVALID_ARGUMENT naming the field.
  static absl::Status ValidateOpen(const v1::OpenRunRequest& request);

  // Takes the reduce settings of an OpenRun (validated): a non-zero group
  // size or timeout fixes the run's the first time; another non-zero value
  // later is INVALID_ARGUMENT naming both, and changes nothing.
  absl::Status Configure(const v1::OpenRunRequest& request) ABSL_LOCKS_EXCLUDED(mu_);

  // Merges `converted.contribution` (from writer `writer_id`) into its point
  // and returns `converted` without it, plus the point's events when its
  // group is now complete. INVALID_ARGUMENT (the record is rejected, nothing
  // merged) when the contribution has no group size (neither its own nor the
  // run's) or disagrees with the point's first one (group size, op, kind);
  // RESOURCE_EXHAUSTED when it would open a point past kMaxPendingBytes.
  // A late or duplicate contribution is counted and dropped, not an error.
  // The events handed back that the reductions made (the contribution's
  // record when its point stays pending, the point's event when it is now
  // complete) have EventOut::reduced set.
  absl::StatusOr<Converted> Absorb(std::string_view writer_id, Converted converted,
                                   absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // Takes `steps` (per (subrun, tag), the highest step the run's files hold:
  // ResumeRepair::last_steps, daemon/resume_scan.h) as the last step handed
  // out of each series, so that after a restart a contribution at or below it
  // is late, never a second point (its point, or a later one of the series,
  // is written). `reduced` (the checkpoint's reduced_steps) names the series
  // known to be reduced ones: WrittenSteps keeps them. Called before the run
  // takes writes.
  void NoteWritten(const SeriesSteps& steps, const SeriesSteps& reduced) ABSL_LOCKS_EXCLUDED(mu_);
  // The last step of each reduced series (handed out since the start, or
  // named by NoteWritten's `reduced`), for the run's checkpoint, which gives
  // them back after a restart (the scan reads only past it). Taken by the
  // run's writer (as TakeDue is), so a point it counts is in the files.
  SeriesSteps WrittenSteps() const ABSL_LOCKS_EXCLUDED(mu_);

  // What Restore took back.
  struct RestoreCounts {
    uint64_t points = 0;        // pending points restored
    uint64_t contributions = 0; // contributors they hold
    uint64_t undecodable = 0;   // records skipped (not valid, or disagreeing)
  };
  // Restores the pending points of `records` (serialized PartialRecords: the
  // checkpoint's pending points, then the contribution records the resume
  // scan read past it; ResumeRepair::contributions), merging the records of
  // one point and skipping a contributor it holds already. A record at or
  // below its series' last written step (NoteWritten, so call that first) is
  // skipped: its point is in the files. A restored point's timeout counts
  // from `now`; one whose group is complete is due at once. Called before
  // the run takes writes.
  RestoreCounts Restore(const std::vector<std::string>& records, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Every pending point's state, serialized PartialRecords with all its
  // contributors: for the run's checkpoint (CheckpointState::pending_points),
  // taken by the run's writer right after the flush that the checkpoint's
  // positions describe, so the checkpoint and the records past it hold each
  // contribution once.
  std::vector<std::string> PendingRecords() const ABSL_LOCKS_EXCLUDED(mu_);

  // True when a pending point's timeout has passed.
  bool HasDue(absl::Time now) const ABSL_LOCKS_EXCLUDED(mu_);
  // The events of every point whose timeout has passed (written from what
  // arrived), in key order.
  Converted TakeDue(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // The events of every pending point (the run closes).
  Converted TakeAll(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // RunInfo.reduce_* (14-17).
  void AddTo(v1::RunInfo& info) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // (subrun, tag, step)
  using Key = std::tuple<std::string, std::string, int64_t>;
  using Series = std::pair<std::string, std::string>;  // (subrun, tag)
  struct Point {
    v1::Record head;  // tag, step, subrun, latest wall_time, first's display_name/description
    v1::ReduceOp op = v1::REDUCE_OP_UNSPECIFIED;
    bool histogram = false;
    v1::ScalarStyle style = v1::SCALAR_STYLE_TENSOR;
    uint32_t group_size = 0;
    ScalarState scalar;
    HistogramState histo;
    absl::flat_hash_set<std::string> contributors;
    absl::Time first_arrival;
    absl::Time deadline;
    size_t bytes = 0;  // about what it holds, in pending_bytes_
  };
  // A new point of `c`'s key, with nothing merged yet.
  Point NewPoint(const Contribution& c, uint32_t group_size, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Merges `c` (of contributors `ids`) into `point`; false (nothing merged)
  // when the point holds one of `ids` already.
  bool MergeInto(Point& point, const Contribution& c, const std::vector<std::string>& ids)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands `point` out: its events, counts, and its series' last step.
  Converted Finish(const Key& key, Point point, absl::Time now, bool timed_out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration TimeoutLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration default_timeout_;
  ReduceMetrics* const metrics_;

  mutable Mutex mu_;
  uint32_t group_size_ ABSL_GUARDED_BY(mu_) = 0;                        // 0: not set
  absl::Duration timeout_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();  // 0: the default
  std::map<Key, Point> pending_ ABSL_GUARDED_BY(mu_);
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The last step handed out (or that the files hold), by Series: a first
  // contribution at or below it is late.
  SeriesSteps last_step_ ABSL_GUARDED_BY(mu_);
  // The series of last_step_ known to be reduced (not every tag the resume
  // scan saw): what WrittenSteps checkpoints.
  std::set<Series> reduced_series_ ABSL_GUARDED_BY(mu_);
  uint64_t points_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t late_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t missing_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t duplicate_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_AGGREGATE_H_
