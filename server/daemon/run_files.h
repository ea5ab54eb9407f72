// The files of one open run: its sub-runs' event files, the side files the
// converter produces (the projector's), and the checkpoint
// (daemon/checkpoint.h) that says which writers' batches those files hold.
// Everything the run's code does to the file system is done here: Run
// (run.h) decides what to write and when, RunFiles writes it.
//
// Contract: called by the run's writer (the one worker that Run lets write
// at a time; see run.h) and by the destructor. Each call holds the files lock
// mu_ for its whole I/O; mu_ guards the sub-run writers, the checkpoint file,
// the checkpointed writer sequences and the totals of closed files. Run
// never holds its queue lock while calling here, so the two locks are never
// held together (were they, the queue lock would be taken first).
//
// Batches and recovery (daemon/batch_marker.h, daemon/resume_scan.h): the
// files are append-only. Before a batch's first event in a sub-run RunFiles
// writes a batch marker (which also ends the batch before it there), and it
// ends every sub-run's open batch before a flush; NoteBatchWritten tells it a
// batch is whole, and the next marker in each sub-run it touched says so,
// with the number of sub-runs. A resumed run starts from the batches the
// resume scan found in part: when such a batch is resent, the events the
// files hold already are skipped, sub-run by sub-run, and only the rest is
// written. New event files are named by the daemon identity and with a second
// after every event file of their directory, so they sort last.
//
// Directory entries (durability): nothing here fsyncs a directory on the
// way to a flush. The entries RunFiles and its event file writers make (new
// event files, sub-run directories, .tblogd and the checkpoint) are fsynced
// with the next durable sync: each event file writer fsyncs its names right
// after its data (EventFileOptions::defer_directory_syncs), and
// WriteCheckpoint(sync) fsyncs the others before the checkpoint that lets Run
// report the data durable. See WriteCheckpoint.
//
// Errors: WriteParts tells an I/O error (the file system failed and nothing
// of the failing part was taken: retry it later) from a refusal of the record
// (a path through a non-directory, too many sub-runs): a retry resumes at the
// failing part, so nothing is written twice.
//
// Borrowed: `limits` and file_options.file_system (the daemon's options),
// which outlive every run. All file I/O goes through that FileSystem.
#ifndef TBLOG_DAEMON_RUN_FILES_H_
#define TBLOG_DAEMON_RUN_FILES_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "base/sync.h"
#include "daemon/checkpoint.h"
#include "daemon/options.h"
#include "daemon/record_converter.h"
#include "engine/io/event_file_writer.h"

namespace tblog::daemon {

// Creates `relative` ("a/b") under `base` on `fs`, one component at a time
// with mkdir, refusing any component that exists as a symlink or
// non-directory. `relative` must be validated already (no "..", not
// absolute). With `sync_parents`, fsyncs the parent of each directory it
// creates, so the new entries survive a machine crash.
absl::Status MakeDirectoriesUnder(FileSystem& fs, const std::string& base,
                                  std::string_view relative, bool sync_parents = false);
// Same, leaving the fsyncs to the caller: appends to `*created_in` the parent
// of each directory it creates (also those created before a failure).
absl::Status MakeDirectoriesUnder(FileSystem& fs, const std::string& base,
                                  std::string_view relative, std::vector<std::string>* created_in);

// What the run's event files hold, closed files included: Info()'s figures.
struct RunFileTotals {
  uint64_t bytes_written = 0;  // handed to the OS
  uint32_t files = 0;          // event files opened
};

class RunFiles {
 public:
  // `directory` exists; `writer_sequences` and `resumed` come from the
  // resume scan (empty for a new run) and are what the next checkpoint
  // starts from. Nothing is opened until needed. `steps_back` (borrowed, may
  // be null; the daemon's metric) counts the points of a batch whose step is
  // not above the last one of their tag, writer and sub-run: TensorBoard's
  // reader drops the points it holds at or after such a step.
  RunFiles(std::string run_id, std::string directory, EventFileOptions file_options,
           const Limits& limits, std::map<std::string, uint64_t> writer_sequences,
           ResumedFiles resumed = {}, std::atomic<uint64_t>* steps_back = nullptr);
  // Closes the event files, ignoring errors, without ending open batches:
  // only reached without CloseAll() in tests and failed opens.
  ~RunFiles();
  RunFiles(const RunFiles&) = delete;
  RunFiles& operator=(const RunFiles&) = delete;

