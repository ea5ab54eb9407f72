#include "engine/io/inspect.h"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/io/event_reader.h"
#include "base/status_util.h"

namespace tblog {
namespace {

constexpr std::string_view kRunGraphTag = "__run_graph__";

template <typename T>
std::string ShortestText(T value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string DataClassName(tb::DataClass data_class) {
  switch (data_class) {
    case tb::DATA_CLASS_SCALAR:
      return "scalar";
    case tb::DATA_CLASS_TENSOR:
      return "tensor";
    case tb::DATA_CLASS_BLOB_SEQUENCE:
      return "blob_sequence";
    default:
      return "unknown";
  }
}

// TensorBoard's data class for a plugin whose values leave it UNKNOWN
// (tensorboard/dataclass_compat.py; RS data_compat.rs).
std::string InferredDataClass(const std::string& plugin) {
  if (plugin == "scalars") return "scalar";
  if (plugin == "histograms" || plugin == "text" || plugin == "hparams" ||
      plugin == "pr_curves" || plugin == "mesh" || plugin == "custom_scalars") {
    return "tensor";
  }
  if (plugin == "images" || plugin == "audio" || plugin == "graph_run_metadata" ||
      plugin == "graph_run_metadata_graph" || plugin == "graph_keras_model" ||
      plugin == "graph_tagged_run_metadata") {
    return "blob_sequence";
  }
  return "unknown";
}

std::string KindOfPlugin(const std::string& plugin) {
  static const auto* const kKinds = new std::map<std::string, std::string>{
      {"scalars", "scalar"},
      {"histograms", "histogram"},
      {"images", "image"},
      {"audio", "audio"},
      {"text", "text"},
      {"pr_curves", "pr_curve"},
      {"hparams", "hparams"},
      {"custom_scalars", "custom_scalars"},
      {"graphs", "graph"},
      {"graph_keras_model", "graph"},
      {"graph_run_metadata", "run_metadata"},
      {"graph_run_metadata_graph", "run_metadata"},
      {"graph_tagged_run_metadata", "run_metadata"},
      {"mesh", "mesh"},
  };
  if (plugin.empty()) return "tensor";
  const auto it = kKinds->find(plugin);
  return it == kKinds->end() ? plugin : it->second;
}

// A rank-0 tensor's one element of type T: the first of `typed` (float_val,
// double_val) or, when that is empty, the raw tensor_content of exactly one T.
template <typename T, typename Repeated>
std::optional<std::pair<double, std::string>> OnlyElement(const Repeated& typed,
                                                          const tb::TensorProto& tensor) {
  T element;
  if (!typed.empty()) {
    element = typed[0];
  } else if (tensor.tensor_content().size() == sizeof(element)) {
    std::memcpy(&element, tensor.tensor_content().data(), sizeof(element));
  } else {
    return std::nullopt;
  }
  return std::make_pair(static_cast<double>(element), ShortestText(element));
}

// The value of a scalar point, in the shortest text of its stored type.
std::optional<std::pair<double, std::string>> ScalarOf(const tb::Summary::Value& value) {
  if (value.value_case() == tb::Summary::Value::kSimpleValue) {
    return std::make_pair(static_cast<double>(value.simple_value()),
                          ShortestText(value.simple_value()));
  }
  if (!value.has_tensor()) return std::nullopt;
  const tb::TensorProto& tensor = value.tensor();
  if (tensor.dtype() == tb::DT_FLOAT) return OnlyElement<float>(tensor.float_val(), tensor);
  if (tensor.dtype() == tb::DT_DOUBLE) return OnlyElement<double>(tensor.double_val(), tensor);
  return std::nullopt;
}

class RunCollector {
 public:
  // One point of `tag`; `tag_class` is used only if the tag is new.
  TagReport& AddPoint(const std::string& tag, int64_t step, const TagClass& tag_class) {
    auto [it, inserted] = tags_.try_emplace(tag);
    TagReport& report = it->second;
    if (inserted) {
      report.tag = tag;
      report.plugin_name = tag_class.plugin_name;
      report.kind = tag_class.kind;
      report.data_class = tag_class.data_class;
      report.first_step = step;
    }
    ++report.count;
    report.last_step = step;
    return report;
  }

  void AddEvent(const tb::Event& event) {
    switch (event.what_case()) {
      case tb::Event::kGraphDef:
        AddPoint(std::string(kRunGraphTag), event.step(), {"graphs", "graph", "blob_sequence"});
        break;
      case tb::Event::kTaggedRunMetadata:
        AddPoint(event.tagged_run_metadata().tag(), event.step(),
                 {"graph_tagged_run_metadata", "run_metadata", "blob_sequence"});
        break;
      case tb::Event::kSummary:
        for (const tb::Summary::Value& value : event.summary().value()) {
          TagReport& report = AddPoint(value.tag(), event.step(), ClassifyValue(value));
          if (report.kind != "scalar") continue;
          if (auto scalar = ScalarOf(value)) {
            report.last_scalar = scalar->first;
            report.last_scalar_text = std::move(scalar->second);
          }
        }
        break;
      default:  // file_version, session_log, meta_graph_def: no tag
        break;
    }
  }

  std::vector<TagReport> TakeTags() {
    std::vector<TagReport> tags;
    for (auto& [tag, report] : tags_) tags.push_back(std::move(report));
    return tags;  // std::map keeps them sorted
  }

 private:
  std::map<std::string, TagReport> tags_;
};

FileReport ReadFile(const std::string& path, RunCollector* collector) {
  FileReport file;
  const size_t slash = path.rfind('/');
  file.name = slash == std::string::npos ? path : path.substr(slash + 1);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) file.bytes = static_cast<uint64_t>(st.st_size);
  auto reader = EventFileReader::Open(path);
  if (!reader.ok()) {
    file.state = "unreadable";
    file.error = std::string(reader.status().message());
    return file;
  }
  tb::Event event;
  while (true) {
    switch ((*reader)->Next(&event)) {
      case EventFileReader::State::kEvent:
        ++file.events;
        if (event.what_case() == tb::Event::WHAT_NOT_SET) ++file.markers;
        collector->AddEvent(event);
        continue;
      case EventFileReader::State::kEnd:
        file.state = "ok";
        return file;
      case EventFileReader::State::kTornTail:
        file.state = "torn_tail";
        break;
      case EventFileReader::State::kCorrupt:
        file.state = "corrupt";
        break;
      case EventFileReader::State::kUndecodable:
        file.state = "undecodable";
        break;
    }
    file.error = (*reader)->error();
    return file;
  }
}

// Rows of cells as columns padded to their widest cell, two spaces apart.
void AppendTable(const std::vector<std::vector<std::string>>& rows, std::string_view indent,
                 std::string* out) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line(indent);
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(out, line, "\n");
  }
}

}  // namespace

