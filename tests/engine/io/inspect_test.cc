#include "engine/io/inspect.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/io/event_file_writer.h"
#include "engine/io/record_writer.h"
#include "golden_util.h"
#include "temp_dir_util.h"

namespace tblog {
namespace {

namespace fs = std::filesystem;
using std::string_literals::operator""s;

// A minimal JSON value and parser, enough to check the report's structure.
struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject } type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  const Json& operator[](const std::string& key) const {
    static const Json kMissing;
    const auto it = object.find(key);
    return it == object.end() ? kMissing : it->second;
  }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  // The value, or nullopt when the text is not exactly one JSON value.
  std::optional<Json> Parse() {
    Json value;
    if (!ParseValue(&value)) return std::nullopt;
    SkipSpace();
    if (pos_ != text_.size()) return std::nullopt;
    return value;
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool Consume(std::string_view token) {
    SkipSpace();
    if (text_.substr(pos_, token.size()) != token) return false;
    pos_ += token.size();
    return true;
  }
  bool ParseString(std::string* out) {
    if (!Consume("\"")) return false;
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (pos_ >= text_.size()) return false;
      const char e = text_[pos_++];
      switch (e) {
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        case '/': *out += '/'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'u': {
          if (pos_ + 4 > text_.size()) return false;
          const unsigned long code = std::stoul(std::string(text_.substr(pos_, 4)), nullptr, 16);
          pos_ += 4;
          if (code >= 0x80) return false;  // the report only escapes control characters
          *out += static_cast<char>(code);
          break;
        }
        default: return false;
      }
    }
    return false;
  }
  bool ParseValue(Json* value) {
    SkipSpace();
    if (pos_ >= text_.size()) return false;
    const char c = text_[pos_];
    if (c == '{') {
      value->type = Json::Type::kObject;
      ++pos_;
      if (Consume("}")) return true;
      do {
        std::string key;
        Json member;
        SkipSpace();
        if (!ParseString(&key) || !Consume(":") || !ParseValue(&member)) return false;
        if (!value->object.emplace(key, std::move(member)).second) return false;  // duplicate
      } while (Consume(","));
      return Consume("}");
    }
    if (c == '[') {
      value->type = Json::Type::kArray;
      ++pos_;
      if (Consume("]")) return true;
      do {
        value->array.emplace_back();
        if (!ParseValue(&value->array.back())) return false;
      } while (Consume(","));
      return Consume("]");
    }
    if (c == '"') {
      value->type = Json::Type::kString;
      return ParseString(&value->string);
    }
    if (Consume("null")) return true;
    if (Consume("true") || Consume("false")) {
      value->type = Json::Type::kBool;
      value->boolean = text_[pos_ - 1] == 'e' && text_[pos_ - 2] == 'u';  // "true"
      return true;
    }
    const size_t start = pos_;
    while (pos_ < text_.size() && (std::isdigit(static_cast<unsigned char>(text_[pos_])) ||
                                   std::string_view("+-.eE").find(text_[pos_]) !=
                                       std::string_view::npos)) {
      ++pos_;
    }
    if (start == pos_) return false;
    value->type = Json::Type::kNumber;
    size_t used = 0;
    value->number = std::stod(std::string(text_.substr(start, pos_ - start)), &used);
    return used == pos_ - start;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

// run -> tag -> kind, and the run names, of the golden logdir as decoded from
// its files (see shared/golden/manifest.json).
const std::map<std::string, std::map<std::string, std::string>>& GoldenTagKinds() {
  static const auto* const kKinds = new std::map<std::string, std::map<std::string, std::string>>{
      {"custom_scalars", {{"custom_scalars__config__", "custom_scalars"}}},
      {"graph", {{"__run_graph__", "graph"}}},
      {"histogram_v1", {{"weights/normal", "histogram"}, {"weights/mixed", "histogram"}}},
      {"histogram_v2",
       {{"weights/normal", "histogram"},
        {"weights/mixed", "histogram"},
        {"weights/same", "histogram"},
        {"weights/empty", "histogram"}}},
      {"hparams", {{"_hparams_/experiment", "hparams"}}},
      {"hparams/trial-1",
       {{"_hparams_/session_start_info", "hparams"}, {"epoch_accuracy", "scalar"}}},
      {"image_v1", {{"samples/gradient", "image"}}},
      {"image_v2", {{"samples/gradient", "image"}}},
      {"pr_curve", {{"pr/class0", "pr_curve"}}},
      {"scalars_v1", {{"loss", "scalar"}, {"accuracy", "scalar"}}},
      {"scalars_v2", {{"epoch_loss", "scalar"}}},
      {"text_v2", {{"notes", "text"}}},
      {"torch_audio", {{"sine", "audio"}}},
      {"torch_embedding", {}},
      {"torch_hparams", {}},
      {"torch_hparams/trial",
       {{"_hparams_/experiment", "hparams"},
        {"_hparams_/session_start_info", "hparams"},
        {"_hparams_/session_end_info", "hparams"},
        {"hparam/accuracy", "scalar"}}},
      {"torch_images", {{"batch", "image"}}},
      {"torch_pr_curve", {{"pr", "pr_curve"}}},
      {"torch_text", {{"notes/text_summary", "text"}}},
  };
  return *kKinds;
}

const TagReport* FindTag(const LogdirReport& report, const std::string& run,
                         const std::string& tag) {
  for (const RunReport& r : report.runs) {
    if (r.name != run) continue;
    for (const TagReport& t : r.tags) {
      if (t.tag == tag) return &t;
    }
  }
  return nullptr;
}

TEST(InspectTest, GoldenLogdirHasExactlyTheExpectedRunsTagsAndKinds) {
  auto report = InspectLogdir(TBLOG_GOLDEN_DIR);
  ASSERT_TRUE(report.ok()) << report.status();
  std::map<std::string, std::map<std::string, std::string>> found;
  for (const RunReport& run : report->runs) {
    auto& tags = found[run.name];
    ASSERT_EQ(run.files.size(), 1u) << run.name;
    EXPECT_EQ(run.files[0].name, "events.out.tfevents.golden");
    EXPECT_EQ(run.files[0].state, "ok") << run.files[0].error;
    EXPECT_GE(run.files[0].events, 1) << run.name;
    for (const TagReport& tag : run.tags) tags[tag.tag] = tag.kind;
  }
  EXPECT_EQ(report->runs.size(), 19u);
  EXPECT_EQ(found, GoldenTagKinds());
}

TEST(InspectTest, GoldenDetails) {
  auto report = InspectLogdir(TBLOG_GOLDEN_DIR);
  ASSERT_TRUE(report.ok()) << report.status();
  const TagReport* loss = FindTag(*report, "scalars_v1", "loss");
  ASSERT_NE(loss, nullptr);
  EXPECT_EQ(loss->plugin_name, "scalars");
  EXPECT_EQ(loss->data_class, "scalar");
  EXPECT_EQ(loss->count, 5);
  EXPECT_EQ(loss->first_step, 0);
  EXPECT_EQ(loss->last_step, 4);
  ASSERT_TRUE(loss->last_scalar.has_value());
  EXPECT_FLOAT_EQ(static_cast<float>(*loss->last_scalar), 0.2f);
  EXPECT_EQ(loss->last_scalar_text, "0.2");

  const TagReport* accuracy = FindTag(*report, "hparams/trial-1", "epoch_accuracy");
  ASSERT_NE(accuracy, nullptr);
  EXPECT_EQ(accuracy->last_scalar_text, "0.8");  // tensor float_val
  const TagReport* graph = FindTag(*report, "graph", "__run_graph__");
  ASSERT_NE(graph, nullptr);
  EXPECT_EQ(graph->data_class, "blob_sequence");
  EXPECT_EQ(graph->plugin_name, "graphs");
  const TagReport* histogram = FindTag(*report, "histogram_v1", "weights/normal");
  ASSERT_NE(histogram, nullptr);
  EXPECT_EQ(histogram->plugin_name, "histograms");  // legacy HistogramProto
  EXPECT_EQ(histogram->data_class, "tensor");
  EXPECT_FALSE(histogram->last_scalar.has_value());
  const TagReport* image = FindTag(*report, "image_v1", "samples/gradient");
  ASSERT_NE(image, nullptr);
  EXPECT_EQ(image->data_class, "blob_sequence");
  const TagReport* hparams = FindTag(*report, "torch_hparams/trial", "_hparams_/experiment");
  ASSERT_NE(hparams, nullptr);
  EXPECT_EQ(hparams->data_class, "tensor");  // inferred: torch leaves it unset
}

TEST(InspectTest, ClassifyPrefersExplicitDataClassAndSimpleValue) {
  tb::Summary::Value value;
  value.mutable_metadata()->mutable_plugin_data()->set_plugin_name("images");
  value.mutable_metadata()->set_data_class(tb::DATA_CLASS_TENSOR);
  value.mutable_tensor()->set_dtype(tb::DT_STRING);
  TagClass tag_class = ClassifyValue(value);
  EXPECT_EQ(tag_class.kind, "image");
  EXPECT_EQ(tag_class.data_class, "tensor");

  value.set_simple_value(1.5f);  // legacy scalars win over the metadata
  tag_class = ClassifyValue(value);
  EXPECT_EQ(tag_class.kind, "scalar");
  EXPECT_EQ(tag_class.plugin_name, "scalars");

  tb::Summary::Value plain;
  plain.mutable_tensor()->set_dtype(tb::DT_INT32);
  EXPECT_EQ(ClassifyValue(plain).kind, "tensor");
  EXPECT_EQ(ClassifyValue(plain).data_class, "unknown");
  plain.mutable_metadata()->mutable_plugin_data()->set_plugin_name("my_plugin");
  EXPECT_EQ(ClassifyValue(plain).kind, "my_plugin");
}

TEST(InspectTest, JsonQuoteEscapes) {
  EXPECT_EQ(JsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonQuote("line\nnext\ttab\r"), "\"line\\nnext\\ttab\\r\"");
  EXPECT_EQ(JsonQuote("\x01\x1f"s + "\0"s), "\"\\u0001\\u001f\\u0000\"");
  EXPECT_EQ(JsonQuote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");  // UTF-8 passes through
  const std::string nasty = "q\"\\\n\x02/}]";
  auto parsed = JsonParser(JsonQuote(nasty)).Parse();
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->string, nasty);
}

TEST(InspectTest, JsonReportParsesAndMatchesTheReport) {
  auto report = InspectLogdir(TBLOG_GOLDEN_DIR);
  ASSERT_TRUE(report.ok()) << report.status();
  const std::string json = FormatReportJson(*report);
  auto parsed = JsonParser(json).Parse();
  ASSERT_TRUE(parsed.has_value()) << json;
  EXPECT_EQ((*parsed)["logdir"].string, TBLOG_GOLDEN_DIR);
  const std::vector<Json>& runs = (*parsed)["runs"].array;
  ASSERT_EQ(runs.size(), 19u);
  std::map<std::string, std::map<std::string, std::string>> found;
  for (const Json& run : runs) {
    auto& tags = found[run["name"].string];
    ASSERT_EQ(run["files"].array.size(), 1u);
    EXPECT_EQ(run["files"].array[0]["state"].string, "ok");
    for (const Json& tag : run["tags"].array) tags[tag["tag"].string] = tag["kind"].string;
  }
  EXPECT_EQ(found, GoldenTagKinds());
  for (const Json& run : runs) {
    if (run["name"].string != "scalars_v2") continue;
    const Json& tag = run["tags"].array.at(0);
    EXPECT_EQ(tag["tag"].string, "epoch_loss");
    EXPECT_EQ(tag["data_class"].string, "scalar");
    EXPECT_EQ(tag["count"].number, 5);
    EXPECT_EQ(tag["last_step"].number, 4);
    EXPECT_DOUBLE_EQ(tag["last_scalar"].number, 0.2);
  }
}

class InspectDirTest : public TempDirTest {};

tb::Event ScalarEvent(const std::string& tag, int64_t step, float value) {
  tb::Event event;
  event.set_step(step);
  tb::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(value);
  return event;
}

TEST_F(InspectDirTest, NotesTornAndCorruptFilesAndKeepsWhatWasRead) {
  {
    auto writer = EventFileWriter::Create(dir_ + "/run", {});
    ASSERT_TRUE(writer.ok()) << writer.status();
    for (int step = 0; step < 3; ++step) {
      ASSERT_TRUE((*writer)->Write(ScalarEvent("x\"y", step, static_cast<float>(step))).ok());
    }
    // A bookkeeping event like tblogd's batch markers: a wall time only.
    tb::Event marker;
    marker.set_wall_time(1.5);
    ASSERT_TRUE((*writer)->Write(marker).ok());
    ASSERT_TRUE((*writer)->Close().ok());
  }
  std::string torn;
  AppendFramedRecord(ScalarEvent("x\"y", 3, 3.0f).SerializeAsString(), &torn);
  std::ofstream(dir_ + "/run/zz.tfevents.torn", std::ios::binary) << torn.substr(0, torn.size() - 2);
  std::string corrupt;
  AppendFramedRecord(ScalarEvent("other", 0, 1.0f).SerializeAsString(), &corrupt);
  corrupt[14] = static_cast<char>(corrupt[14] ^ 1);
  std::ofstream(dir_ + "/run/zzz.tfevents.corrupt", std::ios::binary) << corrupt;

  auto report = InspectLogdir(dir_);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->runs.size(), 1u);
  const RunReport& run = report->runs[0];
  EXPECT_EQ(run.name, "run");
  ASSERT_EQ(run.files.size(), 3u);
  EXPECT_EQ(run.files[0].state, "ok");
  EXPECT_EQ(run.files[0].events, 5);  // file_version, 3 points, the marker
  EXPECT_EQ(run.files[0].markers, 1);
  EXPECT_EQ(run.files[1].state, "torn_tail");
  EXPECT_NE(run.files[1].error.find("offset 0"), std::string::npos) << run.files[1].error;
  EXPECT_EQ(run.files[2].state, "corrupt");
  ASSERT_EQ(run.tags.size(), 1u);
  EXPECT_EQ(run.tags[0].tag, "x\"y");
  EXPECT_EQ(run.tags[0].count, 3);
  EXPECT_EQ(run.tags[0].last_scalar_text, "2");

  const std::string text = FormatReportText(*report);
  EXPECT_NE(text.find("run run\n"), std::string::npos) << text;
  EXPECT_NE(text.find("torn_tail: "), std::string::npos) << text;
  EXPECT_NE(text.find("x\"y  scalar  scalar      3      0..2   2\n"), std::string::npos) << text;
  auto parsed = JsonParser(FormatReportJson(*report)).Parse();
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ((*parsed)["runs"].array.at(0)["tags"].array.at(0)["tag"].string, "x\"y");
  EXPECT_EQ((*parsed)["runs"].array.at(0)["files"].array.at(2)["state"].string, "corrupt");
  EXPECT_EQ((*parsed)["runs"].array.at(0)["files"].array.at(0)["markers"].number, 1);
}

TEST_F(InspectDirTest, NonFiniteScalarIsNullInJson) {
  {
    auto writer = EventFileWriter::Create(dir_, {});
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Write(ScalarEvent("nan", 0, std::numeric_limits<float>::quiet_NaN())).ok());
  }
  auto report = InspectLogdir(dir_);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->runs.size(), 1u);
  EXPECT_EQ(report->runs[0].name, ".");
  const std::string json = FormatReportJson(*report);
  EXPECT_NE(json.find("\"last_scalar\":null"), std::string::npos) << json;
  EXPECT_TRUE(JsonParser(json).Parse().has_value()) << json;
}

