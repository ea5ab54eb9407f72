// One open run: the ordered queue every write to it goes through, group
// commit and acknowledgements. Its files (event files, side files, the
// checkpoint) are a RunFiles (run_files.h) that the run owns.
//
// Queue: entries are batches (converted on the worker pool, possibly out of
// order) and control messages (events, flush, close) carrying a completion
// callback, so flush and close stay in order with the data. Whoever completes
// the front entry becomes the run's writer: it pops every ready entry, drops
// the lock, writes them (group commit), flushes when asked, rewrites the
// checkpoint, retakes the lock to publish sequences, then sends acks. One
// writer at a time, the only caller of the RunFiles.
//
// Locks: mu_ (the queue lock) guards the queue, the writers' sequences,
// parked flushes, the sticky error and the figures of Info(); it is never
// held across I/O nor while calling the RunFiles, whose own lock guards the
// files. So the two are never held together.
//
// I/O errors (disk full, a failing disk): the batch being written and every
// entry behind it go back to the front of the queue, unacknowledged, with
// the record (and part) to resume from, so nothing is lost nor written
// twice; flushes among them fail. The error is sticky: Submit() refuses new
// batches with UNAVAILABLE (the client reconnects and resends what was not
// acknowledged; what is still queued counts as a duplicate), has_unflushed()
// stays true so the daemon's flusher retries at every tick, and the first
// retry that finds the files writable again clears it. Queued bytes stay
// charged to the ByteBudget meanwhile. Closing the run during the error
// gives the queued batches up without acknowledging them as written.
#ifndef TBLOG_DAEMON_RUN_H_
#define TBLOG_DAEMON_RUN_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/aggregate.h"
#include "daemon/byte_budget.h"
#include "daemon/metrics.h"
#include "daemon/options.h"
#include "daemon/record_converter.h"
#include "daemon/run_files.h"
#include "daemon/sequence_contract.h"
#include "daemon/worker_pool.h"
#include "base/sync.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

class NodeReduce;

// The daemon-wide parts a run uses. All borrowed: they are owned by the
// Daemon and outlive every run (the daemon drains runs before destroying them).
struct RunContext {
  const DaemonOptions* options = nullptr;
  const RecordConverter* converter = nullptr;
  WorkerPool* workers = nullptr;
  ByteBudget* budget = nullptr;
  Metrics* metrics = nullptr;
  // `--upstream-forward reduced` only (else null): reduced records go to the
  // upstream through it instead of the run's own reductions (node_reduce.h).
  NodeReduce* node_reduce = nullptr;
};

// Receives the acknowledgements of a writer's batches: a Write stream or a
// WriteBatch call. Called on a worker thread, outside the run's locks; must
// not block.
class AckSink {
 public:
  virtual ~AckSink() = default;
  // `ack` holds the writer's cumulative sequences and the RecordErrors of
  // this sink's batches completed now; `completed_batches` counts them (0 for
  // a progress-only ack, e.g. durable_sequence advanced).
  virtual void OnAck(v1::WriteResponse ack, int completed_batches) = 0;
};

class Run : public std::enable_shared_from_this<Run> {
 public:
  using Done = absl::AnyInvocable<void(absl::Status) &&>;

  // `directory` exists (and was repaired if resumed); `writer_sequences` and
  // `resumed` come from the resume scan (daemon/resume_scan.h). Nothing is
  // written until the first entry.
  Run(RunContext context, std::string run_id, std::string directory,
      std::map<std::string, std::string> labels, std::string filename_suffix,
      std::map<std::string, uint64_t> writer_sequences, ResumedFiles resumed = {});
  ~Run();
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  // Queues one batch (request.writer_id set). `charged_bytes` were charged to
  // the ByteBudget and are released once the batch is written. `sink` gets
  // its ack (duplicates included, listed in duplicate_sequences). `sink` is
  // also the batch's stream: a batch from another sink than the writer's
  // previous one starts a new stream (see the sequence rule below).
  // FAILED_PRECONDITION when the run is closed, UNAVAILABLE while it has a
  // sticky I/O error, OUT_OF_RANGE when the sequence breaks the rule; nothing
  // is queued (and nothing released) then. Never blocks; thread-safe.
  //
  // The sequence rule is SequenceContract's (sequence_contract.h); 0 is
  // unsequenced and exempt. Batches at or below what the run holds or has
  // queued are resends: acknowledged as duplicates, not written.
  // `stream_tags`: the dictionary of the request's stream and its message
  // number (scalar columns with stream_tag_ids refer to it).
  absl::Status Submit(v1::WriteRequest request, std::shared_ptr<AckSink> sink,
                      size_t charged_bytes, convert::StreamTagsRef stream_tags = {});

  // Makes `sink` the receiver of the writer's progress acks (durable_sequence
  // advancing with no new batch). The newest subscriber wins.
  void Subscribe(const std::string& writer_id, std::weak_ptr<AckSink> sink);

