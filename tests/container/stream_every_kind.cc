// tblog-stream-every-kind: sends one run holding every record kind to a
// tblogd (scalars one by one and in columns, histograms in both layouts,
// images from pixels and a PNG passed through, text, audio, PR curves from
// predictions and from counts, hparams, a graph, an embedding, a
// custom-scalars layout), flushes with fsync, closes, and prints on stdout, as
// JSON, what the files must now hold: per (run, tag) the kind and count that
// `tblogd inspect --json` reports, and the embedding's projector files.
// scripts/container-test.sh runs it against the tblogd container.
//
//   tblog-stream-every-kind --target unix:/path/tblogd.sock --run-path unix-run [--steps 200]
//                           [--leave-run-open] [--tag-prefix P]
//
// --leave-run-open ends the stream but not the run (WriterOptions::close_run
// false), so the daemon still holds the run's files open and must close them
// itself at shutdown; the hparams session end is then not expected.
//
// --tag-prefix P makes it one writer among several of a shared run (one per
// daemon, as the nodes of a multi-node job): it sends only scalars of its own
// tags, P/loss one call each and P/accuracy in sub-run "train", since one tag
// must have one writer, and nothing run-wide (hparams, graph, layout,
// embedding).
//
// Exit status: 0 when every record was acknowledged with no error, 1 on any
// error (message on stderr), 2 for a bad command line.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/io/inspect.h"
#include "engine/media/png.h"
#include "base/status_util.h"
#include "tblog/client.h"

namespace tblog {
namespace {

struct Flags {
  std::string target;
  std::string run_path;
  int64_t steps = 200;
  bool leave_run_open = false;
  std::string tag_prefix;  // "" = every kind
};

// One line of the expectation: `count` values of `tag` in run `run`
// (relative to the logdir), classified by the reader as `kind`.
struct ExpectedTag {
  std::string run;
  std::string tag;
  std::string kind;
  int64_t count;
};

constexpr std::string_view kUsage =
    "usage: tblog-stream-every-kind --target ADDRESS --run-path PATH [--steps N]\n"
    "                               [--leave-run-open] [--tag-prefix P]\n"
    "  ADDRESS: host:port or unix:/path/to.sock; PATH: the run, relative to the logdir\n";

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--leave-run-open") {
      flags->leave_run_open = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const std::string_view value = argv[++i];
    if (arg == "--target") {
      flags->target = std::string(value);
    } else if (arg == "--run-path") {
      flags->run_path = std::string(value);
    } else if (arg == "--tag-prefix") {
      flags->tag_prefix = std::string(value);
    } else if (arg == "--steps") {
      if (!absl::SimpleAtoi(Sv(value), &flags->steps) || flags->steps < 1) return false;
    } else {
      return false;
    }
  }
  return !flags->target.empty() && !flags->run_path.empty();
}

// Prefixes the error's message with `what`, so a failure names the record.
absl::Status Check(absl::Status status, std::string_view what) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(Sv(what), ": ", status.message()));
}

// Sends scalars of tags under flags.tag_prefix only; appends what the logdir
// must hold to `expected`.
absl::Status StreamOwnScalars(Writer& writer, const Flags& flags,
                              std::vector<ExpectedTag>* expected) {
  const std::string loss = absl::StrCat(flags.tag_prefix, "/loss");
  const std::string accuracy = absl::StrCat(flags.tag_prefix, "/accuracy");
  for (int64_t step = 0; step < flags.steps; ++step) {
    const float x = static_cast<float>(step);
    TBLOG_RETURN_IF_ERROR(Check(writer.scalar(loss, step, 1.0f / (1.0f + x)), "scalar loss"));
    TBLOG_RETURN_IF_ERROR(Check(
        writer.scalar(accuracy, step, x / static_cast<float>(flags.steps), {.subrun = "train"}),
        "scalar accuracy"));
  }
  expected->push_back({flags.run_path, loss, "scalar", flags.steps});
  expected->push_back({absl::StrCat(flags.run_path, "/train"), accuracy, "scalar", flags.steps});
  return absl::OkStatus();
}

