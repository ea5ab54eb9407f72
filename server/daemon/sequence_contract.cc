#include "daemon/sequence_contract.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "daemon/names.h"

namespace tblog::daemon {

SequenceContract::SequenceContract(uint64_t reported)
    : resume_floor_(reported), floor_open_(reported == 0) {}

absl::Status SequenceContract::Admit(const std::string& writer_id, uint64_t sequence,
                                     uint64_t enqueued, const std::shared_ptr<AckSink>& sink) {
  // Owner equality: the same sink, even if the old one is gone meanwhile.
  const std::weak_ptr<AckSink> stream = sink;
  const bool same_stream =
      sink != nullptr && !stream_.owner_before(stream) && !stream.owner_before(stream_);
  if (same_stream) {
    if (sequence != stream_sequence_ + 1) {
      return absl::OutOfRangeError(absl::StrCat(
          "writer ", EscapeForMessage(writer_id), ": expected batch sequence ",
          stream_sequence_ + 1, " after ", stream_sequence_, " on this stream, received ",
          sequence, "; sequences are consecutive per writer (tblog.proto, WriteRequest.sequence)"));
    }
  } else {
    if (sequence > enqueued + 1) {
      return absl::OutOfRangeError(absl::StrCat(
          "writer ", EscapeForMessage(writer_id), ": expected batch sequence ", enqueued + 1,
          " or lower, received ", sequence, ": the run holds or has queued its batches through ",
          enqueued, ", so batches in between are missing"));
    }
    if (sequence <= resume_floor_) {
      return absl::OutOfRangeError(absl::StrCat(
          "writer ", EscapeForMessage(writer_id),
          ": expected a new stream to start at batch sequence ", resume_floor_ + 1,
          " or later, received ", sequence, ": OpenRun reported its batches through ",
          resume_floor_, " as written (writer_sequences); a reconnecting writer resends only "
          "the batches after that, a restarted one continues after it or takes a new writer_id"));
    }
    stream_ = stream;
    floor_open_ = true;
  }
  stream_sequence_ = sequence;
  return absl::OkStatus();
}

void SequenceContract::NoteReported(uint64_t written) {
  if (!floor_open_) return;
  resume_floor_ = std::max(resume_floor_, written);
  floor_open_ = false;
}

}  // namespace tblog::daemon
