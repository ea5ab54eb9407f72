// The sequence rule of one writer of a run (tblog.proto, WriteRequest.sequence):
// which sequenced batches a run takes, which are resends, and which break the
// rule. Knows nothing of queues or files; the Run keeps one per writer and
// calls it under its lock.
//
// The rule: within a stream each batch is the previous one + 1. A stream's
// first batch is at most the highest the run holds or has queued + 1 (else a
// gap), and above the resume floor: what the first OpenRun after the writer's
// previous stream began reported for it (NoteReported). Batches at or below
// what the run holds or has queued are resends (the Run acknowledges them as
// duplicates). A stream is told apart by its AckSink.
//
// Thread safety: none; the owner serializes calls.
#ifndef TBLOG_DAEMON_SEQUENCE_CONTRACT_H_
#define TBLOG_DAEMON_SEQUENCE_CONTRACT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace tblog::daemon {

class AckSink;

class SequenceContract {
 public:
  // A writer resumed from a checkpoint: OpenRun reports `reported` now.
  explicit SequenceContract(uint64_t reported = 0);

  // OK when batch `sequence` (not 0) from `sink` may be queued, the run
  // holding or having queued this writer's batches through `enqueued`; it is
  // then the stream's latest. Otherwise OUT_OF_RANGE naming `writer_id`, the
  // expected and the received sequence; nothing changes.
  absl::Status Admit(const std::string& writer_id, uint64_t sequence, uint64_t enqueued,
                     const std::shared_ptr<AckSink>& sink);

  // OpenRun reports `written` for this writer: the first report since its
  // latest stream began becomes the floor. Later ones must not raise it (the
  // writer may have asked before them, and resends from its answer).
  void NoteReported(uint64_t written);

  uint64_t resume_floor() const { return resume_floor_; }

 private:
  // The sink of the latest admitted batch (a weak_ptr keeps its control
  // block, so a new sink at a reused address is still told apart) and that
  // batch's sequence.
  std::weak_ptr<AckSink> stream_;
  uint64_t stream_sequence_ = 0;
  uint64_t resume_floor_ = 0;
  bool floor_open_ = true;  // a stream began since the floor was set
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_SEQUENCE_CONTRACT_H_