// Sends every kind; appends what the logdir must hold to `expected`.
absl::Status StreamEveryKind(Writer& writer, const Flags& flags,
                             std::vector<ExpectedTag>* expected) {
  const std::string& run = flags.run_path;
  const int64_t steps = flags.steps;
  auto expect = [&](std::string_view subrun, std::string tag, std::string kind, int64_t count) {
    expected->push_back({subrun.empty() ? run : absl::StrCat(run, "/", Sv(subrun)),
                         std::move(tag), std::move(kind), count});
  };

  // Scalars one call each (the Writer packs them into columns) and in a sub-run.
  for (int64_t step = 0; step < steps; ++step) {
    const float x = static_cast<float>(step);
    TBLOG_RETURN_IF_ERROR(Check(writer.scalar("loss", step, 1.0f / (1.0f + x)), "scalar loss"));
    TBLOG_RETURN_IF_ERROR(
        Check(writer.scalar("accuracy", step, x / static_cast<float>(steps), {.subrun = "train"}),
              "scalar accuracy"));
  }
  expect("", "loss", "scalar", steps);
  expect("train", "accuracy", "scalar", steps);

  // A ScalarColumns record as is: two tags, one of them in the simple_value
  // style PyTorch writes, points interleaved.
  for (const v1::ScalarStyle style : {v1::SCALAR_STYLE_TENSOR, v1::SCALAR_STYLE_SIMPLE_VALUE}) {
    v1::Record record;
    v1::ScalarColumns* columns = record.mutable_scalars();
    columns->set_style(style);
    const std::string prefix = style == v1::SCALAR_STYLE_TENSOR ? "columns/tensor" : "columns/simple";
    columns->add_tags()->set_tag(prefix + "_a");
    columns->add_tags()->set_tag(prefix + "_b");
    for (int64_t step = 0; step < steps; ++step) {
      for (uint32_t tag = 0; tag < 2; ++tag) {
        columns->add_tag_index(tag);
        columns->add_steps(step);
        columns->add_values(static_cast<float>(step * (tag + 1)));
      }
    }
    TBLOG_RETURN_IF_ERROR(Check(writer.record(std::move(record)), "scalar columns"));
    expect("", prefix + "_a", "scalar", steps);
    expect("", prefix + "_b", "scalar", steps);
  }

  // Histograms: both layouts, several dtypes.
  constexpr int64_t kHistogramSteps = 5;
  for (int64_t step = 0; step < kHistogramSteps; ++step) {
    std::vector<float> weights(1000);
    for (size_t i = 0; i < weights.size(); ++i) {
      weights[i] = std::sin(static_cast<float>(i) * 0.01f) * static_cast<float>(step + 1);
    }
    const std::vector<int32_t> counts = {1, 2, 2, 3, 3, 3, static_cast<int32_t>(step)};
    TBLOG_RETURN_IF_ERROR(Check(
        writer.histogram("histogram/uniform", step, weights, {.bucket_count = 20}), "histogram"));
    TBLOG_RETURN_IF_ERROR(Check(
        writer.histogram("histogram/exponential", step, weights,
                         {.layout = v1::HISTOGRAM_LAYOUT_EXPONENTIAL}), "histogram exponential"));
    TBLOG_RETURN_IF_ERROR(Check(writer.histogram("histogram/int32", step, counts), "histogram int"));
  }
  expect("", "histogram/uniform", "histogram", kHistogramSteps);
  expect("", "histogram/exponential", "histogram", kHistogramSteps);
  expect("", "histogram/int32", "histogram", kHistogramSteps);

  // Images: uint8 HWC pixels, float CHW pixels, and a PNG passed through.
  constexpr int kHeight = 8, kWidth = 12;
  std::vector<uint8_t> rgb(kHeight * kWidth * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 7);
  std::vector<float> gray_chw(kHeight * kWidth);
  for (size_t i = 0; i < gray_chw.size(); ++i) {
    gray_chw[i] = static_cast<float>(i) / static_cast<float>(gray_chw.size());
  }
  RawImage raw{.height = kHeight, .width = kWidth, .channels = 3, .pixels = rgb};
  absl::StatusOr<std::string> png = EncodePng(raw);
  if (!png.ok()) return Check(png.status(), "encoding the passthrough PNG");
  for (int64_t step = 0; step < 2; ++step) {
    TBLOG_RETURN_IF_ERROR(
        Check(writer.image("image/rgb", step, rgb, {kHeight, kWidth, 3}), "image rgb"));
    TBLOG_RETURN_IF_ERROR(Check(writer.image("image/gray_chw", step, gray_chw, {1, kHeight, kWidth},
                                             {.layout = v1::PIXEL_LAYOUT_CHW}),
                                "image gray"));
    TBLOG_RETURN_IF_ERROR(Check(writer.image_encoded("image/png", step, *png), "image png"));
  }
  expect("", "image/rgb", "image", 2);
  expect("", "image/gray_chw", "image", 2);
  expect("", "image/png", "image", 2);

  // Text, both layouts.
  TBLOG_RETURN_IF_ERROR(Check(writer.text("notes", 0, "**every** record kind"), "text"));
  TBLOG_RETURN_IF_ERROR(Check(writer.text("notes", 1, "second step"), "text"));
  TBLOG_RETURN_IF_ERROR(
      Check(writer.text("torch_notes", 0, "torch layout", {.torch_style = true}), "text torch"));
  expect("", "notes", "text", 2);
  expect("", "torch_notes/text_summary", "text", 1);

  // Audio: 0.1 s of a 440 Hz tone, mono.
  constexpr float kSampleRate = 16000.0f;
  std::vector<float> tone(1600);
  for (size_t i = 0; i < tone.size(); ++i) {
    tone[i] = 0.5f * std::sin(2.0f * 3.14159265f * 440.0f * static_cast<float>(i) / kSampleRate);
  }
  TBLOG_RETURN_IF_ERROR(Check(writer.audio("audio/tone", 0, tone, kSampleRate), "audio"));
  expect("", "audio/tone", "audio", 1);

  // PR curves: from predictions (counted by the daemon) and from counts.
  const std::vector<uint8_t> labels = {0, 1, 1, 0, 1, 0, 1, 1};
  const std::vector<float> predictions = {0.1f, 0.9f, 0.7f, 0.4f, 0.6f, 0.2f, 0.8f, 0.3f};
  for (int64_t step = 0; step < 3; ++step) {
    TBLOG_RETURN_IF_ERROR(
        Check(writer.pr_curve("pr/predictions", step, labels, predictions, 11), "pr curve"));
  }
  v1::PrCounts pr_counts;
  for (float tp : {5.0f, 4.0f, 2.0f}) pr_counts.add_true_positives(tp);
  for (float fp : {3.0f, 1.0f, 0.0f}) pr_counts.add_false_positives(fp);
  for (float tn : {0.0f, 2.0f, 3.0f}) pr_counts.add_true_negatives(tn);
  for (float fn : {0.0f, 1.0f, 3.0f}) pr_counts.add_false_negatives(fn);
  TBLOG_RETURN_IF_ERROR(Check(writer.pr_curve("pr/counts", 0, pr_counts), "pr curve counts"));
  expect("", "pr/predictions", "pr_curve", 3);
  expect("", "pr/counts", "pr_curve", 1);

  // A graph from nodes.
  v1::NodeList nodes;
  v1::Node* input = nodes.add_node();
  input->set_name("input");
  input->set_op("Placeholder");
  v1::Node* dense = nodes.add_node();
  dense->set_name("dense");
  dense->set_op("MatMul");
  dense->add_inputs("input");
  TBLOG_RETURN_IF_ERROR(Check(writer.graph(nodes), "graph"));
  expect("", "__run_graph__", "graph", 1);

  // The custom-scalars layout.
  v1::CustomScalarLayout layout;
  v1::Category* category = layout.add_categories();
  category->set_title("training");
  v1::Chart* chart = category->add_charts();
  chart->set_title("columns");
  chart->mutable_multiline()->add_tags("columns/.*");
  TBLOG_RETURN_IF_ERROR(Check(writer.custom_scalars(layout), "custom scalars"));
  expect("", "custom_scalars__config__", "custom_scalars", 1);

  // An embedding: no event, projector files (checked by the script).
  const std::vector<float> matrix = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1};
  TBLOG_RETURN_IF_ERROR(
      Check(writer.embedding("embedding", 0, matrix, 4, 3, {"x", "y", "z", "xyz"}), "embedding"));

  // hparams were given at Open; the session end is written when the run is closed.
  expect("", "_hparams_/experiment", "hparams", 1);
  expect("", "_hparams_/session_start_info", "hparams", 1);
  if (!flags.leave_run_open) expect("", "_hparams_/session_end_info", "hparams", 1);
  return absl::OkStatus();
}