  // Writes the parts of `converted` from *next_part on (side files first,
  // then events), advancing *next_part past each part written. On failure
  // *next_part is the failing part and `*io` says whether it was an I/O error
  // (nothing was taken; retry later) rather than a refusal of the record;
  // `*io` is left alone on success and on some refusals, so start it false.
  // `batch` is the writer batch the record belongs to (empty: events of no
  // batch, e.g. the hparams session start); the records of one batch come
  // one after the other, and an event the files hold from before a crash is
  // skipped (counted as written).
  absl::Status WriteParts(const Converted& converted, size_t* next_part, bool* io,
                          const BatchKey& batch = {}) ABSL_LOCKS_EXCLUDED(mu_);

  // Notes that batch `sequence` of `writer_id` is whole in the event writers:
  // the next checkpoint records it, and the sub-runs it touched get its end
  // marker. Never lowers a writer's sequence.
  void NoteBatchWritten(const std::string& writer_id, uint64_t sequence) ABSL_LOCKS_EXCLUDED(mu_);

  // Ends each sub-run's open batch with a marker, then hands every event
  // file's buffer to the OS; with `sync` (or the kOnFlush policy), also
  // fsyncs the files holding records not known fsynced, and never otherwise. `*synced`: no file holds such
  // records now. Every file is flushed; the first error is returned. After an
  // I/O error this is also the test that the files take data again (each
  // writer carries what it still buffers into a fresh file).
  absl::Status FlushAll(bool sync, bool* synced) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends each sub-run's open batch with a marker and hands what the event
  // writers buffer to the OS, without fsync or checkpoint: what Run does
  // after every group, so a batch acknowledged as written is in the files
  // (visible to TensorBoard, and safe from a kill of the daemon).
  absl::Status WriteOutAll() ABSL_LOCKS_EXCLUDED(mu_);

  // Rewrites the checkpoint (creating it on first use) with the sequences
  // noted, the batches the files hold in part, and each sub-run's current
  // file and length (carried over from the resume for the sub-runs not
  // written since), `reduced_steps` and `pending_points` (the run's
  // reductions' last steps and pending points, checkpoint.h); fsyncs it when
  // `sync`, after fsyncing the directories of every entry made since the
  // last such call (the durable_sequence an OK return lets Run report
  // implies those names survive a machine crash).
  // Call it after a FlushAll that succeeded, so the lengths are in the files.
  absl::Status WriteCheckpoint(bool sync, SeriesSteps reduced_steps = {},
                               std::vector<std::string> pending_points = {})
      ABSL_LOCKS_EXCLUDED(mu_);

  // Ends each sub-run's open batch and closes every event file (the first
  // error is returned); a later write opens new ones.
  absl::Status CloseAll() ABSL_LOCKS_EXCLUDED(mu_);

  RunFileTotals Totals() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct SubrunWriter {
    std::unique_ptr<EventFileWriter> writer;
    uint64_t records_since_sync = 0;  // written and not known fsynced
    BatchKey open;            // the batch the last marker began here (empty: none)
    uint32_t open_parts = 0;  // `open` is whole, in this many sub-runs (0: not yet)
  };

