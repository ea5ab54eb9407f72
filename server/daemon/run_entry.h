// Run's queue entries and a written group's result: private to run.cc and
// run_write.cc (the writer half of Run, split out to keep each file readable).
#ifndef TBLOG_DAEMON_RUN_ENTRY_H_
#define TBLOG_DAEMON_RUN_ENTRY_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "daemon/run.h"

namespace tblog::daemon {

struct Run::Entry {
  enum class Type { kBatch, kDuplicate, kEvents, kFlush, kClose };
  Type type = Type::kBatch;
  bool ready = false;  // guarded by the run's mu_
  // kBatch, kDuplicate. Immutable once queued, except `converted`, which only
  // the converting worker writes before it sets `ready`.
  v1::WriteRequest request;
  double receive_time = 0;
  convert::StreamTagsRef stream_tags;  // kBatch: the dictionary of its stream
  std::vector<absl::StatusOr<Converted>> converted;
  std::shared_ptr<AckSink> sink;
  size_t charged_bytes = 0;
  // kEvents, kClose
  Converted events;
  // kEvents: `events` are the reduced points due when the writer takes it
  // (WriteDueReductions).
  bool take_due_reductions = false;
  // kFlush, kClose
  bool sync = false;
  Done done;
  // kBatch, kEvents: where a write stopped by an I/O error resumes (the
  // record, then its part: side files first, then events), so a retried
  // entry writes nothing twice. Touched only by the writer.
  int next_record = 0;
  size_t next_part = 0;
  std::vector<v1::RecordError> errors;  // kBatch: rejected records so far
};

struct Run::GroupResult {
  // The group entries from `stuck` on were not (fully) written because of an
  // I/O error: they go back to the front of the queue, except flushes (which
  // fail) and, when the group closes the run, those before the close, which
  // are given up unwritten (acknowledged, but not as written).
  static constexpr size_t kNone = static_cast<size_t>(-1);
  size_t stuck = kNone;
  size_t close_index = kNone;
  bool recovered = false;  // a retry found the files writable again
  std::vector<uint64_t> records_written;             // per group entry
  std::vector<absl::Status> status;                  // per group entry (control entries)
  absl::Status io_error;                             // first I/O error: becomes sticky
  bool flushed = false;
  bool durable = false;
  uint64_t bytes_written = 0;  // totals of the run's files after the group
  uint32_t files = 0;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_RUN_ENTRY_H_