std::string ToJson(const Flags& flags, const std::vector<ExpectedTag>& expected,
                   const WriterStats& stats) {
  std::string out = absl::StrCat("{\"run_path\":", JsonQuote(flags.run_path),
                                 ",\"run_left_open\":", flags.leave_run_open ? "true" : "false",
                                 ",\"target\":", JsonQuote(flags.target), ",\"tags\":[");
  for (size_t i = 0; i < expected.size(); ++i) {
    const ExpectedTag& e = expected[i];
    absl::StrAppend(&out, i ? "," : "", "{\"run\":", JsonQuote(e.run), ",\"tag\":",
                    JsonQuote(e.tag), ",\"kind\":", JsonQuote(e.kind), ",\"count\":", e.count, "}");
  }
  absl::StrAppend(&out, "],\"embeddings\":[");
  if (flags.tag_prefix.empty()) {
    absl::StrAppend(&out, "{\"run\":", JsonQuote(flags.run_path),
                    ",\"tag\":\"embedding\",\"step\":0,\"rows\":4,\"cols\":3}");
  }
  absl::StrAppend(&out, "]",
                  ",\"stats\":{\"enqueued\":", stats.enqueued, ",\"sent\":", stats.sent,
                  ",\"acknowledged\":", stats.acknowledged, ",\"dropped\":", stats.dropped,
                  ",\"errors\":", stats.errors, ",\"reconnects\":", stats.reconnects, "}}\n");
  return out;
}

