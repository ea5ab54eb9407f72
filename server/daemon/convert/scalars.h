// Scalar records: one point (Record.scalar) as a summary value, and a batch of
// columns (Record.scalars) as one event per point. The columns are the
// daemon's hot path (millions of points per second), so their events are
// encoded by the engine's ScalarEventEncoder, not built as protobuf messages.
#ifndef TBLOG_DAEMON_CONVERT_SCALARS_H_
#define TBLOG_DAEMON_CONVERT_SCALARS_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "daemon/convert/stream_tags.h"
#include "daemon/options.h"
#include "daemon/record_converter.h"
#include "engine/io/tensor_view.h"  // the tb:: alias
#include "tblog/tensorboard/summary.pb.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// The Value of one scalar in its style; an unknown style is an error. A set
// value_f64 replaces value: a DT_DOUBLE tensor in the tensor style, rounded
// to float in the simple-value style.
absl::StatusOr<tb::Summary::Value> ConvertScalar(std::string_view tag, const v1::Scalar& scalar);

// One event per point, in column order, into Converted::packed (one series
// per tag entry used, with its subrun; Converted::events stays empty).
// Validates every tag entry, that the columns agree in length, each
// tag_index, each wall time (finite; 0 or no wall_times column means
// `receive_time`) and the style. The enclosing Record's tag, subrun, step
// and wall_time are not used: every point carries its own. With
// columns.stream_tag_ids, tag_index holds ids of `stream_tags` (the batch's
// stream dictionary, may be null: then every id is undefined), whose
// encoders are reused: no tag is validated or encoded per batch.
absl::StatusOr<Converted> ConvertScalarColumns(const v1::ScalarColumns& columns,
                                               double receive_time, const Limits& limits,
                                               const StreamTagsRef* stream_tags = nullptr);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_SCALARS_H_
