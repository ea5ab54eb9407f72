// Contribution records: how a daemon's event files keep the contributions to
// reduced points (daemon/aggregate.h) that are not written yet, so that a
// daemon killed before a point's group completes restores the point, with its
// contributors, from its own files (daemon/resume_scan.h).
//
// A contribution record is one record of the event file, like a batch marker
// (daemon/batch_marker.h): an Event whose only known field is wall_time (the
// contribution's), plus field kContributionField (length-delimited) holding a
// serialized tblog.v1.Record: the point's tag, step, subrun, display name and
// description, its kind (a `scalar` with its style, or an EXPONENTIAL
// `histogram` with no values), and `reduce` with the op, the point's group
// size and a `partial` that holds the contribution's state and its
// contributors' ids: what a client could send as a ReducePartial, and it is
// read back through the same validation. One writer's scalar is written
// compact, as the client sent it (its value and weight, no partial, no writer
// id: the batch marker before it names the writer). TensorBoard's readers skip it as
// they skip a batch marker: neither defines the field, and the Event has no
// summary, graph or session log.
//
// A reduced point's event (PointEvents) carries field kReducedPointField
// (varint 1) besides its summary: the readers ignore the unknown field and
// show the point; the resume scan tells the point from the events of the
// batch it was written with. Neither kind counts as one of its batch's events
// (EventOut::reduced): whether a resent contribution writes one depends on
// the reductions' state (a restored contributor is a duplicate, a written
// point's contribution is late), not on the batch, so a resend after a crash
// skips exactly the batch's own events that the files hold.
//
// Everything here is pure; every function is thread-safe.
#ifndef TBLOG_DAEMON_CONTRIBUTION_RECORD_H_
#define TBLOG_DAEMON_CONTRIBUTION_RECORD_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/batch_marker.h"  // kContributionField, kReducedPointField
#include "daemon/record_converter.h"
#include "daemon/reduce_convert.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

// A point's state as a tblog.v1.Record carrying a ReducePartial (see the file
// comment): `head` gives tag, step, subrun, wall_time, display name and
// description; `contributors` (at least one) are the partial's ids.
v1::Record PartialRecord(const v1::Record& head, v1::ReduceOp op, bool histogram,
                         v1::ScalarStyle style, uint32_t group_size, const ScalarState& scalar,
                         const HistogramState& histo, const std::vector<std::string>& contributors);

// The Record a contribution record holds for contribution `c` (of
// `contributors`) to a point of group size `group_size`, serialized. One
// writer's scalar (no ReducePartial of its own) is written compact, as the
// client sent it: its value and weight, no partial and no writer id (the
// batch marker before it names the writer), about half the bytes of a
// partial; everything else as PartialRecord.
std::string ContributionRecordBytes(const Contribution& c, uint32_t group_size,
                                    const std::vector<std::string>& contributors);

// The event of a contribution record holding `record` (serialized), subrun
// `subrun`, with EventOut::reduced set.
EventOut ContributionEvent(std::string_view subrun, std::string_view record, double wall_time);

// Decodes field kContributionField's bytes (or a checkpoint's pending point)
// into a Contribution with its contributors and group size, validated as a
// client's record is: DATA_LOSS naming what is wrong. `batch_writer` is the
// writer of the batch the record was written with: the contributor of a
// compact record (ContributionRecordBytes); "" where there is none (a
// checkpoint's pending point is always a partial).
absl::StatusOr<Contribution> DecodePartialRecord(std::string_view record,
                                                 std::string_view batch_writer = {});

// Marks `event`, a reduced point's event, with field kReducedPointField and
// EventOut::reduced.
void MarkReducedPoint(EventOut& event);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_CONTRIBUTION_RECORD_H_
