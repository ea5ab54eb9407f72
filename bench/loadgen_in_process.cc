// The engine half of tblog-loadgen: the in-process baseline and the read-back
// check. Includes engine headers only (see loadgen.h for why).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/io/event_file_writer.h"
#include "engine/histogram/histogram.h"
#include "engine/media/image_summary.h"
#include "engine/io/inspect.h"
#include "engine/histogram/parallel.h"
#include "engine/histogram/scalar_summary.h"
#include "base/status_util.h"
#include "engine/io/tensor_view.h"
#include "loadgen.h"

namespace tblog::loadgen {
namespace {

// What each call builds: the step and the summary value of one event.
using StepValue = std::pair<int64_t, tb::Summary::Value>;

tb::Event EventAt(int64_t step, tb::Summary::Value value) {
  tb::Event event;
  event.set_wall_time(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  event.set_step(step);
  *event.mutable_summary()->add_value() = std::move(value);
  return event;
}

std::string_view Bytes(const auto& values) {
  return {reinterpret_cast<const char*>(values.data()), values.size() * sizeof(values[0])};
}

}  // namespace

Inputs MakeInputs(const Config& config) {
  Inputs inputs;
  for (int k = 0; k < config.tags; ++k) inputs.scalar_tags.push_back(absl::StrCat("scalars/t", k));
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  inputs.histogram_values.resize(static_cast<size_t>(config.histogram_elements));
  for (float& v : inputs.histogram_values) v = normal(rng);
  // A smooth gradient with mild noise: compresses like a photo, not like noise.
  const int side = config.image_side;
  inputs.image_shape = {side, side, 3};
  inputs.image_pixels.resize(static_cast<size_t>(side) * side * 3);
  std::uniform_int_distribution<int> noise(0, 15);
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      uint8_t* p = &inputs.image_pixels[(static_cast<size_t>(y) * side + x) * 3];
      p[0] = static_cast<uint8_t>((x * 255 / side + noise(rng)) & 0xff);
      p[1] = static_cast<uint8_t>((y * 255 / side + noise(rng)) & 0xff);
      p[2] = static_cast<uint8_t>(((x + y) * 127 / side + noise(rng)) & 0xff);
    }
  }
  return inputs;
}

std::vector<std::string> MultiWriterTags(const Config& config, int w) {
  std::vector<std::string> tags;
  for (int k = 0; k < config.tags; ++k) tags.push_back(absl::StrCat("multi/w", w, "/t", k));
  return tags;
}

double OwnCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

void ExpectScalars(std::string_view prefix, int64_t n, int tags, TagCounts* expected) {
  for (int k = 0; k < tags && k < n; ++k) {
    (*expected)[absl::StrCat(Sv(prefix), k)] += n / tags + (k < n % tags ? 1 : 0);
  }
}

class InProcessRun::Impl {
 public:
  explicit Impl(std::unique_ptr<EventFileWriter> file)
      : file_(std::move(file)),
        runner_(static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))),
        histograms_(HistogramBuilderOptions{.bucket_count = HistogramBuilder::kDefaultBucketCount,
                                            .non_finite = NonFinitePolicy::kSkip,
                                            .runner = &runner_}) {}

  // Runs `calls` calls of make_value, each written as one event, then Flush().
  template <typename MakeValue>
  Side Run(int64_t calls, double units, MakeValue make_value) {
    Side side;
    side.calls = calls;
    side.units = units;
    const double cpu_start = OwnCpuSeconds();
    const Clock::time_point start = Clock::now();
    for (int64_t i = 0; i < calls; ++i) {
      absl::StatusOr<StepValue> value = make_value(i);
      if (!value.ok()) {
        side.status = value.status();
        return side;
      }
      if (absl::Status written = file_->Write(EventAt(value->first, std::move(value->second)));
          !written.ok()) {
        side.status = written;
        return side;
      }
    }
    const Clock::time_point calls_done = Clock::now();
    side.status = file_->Flush();
    const Clock::time_point flushed = Clock::now();
    side.cpu_seconds = OwnCpuSeconds() - cpu_start;
    side.seconds = SecondsBetween(start, flushed);
    side.caller_seconds = SecondsBetween(start, calls_done);
    return side;
  }

  Side MultiWriter(const Config& config) {
    Side side;
    absl::Mutex mu;  // EventFileWriter is not thread-safe
    double cpu_start = 0;
    Clock::time_point start;
    const WriterThreads threads = RunWriterThreads(
        config,
        [&](int, const std::string& tag, int64_t step, float value) {
          // Built outside the lock, as each thread of a trainer would.
          tb::Event event = EventAt(step, ScalarValue(tag, value));
          absl::MutexLock lock(&mu);
          return file_->Write(event);
        },
        [](int) { return absl::OkStatus(); },
        [&] {
          cpu_start = OwnCpuSeconds();
          start = Clock::now();
        });
    absl::Status flushed = file_->Flush();
    side.seconds = SecondsBetween(start, Clock::now());
    side.cpu_seconds = OwnCpuSeconds() - cpu_start;
    side.calls = config.writers * config.writer_scalars;
    side.units = static_cast<double>(side.calls);
    side.caller_seconds = threads.caller_seconds;
    side.status = threads.FirstError();
    if (side.status.ok()) side.status = flushed;
    return side;
  }

  EventFileWriter& file() { return *file_; }
  const HistogramBuilder& histograms() const { return histograms_; }

 private:
  std::unique_ptr<EventFileWriter> file_;
  ThreadParallelRunner runner_;  // the daemon's default: one worker per core
  HistogramBuilder histograms_;
};

