// Turns the records of the tblog.v1 API into TensorBoard events and projector
// side files, validating every field on the way. The summaries themselves are
// built by the engine (engine/*_summary.h, histogram.h, graph_summary.h, ...);
// this layer maps API fields onto those builders, enforces the daemon's
// Limits and names the offending field in every error. The conversion of each
// record kind is its own unit under daemon/convert/.
//
// Conventions, for every record kind:
//  - Errors are INVALID_ARGUMENT, "<kind> \"<tag>\": <field>: <reason>".
//  - wall_time must be finite; 0 means the time the daemon received it.
//  - Any int64 step is accepted, negative ones included: TensorBoard stores
//    steps as int64 and orders points by them, it does not require them >= 0.
//  - Unknown enum values (proto3 keeps them) are rejected, naming the field.
//  - display_name and description go into the value's metadata. They are
//    ignored by kinds whose tag TensorBoard fixes (hparams, graph, custom
//    scalars), for which Record.tag is optional too.
#ifndef TBLOG_DAEMON_RECORD_CONVERTER_H_
#define TBLOG_DAEMON_RECORD_CONVERTER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/convert/stream_tags.h"
#include "daemon/options.h"
#include "daemon/packed_events.h"
#include "daemon/shm_ring.h"
#include "engine/histogram/parallel.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

// One event for the run's event file (subrun "") or a sub-run's.
struct EventOut {
  std::string subrun;
  std::string event;  // a serialized tb::Event with wall_time, step and its payload
  // When tag_size > 0: the event's first value's tag is
  // event.substr(tag_offset, tag_size) and its step is `step`, so the writer
  // need not parse it (set by the scalar converter, which writes millions).
  uint32_t tag_offset = 0;
  uint32_t tag_size = 0;
  int64_t step = 0;
  // Written by the run's reductions (a reduced point, or a contribution
  // record: daemon/contribution_record.h), not one of its batch's own events:
  // the resume scan does not count it, and a resend does not skip for it.
  bool reduced = false;
};

// A file beside the event files (the projector's). Written at
// <run>/<subrun>/<relative_path>. With append_unique, `contents` is appended
// to the file unless the file already contains it (projector_config.pbtxt
// gathers one block per embedding); otherwise the file is replaced.
struct SideFile {
  std::string subrun;
  std::string relative_path;
  std::string contents;
  bool append_unique = false;
};

struct Contribution;  // reduce_convert.h

// What one record becomes, in write order: the side files, `events`, then
// `packed`'s events.
struct Converted {
  std::vector<EventOut> events;
  PackedEvents packed;  // scalar columns' events (and only theirs)
  std::vector<SideFile> files;
  // A reduced record (Record.reduce): its contribution, which the run merges
  // into its point (aggregate.h) before writing `events` (then only the
  // writer's kept value, if asked for). Null otherwise.
  std::shared_ptr<const Contribution> contribution;
  // Things written but worth a log line, e.g. "histogram \"w\": values: 3
  // NaN/Inf values left out".
  std::vector<std::string> warnings;
};

// A batch's records converted, in order, and what the batch holds afterwards
// (for the ByteBudget): its converted events plus what is left of its
// message once each record's payload was dropped.
struct BatchConversion {
  std::vector<absl::StatusOr<Converted>> converted;
  size_t held_bytes = 0;
};

// Stateless apart from its borrowed limits and runner, so every method is
// thread-safe and the daemon calls Convert on its worker threads.
class RecordConverter {
 public:
  // `parallel` (may be null) splits the histogram of a large tensor across
  // threads. `shm_rings` (may be null: no shared memory) finds the ring a
  // batch's WriteRequest.shm_ring names. All are borrowed and must outlive
  // the converter.
  RecordConverter(const Limits& limits, ParallelRunner* parallel,
                  const ShmRingLookup* shm_rings = nullptr);

  // Validates and converts one record; `receive_time` (seconds since the
  // epoch) stands in for a wall_time of 0. CPU-heavy for histograms, images,
  // audio, PR curves from predictions and embeddings. `writer_id` (the
  // batch's writer) names a reduced record's kept value (reduce_convert.h).
  // `stream_tags` (may be null): the dictionary that scalar columns with
  // stream_tag_ids refer to (convert/stream_tags.h).
  absl::StatusOr<Converted> Convert(const v1::Record& record, double receive_time,
                                    std::string_view writer_id = {},
                                    const convert::StreamTagsRef* stream_tags = nullptr) const;

  // Converts every record of `request`, dropping each record's payload
  // (tensor bytes, pixels, text) once it is converted, so that a batch never
  // holds both its input and its output for long. Tags, steps, sub-runs and
  // kinds stay, for the errors and metrics named after them. Tensors that
  // name a shared-memory slice are read from the ring of request.shm_ring,
  // which is kept mapped until the batch is converted. `stream_tags`: the
  // dictionary of the batch's stream, as for Convert.
  BatchConversion ConvertBatch(v1::WriteRequest& request, double receive_time,
                               const convert::StreamTagsRef* stream_tags = nullptr) const;

  // The events written when a run opens: with hparams (values or metrics set),
  // the experiment config and session start at step 0 (style per
  // hparams.torch_style); with purge_step, a SessionLog START at that step, as
  // PyTorch's SummaryWriter(purge_step=...) writes it. Only the hparams and
  // purge_step fields are looked at; names are the registry's to check.
  absl::StatusOr<Converted> OpenRunEvents(const v1::OpenRunRequest& request, double now) const;

  // The hparams session end written when a run closes, at step 0; nothing if
  // `hparams` has no values or metrics. UNSPECIFIED is written as SUCCESS, an
  // unknown status value as UNKNOWN. Cannot fail: every input maps to a valid
  // session end.
  Converted CloseRunEvents(v1::SessionStatus status, const v1::HParams& hparams, double now) const;

 private:
  const Limits& limits_;
  ParallelRunner* const parallel_;
  const ShmRingLookup* const shm_rings_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_RECORD_CONVERTER_H_
