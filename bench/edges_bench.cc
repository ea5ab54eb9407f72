// tblog-edges-bench: what the C++ client costs at the edges of a run and how
// soon a record is visible, through a real tblogd:
//
//   visible  a lone scalar() (one every --gap-ms, nothing else going on) until
//            its record is in the run's event file (the file grew), as a
//            TensorBoard reading the file would see it: median, p90, max;
//   open     Writer::Open (channel, OpenRun, stream) until it returns;
//   flush    flush() after --flush-scalars scalar() calls;
//   close    close() after --close-scalars scalar() calls (what a trainer
//            waits for at its end).
//
// Each figure is the median of --repeat runs (a fresh run each). Figures,
// never assertions: bench/README.md says how to read them.
//
//   tblog-edges-bench --spawn-daemon build/server/daemon/tblogd
//   tblog-edges-bench --address unix:/run/tblogd.sock --logdir /logs
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "machine.h"
#include "support/daemon_process.h"
#include "tblog/client.h"

namespace tblog::bench {
namespace {

#define EDGES_RETURN_IF_ERROR(expr)                  \
  do {                                               \
    if (absl::Status status_ = (expr); !status_.ok()) \
      return status_;                                \
  } while (false)

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Config {
  std::string address;
  std::string logdir;
  std::string daemon_binary;
  std::vector<std::string> daemon_args;
  int lone_scalars = 100;
  int gap_ms = 20;
  int64_t flush_scalars = 10'000;
  int64_t close_scalars = 1'000'000;
  int repeat = 5;
};

// Bytes in the event files of `dir` (not its sub-runs).
uint64_t EventBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().filename().string().find("tfevents") == std::string::npos) continue;
    struct stat st {};
    if (stat(entry.path().c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
  }
  return total;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto index = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

absl::StatusOr<std::unique_ptr<Writer>> OpenWriter(const std::string& target,
                                                   const std::string& name) {
  WriterOptions options;
  options.target = target;
  options.experiment = "edges";
  options.name = name;
  return Writer::Open(options);
}

// Milliseconds from each lone scalar() call until the event file grew.
absl::StatusOr<std::vector<double>> Visible(const Config& config, const std::string& target,
                                           const std::string& logdir) {
  auto writer = OpenWriter(target, "visible");
  if (!writer.ok()) return writer.status();
  const std::string dir = absl::StrCat(logdir, "/", (*writer)->run_path());
  std::vector<double> latencies;
  for (int i = 0; i < config.lone_scalars; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(config.gap_ms));
    const uint64_t before = EventBytes(dir);
    const Clock::time_point start = Clock::now();
    if (absl::Status status = (*writer)->scalar("edges/lone", i, 1.0f); !status.ok()) return status;
    // Polls the file as a reader would; gives up after 5 s (then the row
    // shows 5000 ms: the record was not visible before a flush).
    while (EventBytes(dir) == before && MsSince(start) < 5000) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    latencies.push_back(MsSince(start));
  }
  EDGES_RETURN_IF_ERROR((*writer)->close());
  return latencies;
}

struct Edges {
  std::vector<double> open_ms, flush_ms, close_ms;
  // Per run: how long the --close-scalars scalar() calls took, and how many
  // of the run's records were not yet acknowledged as written when close()
  // was called (what close() waits for: the daemon fell that far behind).
  std::vector<double> calls_ms, backlog;
};

absl::StatusOr<Edges> MeasureEdges(const Config& config, const std::string& target) {
  Edges edges;
  for (int r = 0; r < config.repeat; ++r) {
    Clock::time_point start = Clock::now();
    auto writer = OpenWriter(target, absl::StrCat("edges-", r));
    if (!writer.ok()) return writer.status();
    edges.open_ms.push_back(MsSince(start));
    for (int64_t i = 0; i < config.flush_scalars; ++i) {
      EDGES_RETURN_IF_ERROR((*writer)->scalar("edges/flush", i, static_cast<float>(i)));
    }
    start = Clock::now();
    EDGES_RETURN_IF_ERROR((*writer)->flush());
    edges.flush_ms.push_back(MsSince(start));
    const Clock::time_point loop_start = Clock::now();
    for (int64_t i = 0; i < config.close_scalars; ++i) {
      EDGES_RETURN_IF_ERROR((*writer)->scalar("edges/close", i, static_cast<float>(i)));
    }
    const double loop_ms = MsSince(loop_start);
    const WriterStats at_close = (*writer)->stats();
    start = Clock::now();
    EDGES_RETURN_IF_ERROR((*writer)->close());
    edges.close_ms.push_back(MsSince(start));
    edges.calls_ms.push_back(loop_ms);
    edges.backlog.push_back(static_cast<double>(at_close.enqueued - at_close.acknowledged));
  }
  return edges;
}

int Run(const Config& config) {
  std::unique_ptr<testing::DaemonProcess> child;
  std::string target = config.address;
  std::string logdir = config.logdir;
  if (!config.daemon_binary.empty()) {
    testing::DaemonProcess::Options options;
    options.binary = config.daemon_binary;
    options.extra_args = config.daemon_args;
    options.log_path = "/dev/null";  // the daemon's log would interleave with the table
    auto started = testing::DaemonProcess::Start(std::move(options));
    if (!started.ok()) {
      std::cerr << "tblog-edges-bench: " << started.status().message() << "\n";
      return 1;
    }
    child = std::move(*started);
    target = child->target();
    logdir = child->logdir();
  }
  std::cout << "tblog-edges-bench: " << MachineLine() << "\n"
            << "load average (1/5/15 min): " << LoadAverage() << " at start\n";
  bool ok = true;
  if (!logdir.empty()) {
    auto visible = Visible(config, target, logdir);
    if (visible.ok()) {
      std::cout << absl::StrFormat(
          "scalar() -> record in the file (%d lone scalars, %d ms apart): median %.2f ms, "
          "p90 %.2f ms, max %.2f ms\n",
          config.lone_scalars, config.gap_ms, Percentile(*visible, 0.5),
          Percentile(*visible, 0.9), Percentile(*visible, 1.0));
    } else {
      std::cout << "visible: FAILED: " << visible.status().message() << "\n";
      ok = false;
    }
  } else {
    std::cout << "visible: skipped (pass --logdir, the daemon's log directory)\n";
  }
  auto edges = MeasureEdges(config, target);
  if (edges.ok()) {
    std::cout << absl::StrFormat(
        "C++ Writer::Open: median %.2f ms; flush() after %d scalars: median %.2f ms; close() "
        "after %d scalars: median %.2f ms (max %.2f ms) over %d runs\n",
        Percentile(edges->open_ms, 0.5), config.flush_scalars, Percentile(edges->flush_ms, 0.5),
        config.close_scalars, Percentile(edges->close_ms, 0.5), Percentile(edges->close_ms, 1.0),
        config.repeat);
    // Each run's close(), in order: its spread (two groups, or one) says
    // more than the median.
    std::cout << "close() per run (ms):";
    for (double ms : edges->close_ms) std::cout << absl::StrFormat(" %.1f", ms);
    std::cout << "\nits backlog per run (records not yet acknowledged when close() was called):";
    for (double records : edges->backlog) std::cout << absl::StrFormat(" %.0f", records);
    std::cout << "\nthe scalar() calls before it per run (ms):";
    for (double ms : edges->calls_ms) std::cout << absl::StrFormat(" %.1f", ms);
    std::cout << "\n";
  } else {
    std::cout << "edges: FAILED: " << edges.status().message() << "\n";
    ok = false;
  }
  std::cout << "load average (1/5/15 min): " << LoadAverage() << " at end\n";
  if (child != nullptr) {
    if (absl::Status stopped = child->Stop(); !stopped.ok()) {
      std::cout << "tblogd shutdown: " << stopped.message() << "\n";
      ok = false;
    }
  }
  std::cout << (ok ? "PASS" : "FAIL") << "\n";
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace tblog::bench

int main(int argc, char** argv) {
  tblog::bench::Config config;
  CLI::App app{"tblog-edges-bench: time to visibility of a lone scalar, and the cost of "
               "open, flush and close, through tblogd"};
  auto* address = app.add_option("--address", config.address,
                                 "gRPC target of a running tblogd (host:port or unix:/path)");
  app.add_option("--logdir", config.logdir, "With --address: the daemon's log directory");
  auto* spawn = app.add_option("--spawn-daemon", config.daemon_binary,
                               "Start this tblogd on a temp logdir + unix socket");
  app.add_option("--daemon-arg", config.daemon_args, "Extra argument for the spawned tblogd");
  address->excludes(spawn);
  app.add_option("--lone-scalars", config.lone_scalars, "Lone scalars timed to the file")
      ->capture_default_str();
  app.add_option("--gap-ms", config.gap_ms, "Milliseconds between lone scalars")
      ->capture_default_str();
  app.add_option("--flush-scalars", config.flush_scalars, "Scalars before the timed flush()")
      ->capture_default_str();
  app.add_option("--close-scalars", config.close_scalars, "Scalars before the timed close()")
      ->capture_default_str();
  app.add_option("--repeat", config.repeat, "Runs of open/flush/close")->capture_default_str()
      ->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  if (config.address.empty() && config.daemon_binary.empty()) {
    std::cerr << "tblog-edges-bench: give --address or --spawn-daemon\n";
    return 2;
  }
  return tblog::bench::Run(config);
}