absl::StatusOr<std::unique_ptr<InProcessRun>> InProcessRun::Create(const std::string& dir) {
  EventFileOptions options;
  // The daemon's default policy (--fsync interval, 5 s), so both sides pay
  // the same for durability.
  options.sync = SyncPolicy::kInterval;
  options.sync_interval = absl::Seconds(5);
  options.source_writer = "tblog-loadgen";
  auto file = EventFileWriter::Create(dir, std::move(options));
  if (!file.ok()) return file.status();
  return std::unique_ptr<InProcessRun>(
      new InProcessRun(std::make_unique<Impl>(*std::move(file))));
}

InProcessRun::InProcessRun(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
InProcessRun::~InProcessRun() = default;

Side InProcessRun::Scalars(const Config& config, const Inputs& inputs) {
  const int k = config.tags;
  return impl_->Run(config.scalars, static_cast<double>(config.scalars),
                    [&](int64_t i) -> absl::StatusOr<StepValue> {
                      return StepValue{i / k, ScalarValue(inputs.scalar_tags[i % k], ScalarValueAt(i))};
                    });
}

Side InProcessRun::Histograms(const Config& config, const Inputs& inputs) {
  const int64_t shape[] = {static_cast<int64_t>(inputs.histogram_values.size())};
  const TensorView view{DType::kFloat32, shape, Bytes(inputs.histogram_values)};
  const double units = static_cast<double>(config.histograms) * static_cast<double>(shape[0]);
  return impl_->Run(config.histograms, units, [&](int64_t i) -> absl::StatusOr<StepValue> {
    auto built = impl_->histograms().Uniform(kHistogramTag, view);
    if (!built.ok()) return built.status();
    return StepValue{i, std::move(built->value)};
  });
}

Side InProcessRun::Images(const Config& config, const Inputs& inputs) {
  const TensorView view{DType::kUint8, inputs.image_shape, Bytes(inputs.image_pixels)};
  return impl_->Run(config.images, static_cast<double>(config.images),
                    [&](int64_t i) -> absl::StatusOr<StepValue> {
                      auto value = MakeImageSummaryV2(kImageTag, view, ImageLayout::kHWC);
                      if (!value.ok()) return value.status();
                      return StepValue{i, *std::move(value)};
                    });
}

Side InProcessRun::MultiWriterScalars(const Config& config) { return impl_->MultiWriter(config); }

absl::Status InProcessRun::Close() { return impl_->file().Close(); }

bool VerifyRun(std::string_view label, const std::string& dir, const TagCounts& expected) {
  absl::StatusOr<LogdirReport> report = InspectLogdir(dir);
  if (!report.ok()) {
    std::cout << "read-back " << label << ": MISMATCH (" << report.status().message() << ")\n";
    return false;
  }
  TagCounts found;
  std::vector<std::string> problems;
  int64_t files = 0;
  for (const RunReport& run : report->runs) {
    if (run.name != ".") continue;  // sub-runs are not part of the workloads
    for (const FileReport& file : run.files) {
      ++files;
      if (file.state != "ok") {
        problems.push_back(absl::StrCat(file.name, ": ", file.state, " ", file.error));
      }
    }
    for (const TagReport& tag : run.tags) found[tag.tag] = tag.count;
  }
  int64_t expected_total = 0, found_total = 0;
  for (const auto& [tag, count] : expected) {
    expected_total += count;
    auto it = found.find(tag);
    const int64_t got = it == found.end() ? 0 : it->second;
    found_total += got;
    if (got != count) problems.push_back(absl::StrCat(tag, ": expected ", count, ", found ", got));
  }
  std::vector<std::string> other;
  for (const auto& [tag, count] : found) {
    if (!expected.contains(tag)) other.push_back(absl::StrCat(tag, " (", count, ")"));
  }
  std::cout << "read-back " << label << ": " << (problems.empty() ? "OK" : "MISMATCH") << ", "
            << found_total << "/" << expected_total << " events over " << expected.size()
            << " tags in " << files << " file(s)";
  if (!other.empty()) std::cout << "; " << other.size() << " other tag(s), first " << other[0];
  std::cout << "\n";
  for (size_t i = 0; i < problems.size() && i < 10; ++i) std::cout << "  " << problems[i] << "\n";
  return problems.empty();
}

}  // namespace tblog::loadgen