  // Queues a flush (fsync too when `sync`); `done` runs once it is done. With
  // a writer_id, waits first until that writer's batches through
  // `through_sequence` are queued. Returns a ticket for CancelFlush.
  uint64_t Flush(const std::string& writer_id, uint64_t through_sequence, bool sync, Done done);
  // Drops a flush that still waits for its batches; `done` is not called.
  // False when it is already queued (then `done` runs as usual).
  bool CancelFlush(uint64_t ticket);

  // Queues events that were converted already (the hparams session start).
  void SubmitEvents(Converted events, Done done);

  // Writes `final_events`, flushes, syncs, writes the checkpoint and closes
  // the files; later Submits fail. `done` runs when it is all done.
  void Close(Converted final_events, Done done);
  // Calls `done` with the close's status once Close() has finished (at once
  // if it has): what a writer's data came to when the run closed under it.
  // FAILED_PRECONDITION at once while the run is open.
  void WhenClosed(Done done);

  // Queues the events of the reduced points whose timeout has passed
  // (aggregate.h), unless the run is closed (its close writes every pending
  // point). The daemon's flusher calls it at every tick.
  void WriteDueReductions(absl::Time now);

  v1::RunInfo Info() const;
  // Per writer, the last batch sequence written: what OpenRun reports, so a
  // reconnecting client resends only the batches after it. Also sets the
  // resume floor of each writer that started a stream since the last report:
  // its next stream must start above what this reported (Submit).
  std::map<std::string, uint64_t> WriterSequences();
  bool open() const;
  // True when data was written since the last flush (the flusher's test).
  bool has_unflushed() const;
  // True when written data has waited unsynced for the event files'
  // sync_interval (SyncPolicy::kInterval only): the flusher then flushes with
  // sync, so every batch becomes durable (and its writer gets a
  // durable_sequence ack) within about --fsync-interval, even when no more
  // data comes to trigger the policy.
  bool sync_due(absl::Time now) const;
  const std::string& run_id() const { return run_id_; }
  const std::string& directory() const { return directory_; }
  // The run's reductions across writers; thread-safe.
  RunReductions& reductions() { return reductions_; }

 private:
  struct Entry;
  struct WriterState {
    uint64_t enqueued = 0;  // highest sequence queued
    uint64_t written = 0;   // highest sequence written to the event writers
    uint64_t flushed = 0;   // written and flushed to the OS
    uint64_t durable = 0;   // flushed, fsynced and in the checkpoint
    std::weak_ptr<AckSink> subscriber;
    SequenceContract contract;  // the sequence rule (Submit)
  };
  struct ParkedFlush {
    std::string writer_id;
    uint64_t through_sequence;
    bool sync;
    Done done;
  };
  // What one group did, for publishing under mu_.
  struct GroupResult;

  void Enqueue(std::unique_ptr<Entry> entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Enqueues a kEvents entry of `events` and schedules the writer.
  void EnqueueEvents(Converted events, Done done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts a writer on the pool if the front entry is ready and none runs;
  // `first`: ahead of the tasks waiting (WorkerPool::SubmitFirst).
  void MaybeScheduleWriter(bool first = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ConvertBatch(Entry* entry) ABSL_LOCKS_EXCLUDED(mu_);
  // The group-commit loop; runs on a worker while writing_ is true.
  void WriteGroups() ABSL_LOCKS_EXCLUDED(mu_);
  // Writes `group` to the files (only the writer calls it); with `recovering`
  // (the run has an I/O error) first checks that the files take data again.
  void WriteGroup(std::vector<std::unique_ptr<Entry>>& group, bool recovering,
                  GroupResult& result) ABSL_LOCKS_EXCLUDED(mu_);

  const RunContext context_;
  const std::string run_id_;
  const std::string directory_;
  const std::map<std::string, std::string> labels_;

  mutable Mutex mu_;
  std::deque<std::unique_ptr<Entry>> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;   // Close() called: no new entries
  // Set when the close has finished; until then WhenClosed parks its calls.
  std::optional<absl::Status> close_status_ ABSL_GUARDED_BY(mu_);
  std::vector<Done> close_waiters_ ABSL_GUARDED_BY(mu_);
  // WriteDueReductions queued an entry the writer has not taken yet.
  bool due_reductions_queued_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status sticky_error_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, WriterState> writers_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, ParkedFlush> parked_flushes_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  bool unflushed_ ABSL_GUARDED_BY(mu_) = false;
  // When the oldest data not yet fsynced was written; InfiniteFuture = none.
  absl::Time unsynced_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  uint64_t records_written_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t records_rejected_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t batches_duplicate_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bytes_written_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t files_ ABSL_GUARDED_BY(mu_) = 0;

  // Used only by the writer (writing_ == true), never with mu_ held; its own
  // lock guards it.
  RunFiles run_files_;
  // Its own lock, taken under mu_ (WriteDueReductions) or alone; it never
  // calls back into the run.
  RunReductions reductions_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_RUN_H_
