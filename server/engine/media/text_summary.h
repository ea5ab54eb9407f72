// Text summaries for TensorBoard's text plugin: DT_STRING tensors, plugin
// "text" (empty content = TextPluginData version 0). A rank-0 string is
// rendered as Markdown; rank 1 and 2 as a table. The caller wraps the Value in
// an Event with step and wall_time. Functions are pure and thread-safe.
#ifndef TBLOG_ENGINE_MEDIA_TEXT_SUMMARY_H_
#define TBLOG_ENGINE_MEDIA_TEXT_SUMMARY_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/io/tensor_view.h"  // namespace alias tb
#include "tblog/tensorboard/summary.pb.h"

namespace tblog {

// Limit on the total bytes of text in one summary.
inline constexpr int64_t kMaxTextBytes = int64_t{16} << 20;

// OK when `text` is well-formed UTF-8 (no overlong forms, surrogates or code
// points above U+10FFFF); otherwise INVALID_ARGUMENT with the byte offset of
// the first bad sequence.
absl::Status ValidateUtf8(std::string_view text);

// TensorBoard's text summary: rank-0 string (Markdown), data_class TENSOR.
absl::StatusOr<tb::Summary::Value> MakeTextSummary(std::string_view tag, std::string_view markdown);

// PyTorch's SummaryWriter.add_text: tag "<tag>/text_summary", shape [1],
// data_class TENSOR.
absl::StatusOr<tb::Summary::Value> MakeTorchTextSummary(std::string_view tag,
                                                        std::string_view markdown);

// A table: `cells` row-major, shaped [rows] (one column) when columns == 0,
// else [rows, columns]; rows * max(columns, 1) must equal cells.size() and be
// >= 1. data_class TENSOR.
absl::StatusOr<tb::Summary::Value> MakeTextTableSummary(std::string_view tag,
                                                        std::span<const std::string> cells,
                                                        int64_t rows, int64_t columns = 0);

}  // namespace tblog

#endif  // TBLOG_ENGINE_MEDIA_TEXT_SUMMARY_H_