TagClass ClassifyValue(const tb::Summary::Value& value) {
  TagClass tag_class;
  const tb::SummaryMetadata& metadata = value.metadata();
  switch (value.value_case()) {
    case tb::Summary::Value::kSimpleValue:
      // Converted to a scalar whatever its metadata says (data_compat.py).
      return {"scalars", "scalar", "scalar"};
    case tb::Summary::Value::kHisto:
      tag_class.plugin_name = "histograms";
      break;
    case tb::Summary::Value::kImage:
      tag_class.plugin_name = "images";
      break;
    case tb::Summary::Value::kAudio:
      tag_class.plugin_name = "audio";
      break;
    default:
      tag_class.plugin_name = metadata.plugin_data().plugin_name();
      break;
  }
  tag_class.kind = KindOfPlugin(tag_class.plugin_name);
  tag_class.data_class = metadata.data_class() != tb::DATA_CLASS_UNKNOWN
                             ? DataClassName(metadata.data_class())
                             : InferredDataClass(tag_class.plugin_name);
  return tag_class;
}

absl::StatusOr<LogdirReport> InspectLogdir(const std::string& logdir) {
  auto runs = ListRuns(logdir);
  if (!runs.ok()) return runs.status();
  LogdirReport report;
  report.logdir = logdir;
  for (const RunFiles& run : *runs) {
    RunReport run_report;
    run_report.name = run.name;
    RunCollector collector;
    for (const std::string& path : run.files) {
      run_report.files.push_back(ReadFile(path, &collector));
    }
    run_report.tags = collector.TakeTags();
    report.runs.push_back(std::move(run_report));
  }
  return report;
}

