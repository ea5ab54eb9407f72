// Custom-scalars records: the layout of TensorBoard's custom scalars
// dashboard (categories of multiline and margin charts over scalar tags). The
// tag is fixed by TensorBoard, so the record's is not used.
#ifndef TBLOG_DAEMON_CONVERT_CUSTOM_SCALARS_H_
#define TBLOG_DAEMON_CONVERT_CUSTOM_SCALARS_H_

#include "absl/status/statusor.h"
#include "engine/io/tensor_view.h"  // the tb:: alias
#include "tblog/tensorboard/summary.pb.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// Every chart must hold a multiline or a margin chart; the engine checks the rest.
absl::StatusOr<tb::Summary::Value> ConvertCustomScalars(const v1::CustomScalarLayout& layout);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_CUSTOM_SCALARS_H_
