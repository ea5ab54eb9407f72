// A report of what TensorBoard would find in a logdir: its runs, their files
// (with torn or corrupt tails), and per tag the plugin kind, data class, count,
// step range and last scalar. Behind `tblog-inspect` and `tblogd inspect`.
#ifndef TBLOG_ENGINE_IO_INSPECT_H_
#define TBLOG_ENGINE_IO_INSPECT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog {

struct FileReport {
  std::string name;     // basename
  uint64_t bytes = 0;   // size when read
  int64_t events = 0;   // events decoded, file_version included
  // Of `events`, those with nothing TensorBoard reads (no summary, graph or
  // other payload: tblogd's batch markers). Readers skip them.
  int64_t markers = 0;
  std::string state;    // "ok", "torn_tail", "corrupt", "undecodable" or "unreadable"
  std::string error;    // the reader's message when state is not "ok"
};

struct TagReport {
  std::string tag;          // "__run_graph__" for Event.graph_def
  std::string kind;         // "scalar", "histogram", "image", "audio", "text", "pr_curve",
                            // "hparams", "custom_scalars", "graph", "run_metadata", "mesh",
                            // "tensor" (no plugin), or an unknown plugin's name
  std::string plugin_name;  // as TensorBoard resolves it ("scalars" for simple_value, ...)
  std::string data_class;   // "scalar", "tensor", "blob_sequence" or "unknown"
  int64_t count = 0;        // values (points) with this tag
  int64_t first_step = 0;
  int64_t last_step = 0;
  std::optional<double> last_scalar;  // kind "scalar" only
  std::string last_scalar_text;       // last_scalar, shortest round-trip form of its type
};

struct RunReport {
  std::string name;  // relative to the logdir, "." for the logdir itself
  std::vector<FileReport> files;
  std::vector<TagReport> tags;  // sorted by tag
};

struct LogdirReport {
  std::string logdir;
  std::vector<RunReport> runs;  // sorted by name
};

// Reads every event file under `logdir` (runs found as TensorBoard finds
// them). A torn or corrupt file is noted in its FileReport, not an error;
// errors are those of ListRuns (NOT_FOUND for a missing logdir).
absl::StatusOr<LogdirReport> InspectLogdir(const std::string& logdir);

// How TensorBoard classifies a summary value, from the first value of a tag:
// plugin name (legacy value kinds map to their plugins), kind and data class.
struct TagClass {
  std::string plugin_name;
  std::string kind;
  std::string data_class;
};
TagClass ClassifyValue(const tensorboard::Summary::Value& value);

// The report as aligned text tables, one per run.
std::string FormatReportText(const LogdirReport& report);
// The report as one JSON object: {"logdir", "runs": [{"name", "files": [...],
// "tags": [...]}]}; last_scalar is omitted when absent, null when not finite.
std::string FormatReportJson(const LogdirReport& report);
// `text` as a JSON string literal, quotes included (control characters as \u00XX).
std::string JsonQuote(std::string_view text);

}  // namespace tblog

#endif  // TBLOG_ENGINE_IO_INSPECT_H_