int Main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) {
    std::cerr << kUsage;
    return 2;
  }
  WriterOptions options;
  options.target = flags.target;
  options.run_path = flags.run_path;
  if (flags.tag_prefix.empty()) {  // run-wide: not for one writer among several
    options.hparams.values = {{"lr", 0.001}, {"optimizer", "adam"}, {"batch_norm", true}};
    options.hparams.metrics = {"loss"};
  }
  options.labels = {{"test", "container"}};
  options.batch_delay = absl::Milliseconds(10);
  options.rpc_timeout = absl::Seconds(30);
  options.close_run = !flags.leave_run_open;
  auto opened = Writer::Open(options);
  if (!opened.ok()) {
    std::cerr << "tblog-stream-every-kind: opening " << flags.run_path << " at " << flags.target
              << ": " << opened.status() << "\n";
    return 1;
  }
  Writer& writer = **opened;
  std::vector<ExpectedTag> expected;
  absl::Status status = flags.tag_prefix.empty() ? StreamEveryKind(writer, flags, &expected)
                                                 : StreamOwnScalars(writer, flags, &expected);
  if (status.ok()) status = Check(writer.flush(/*sync=*/true), "flush");
  const absl::Status closed = writer.close();
  if (status.ok()) status = Check(closed, "close");
  const WriterStats stats = writer.stats();
  if (status.ok() && (stats.errors != 0 || stats.dropped != 0 || stats.acknowledged != stats.enqueued)) {
    status = absl::DataLossError(absl::StrCat("enqueued ", stats.enqueued, ", acknowledged ",
                                              stats.acknowledged, ", dropped ", stats.dropped,
                                              ", errors ", stats.errors));
  }
  if (!status.ok()) {
    std::cerr << "tblog-stream-every-kind: " << flags.run_path << " at " << flags.target << ": "
              << status << "\n";
    return 1;
  }
  std::cout << ToJson(flags, expected, stats);
  return 0;
}

}  // namespace
}  // namespace tblog

int main(int argc, char** argv) { return tblog::Main(argc, argv); }