TEST(InspectTest, MissingLogdirIsNotFound) {
  auto report = InspectLogdir("/nonexistent/tblog/logdir");
  EXPECT_EQ(report.status().code(), absl::StatusCode::kNotFound);
}

// Runs tblog-inspect with `args`; returns its exit status and stdout.
std::pair<int, std::string> RunInspect(const std::string& args) {
  const std::string out = ::testing::TempDir() + "inspect_test_out_" + std::to_string(::getpid());
  const std::string command = std::string(TBLOG_INSPECT_BINARY) + " " +
                              args + " >" + out + " 2>/dev/null";
  const int status = std::system(command.c_str());
  std::string text = ReadFileBytes(out);
  fs::remove(out);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

TEST(InspectMainTest, ExitCodesAndOutput) {
  auto [code, text] = RunInspect(TBLOG_GOLDEN_DIR);
  EXPECT_EQ(code, 0);
  EXPECT_NE(text.find("19 runs"), std::string::npos) << text;
  EXPECT_NE(text.find("run torch_hparams/trial\n"), std::string::npos);

  auto [json_code, json] = RunInspect(std::string("--json ") + TBLOG_GOLDEN_DIR);
  EXPECT_EQ(json_code, 0);
  auto parsed = JsonParser(json).Parse();
  ASSERT_TRUE(parsed.has_value()) << json;
  EXPECT_EQ((*parsed)["runs"].array.size(), 19u);

  EXPECT_EQ(RunInspect("/nonexistent/tblog/logdir").first, 1);
  EXPECT_EQ(RunInspect("").first, 2);
  EXPECT_EQ(RunInspect("--bogus /tmp").first, 2);
  EXPECT_EQ(RunInspect("/tmp /tmp").first, 2);
}

}  // namespace
}  // namespace tblog
