// Text records: markdown, in TensorBoard's text plugin layout or (torch_style)
// PyTorch's add_text one, or a table of strings of rank 1 or 2.
#ifndef TBLOG_DAEMON_CONVERT_TEXT_H_
#define TBLOG_DAEMON_CONVERT_TEXT_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "daemon/options.h"
#include "engine/io/tensor_view.h"  // the tb:: alias
#include "tblog/tensorboard/summary.pb.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// Exactly one of markdown and table must be set. A table's shape has rank 1
// or 2 with dims >= 1 and one cell per element, in row-major order; it has no
// torch_style form. Each cell, and all cells together, hold at most
// limits.max_text_bytes.
absl::StatusOr<tb::Summary::Value> ConvertText(std::string_view tag, const v1::Text& text,
                                               const Limits& limits);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_TEXT_H_