  // The writer of sub-run `subrun`, created (with its directory) on first use.
  absl::StatusOr<SubrunWriter*> Subrun(const std::string& subrun, bool* io)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteEvent(const EventOut& event, const BatchKey& batch, bool* io)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Per series of a PackedEvents, what its events need, looked up at its
  // first event of a WritePacked call instead of at every event.
  struct SeriesTarget;
  // Writes packed's events from *index on, as WriteEvent writes each,
  // advancing *index past each one written.
  absl::Status WritePacked(const PackedEvents& packed, size_t* index, const BatchKey& batch,
                           bool* io) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fills `target` for `series` (its writer; its batch's marker written).
  absl::Status FindTarget(const PackedEvents::Series& series, const BatchKey& batch, bool* io,
                          SeriesTarget& target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Per writer, sub-run and tag, the last step written; see steps_back.
  struct LastStep {
    int64_t step = 0;
    bool seen = false;    // a step was written
    bool warned = false;  // logged once
  };
  // Counts (steps_back_) a point of `writer_id` that goes back in step.
  void NoteStep(const std::string& writer_id, const EventOut& event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Same, for a point at `step` of the series whose last step is `last`.
  void NoteStep(LastStep& last, int64_t step, const std::string& writer_id,
                std::string_view subrun, std::string_view tag) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes a marker ending `writer`'s open batch and beginning `begin`.
  absl::Status SwitchBatch(SubrunWriter& writer, const BatchKey& begin)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends `entry`'s open batch, if any, with a marker (FlushAll, WriteOutAll).
  absl::Status EndOpenBatch(SubrunWriter& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CloseWriters(bool end_batches) ABSL_LOCKS_EXCLUDED(mu_);
  // Adds to unsynced_dirs_ (when the policy fsyncs at all).
  void NoteUnsyncedDirs(std::vector<std::string> dirs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes `batch` the one being written; one left unfinished (an I/O error,
  // then a close) is kept among the batches held in part.
  void StartBatch(const BatchKey& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteSideFile(const SideFile& file, bool* io) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends `contents` to `path` (created if missing) unless the file holds
  // them already.
  absl::Status AppendUnlessPresent(const std::string& path, std::string_view contents)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string run_id_;  // for messages
  const std::string daemon_id_;  // in file names and the checkpoint's
  const std::string directory_;
  const EventFileOptions file_options_;
  FileSystem& fs_;  // file_options_.file_system
  const Limits& limits_;

  mutable Mutex mu_;
  std::map<std::string, SubrunWriter> subruns_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<CheckpointFile> checkpoint_ ABSL_GUARDED_BY(mu_);
  // Directories holding entries made here and not yet fsynced: synced by the
  // next WriteCheckpoint(sync=true). A set: sub-runs share parents.
  std::set<std::string> unsynced_dirs_ ABSL_GUARDED_BY(mu_);
  // Per writer, the last batch sequence in the event writers: what the
  // checkpoint records.
  std::map<std::string, uint64_t> checkpoint_sequences_ ABSL_GUARDED_BY(mu_);
  // The batches the files hold in part (from the resume, or left unfinished
  // here), and per batch and sub-run the events a resend still skips.
  RecoveredBatches recovered_ ABSL_GUARDED_BY(mu_);
  std::map<BatchKey, std::map<std::string, uint64_t>> skip_ ABSL_GUARDED_BY(mu_);
  // The batch being written and, per sub-run it touched, its events written
  // (or skipped) there; `current_done_` once NoteBatchWritten saw it.
  BatchKey current_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> current_parts_ ABSL_GUARDED_BY(mu_);
  // current_parts_'s entry of the last event's sub-run (events of a batch
  // mostly share one): a lookup per sub-run change, not per event. Reset
  // whenever current_parts_ is cleared.
  uint64_t* recent_part_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string recent_part_subrun_ ABSL_GUARDED_BY(mu_);
  bool current_done_ ABSL_GUARDED_BY(mu_) = true;
  // Hashed by tag: a run may log 10,000 tags, and this is looked up per
  // point (per series and write for packed events). Nodes, so that a
  // SeriesTarget's pointer stays valid while other tags are added.
  using TagSteps = absl::node_hash_map<std::string, LastStep>;
  std::map<std::string, std::map<std::string, TagSteps>> last_steps_ ABSL_GUARDED_BY(mu_);
  // The tags of the (writer, sub-run) of the last point noted: a batch's
  // points mostly share both, so the two map lookups (32-byte writer ids
  // compared at each level) are paid once per change rather than per point.
  // Points into last_steps_, whose entries are never erased.
  TagSteps* recent_steps_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string recent_steps_writer_ ABSL_GUARDED_BY(mu_);
  std::string recent_steps_subrun_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t>* const steps_back_;
  // The resume's stream positions of the sub-runs not written since.
  std::vector<CheckpointState::EventFile> resumed_files_ ABSL_GUARDED_BY(mu_);
  uint64_t closed_files_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t closed_files_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_RUN_FILES_H_