std::string FormatReportText(const LogdirReport& report) {
  std::string out = absl::StrCat("logdir ", report.logdir, ": ", report.runs.size(),
                                 report.runs.size() == 1 ? " run\n" : " runs\n");
  for (const RunReport& run : report.runs) {
    absl::StrAppend(&out, "\nrun ", run.name, "\n");
    std::vector<std::vector<std::string>> files = {{"FILE", "BYTES", "EVENTS", "MARKERS", "STATE"}};
    for (const FileReport& file : run.files) {
      files.push_back({file.name, absl::StrCat(file.bytes), absl::StrCat(file.events),
                       absl::StrCat(file.markers), file.error.empty() ? file.state : absl::StrCat(file.state, ": ", file.error)});
    }
    AppendTable(files, "  ", &out);
    if (run.tags.empty()) {
      absl::StrAppend(&out, "  (no tags)\n");
      continue;
    }
    std::vector<std::vector<std::string>> tags = {
        {"TAG", "KIND", "DATA CLASS", "COUNT", "STEPS", "LAST"}};
    for (const TagReport& tag : run.tags) {
      tags.push_back({tag.tag, tag.kind, tag.data_class, absl::StrCat(tag.count),
                      absl::StrCat(tag.first_step, "..", tag.last_step), tag.last_scalar_text});
    }
    AppendTable(tags, "  ", &out);
  }
  return out;
}

std::string JsonQuote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(&out, absl::StrFormat("\\u%04x", static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string FormatReportJson(const LogdirReport& report) {
  std::string out = absl::StrCat("{\"logdir\":", JsonQuote(report.logdir), ",\"runs\":[");
  for (size_t r = 0; r < report.runs.size(); ++r) {
    const RunReport& run = report.runs[r];
    absl::StrAppend(&out, r ? "," : "", "{\"name\":", JsonQuote(run.name), ",\"files\":[");
    for (size_t f = 0; f < run.files.size(); ++f) {
      const FileReport& file = run.files[f];
      absl::StrAppend(&out, f ? "," : "", "{\"name\":", JsonQuote(file.name),
                      ",\"bytes\":", file.bytes, ",\"events\":", file.events, ",\"markers\":", file.markers,
                      ",\"state\":", JsonQuote(file.state));
      if (!file.error.empty()) absl::StrAppend(&out, ",\"error\":", JsonQuote(file.error));
      out += "}";
    }
    out += "],\"tags\":[";
    for (size_t t = 0; t < run.tags.size(); ++t) {
      const TagReport& tag = run.tags[t];
      absl::StrAppend(&out, t ? "," : "", "{\"tag\":", JsonQuote(tag.tag),
                      ",\"kind\":", JsonQuote(tag.kind), ",\"plugin\":", JsonQuote(tag.plugin_name),
                      ",\"data_class\":", JsonQuote(tag.data_class), ",\"count\":", tag.count,
                      ",\"first_step\":", tag.first_step, ",\"last_step\":", tag.last_step);
      if (tag.last_scalar.has_value()) {
        absl::StrAppend(&out, ",\"last_scalar\":",
                        std::isfinite(*tag.last_scalar) ? tag.last_scalar_text : "null");
      }
      out += "}";
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

}  // namespace tblog
