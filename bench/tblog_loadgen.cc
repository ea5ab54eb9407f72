// tblog-loadgen: end-to-end throughput of tblogd next to the same work done
// in-process, in one run, on one machine.
//
// Each workload is run twice, back to back:
//   through tblogd  tblog::Writer calls (the C++ client) into a daemon, then
//                   flush(): the rate counts from the first call to the flush
//                   returning, the caller cost is the time spent in the calls;
//   in-process      the engine directly on the calling thread (summary value,
//                   Event, EventFileWriter::Write, one Flush at the end), as a
//                   trainer without tblogd would write the same records.
// Afterwards both run directories are read back and every tag's count is
// checked against what was sent (exit status 1 on a mismatch).
//
//   tblog-loadgen --spawn-daemon build/server/daemon/tblogd   # child tblogd on a temp dir
//   tblog-loadgen --address unix:/run/tblogd.sock --logdir /logs   # a running daemon
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "loadgen.h"
#include "machine.h"
#include "support/daemon_process.h"
#include "tblog/client.h"

namespace tblog::loadgen {
namespace {

using bench::FirstLineStartingWith;
using bench::Kernel;
using bench::LoadAverage;
using bench::PeakRss;
using bench::ProcessCpuSeconds;

// ---------------------------------------------------------------------------
// Measurements.

struct Row {
  std::string workload;
  std::string unit;  // "scalars", "elements", "images"
  Side daemon;
  Side in_process;
};

// Measures CPU of this process and (when known) of the daemon around a block.
class CpuMeter {
 public:
  explicit CpuMeter(pid_t daemon_pid) : daemon_pid_(daemon_pid) { start_ = Now(); }
  double Elapsed() const { return Now() - start_; }

 private:
  double Now() const {
    double total = OwnCpuSeconds();
    if (daemon_pid_ > 0) total += ProcessCpuSeconds(daemon_pid_).value_or(0);
    return total;
  }
  pid_t daemon_pid_;
  double start_ = 0;
};

// ---------------------------------------------------------------------------
// Through tblogd.

// Runs `calls` record calls through `writer`, then flush().
template <typename Call>
Side ThroughDaemon(Writer& writer, pid_t daemon_pid, int64_t calls, double units, Call call) {
  Side side;
  side.calls = calls;
  side.units = units;
  const uint64_t blocked_before = writer.stats().blocked_calls;
  CpuMeter cpu(daemon_pid);
  const Clock::time_point start = Clock::now();
  for (int64_t i = 0; i < calls; ++i) {
    absl::Status status = call(i);
    if (!status.ok()) {
      side.status = absl::Status(status.code(), absl::StrCat("call ", i, ": ", std::string(status.message())));
      return side;
    }
  }
  const Clock::time_point calls_done = Clock::now();
  side.status = writer.flush();
  const Clock::time_point flushed = Clock::now();
  side.cpu_seconds = cpu.Elapsed();
  side.seconds = SecondsBetween(start, flushed);
  side.caller_seconds = SecondsBetween(start, calls_done);
  side.blocked_calls = writer.stats().blocked_calls - blocked_before;
  return side;
}

// (d): `writers` threads, each with its own Writer (stream) into the run at
// `run_path`, each logging config.writer_scalars scalars, then flush().
Side MultiWriterThroughDaemon(const Config& config, const std::string& target,
                              const std::string& run_path, pid_t daemon_pid) {
  Side side;
  std::vector<std::unique_ptr<Writer>> writers;
  for (int w = 0; w < config.writers; ++w) {
    WriterOptions options;
    options.target = target;
    options.run_path = run_path;
    auto writer = Writer::Open(options);
    if (!writer.ok()) {
      side.status = writer.status();
      return side;
    }
    writers.push_back(std::move(*writer));
  }
  std::optional<CpuMeter> cpu;
  Clock::time_point start;
  const WriterThreads threads = RunWriterThreads(
      config,
      [&](int w, const std::string& tag, int64_t step, float value) {
        return writers[w]->scalar(tag, step, value);
      },
      [&](int w) { return writers[w]->flush(); },
      [&] {
        cpu.emplace(daemon_pid);
        start = Clock::now();
      });
  side.seconds = SecondsBetween(start, Clock::now());
  side.cpu_seconds = cpu->Elapsed();
  side.calls = config.writers * config.writer_scalars;
  side.units = static_cast<double>(side.calls);
  side.caller_seconds = threads.caller_seconds;
  side.status = threads.FirstError();
  for (const std::unique_ptr<Writer>& writer : writers) {
    side.blocked_calls += writer->stats().blocked_calls;
  }
  for (auto& writer : writers) {
    absl::Status closed = writer->close();
    if (side.status.ok() && !closed.ok()) side.status = closed;
  }
  return side;
}

// ---------------------------------------------------------------------------
// The report.

// 1234567 -> "1.23M"; the rate's unit follows.
std::string Si(double value) {
  const char* suffixes[] = {"", "k", "M", "G", "T"};
  int i = 0;
  while (std::abs(value) >= 1000 && i < 4) {
    value /= 1000;
    ++i;
  }
  return absl::StrFormat("%.3g%s", value, suffixes[i]);
}

std::string Duration(double seconds) {
  if (seconds < 1e-6) return absl::StrFormat("%.0f ns", seconds * 1e9);
  if (seconds < 1e-3) return absl::StrFormat("%.1f us", seconds * 1e6);
  if (seconds < 1) return absl::StrFormat("%.2f ms", seconds * 1e3);
  return absl::StrFormat("%.2f s", seconds);
}

std::string Describe(const Side& side, std::string_view unit) {
  if (!side.status.ok()) return absl::StrCat("FAILED: ", std::string(side.status.message()));
  return absl::StrFormat("%s %s/s, %s/call", Si(side.rate()), unit, Duration(side.per_call()));
}

void PrintTable(const std::vector<Row>& rows) {
  std::cout << absl::StrFormat("\n%-34s | %-34s | %-34s | %-6s | %s\n", "workload",
                               "through tblogd: rate, caller/call", "in-process: rate, cost/call",
                               "rate x", "CPU s tblogd(app+daemon) / in-proc, notes");
  std::cout << std::string(160, '-') << "\n";
  for (const Row& row : rows) {
    const bool both_ok = row.daemon.status.ok() && row.in_process.status.ok();
    const double ratio = both_ok && row.in_process.rate() > 0 ? row.daemon.rate() / row.in_process.rate() : 0;
    std::cout << absl::StrFormat("%-34s | %-34s | %-34s | %-6s | %.2f / %.2f, %.3f s / %.3f s wall, %d blocked calls\n",
                                 row.workload, Describe(row.daemon, row.unit),
                                 Describe(row.in_process, row.unit),
                                 both_ok ? absl::StrFormat("%.2f", ratio) : std::string("-"),
                                 row.daemon.cpu_seconds, row.in_process.cpu_seconds,
                                 row.daemon.seconds, row.in_process.seconds,
                                 row.daemon.blocked_calls);
  }
  std::cout << "rate x = rate through tblogd / in-process rate (>1: tblogd faster end to end).\n"
               "caller/call = time inside the Writer call on the training thread; the in-process\n"
               "cost/call is all the work (summary, event, write) on that thread.\n";
}

std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/tblog-loadgen-XXXXXX");
  return mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
}

// Where the daemon is, from the command line.
struct Target {
  std::string address;        // a running daemon
  std::string logdir;         // its log directory, for the read-back
  std::string daemon_binary;  // or a child daemon started from this binary
  std::vector<std::string> daemon_args;
  bool keep = false;          // keep the temp directory
};

int Run(const Config& config, const Target& where) {
  const std::string temp = MakeTempDir();
  if (temp.empty()) {
    std::cerr << "tblog-loadgen: mkdtemp: " << std::strerror(errno) << "\n";
    return 1;
  }
  const std::string load_at_start = LoadAverage();
  std::unique_ptr<testing::DaemonProcess> child;
  std::string target = where.address;
  std::string logdir = where.logdir;
  if (!where.daemon_binary.empty()) {
    testing::DaemonProcess::Options daemon_options;
    daemon_options.binary = where.daemon_binary;
    daemon_options.extra_args = where.daemon_args;
    daemon_options.logdir = temp + "/logs";
    daemon_options.socket_path = temp + "/tblogd.sock";
    daemon_options.log_path = temp + "/tblogd.log";
    auto started = testing::DaemonProcess::Start(std::move(daemon_options));
    if (!started.ok()) {
      std::cerr << "tblog-loadgen: " << started.status().message() << "\n";
      return 1;
    }
    child = std::move(*started);
    target = child->target();
    logdir = child->logdir();
  }
  const pid_t daemon_pid = child != nullptr ? child->pid() : -1;

  WriterOptions options;
  options.target = target;
  options.experiment = "loadgen";
  options.name = "bench";
  auto opened = Writer::Open(options);
  if (!opened.ok()) {
    std::cerr << "tblog-loadgen: Writer::Open(" << target << "): " << opened.status().message()
              << "\n";
    return 1;
  }
  std::unique_ptr<Writer> writer = std::move(*opened);
  const std::string run_path = writer->run_path();

  const std::string in_process_dir = temp + "/in-process";
  auto in_process = InProcessRun::Create(in_process_dir);
  if (!in_process.ok()) {
    std::cerr << "tblog-loadgen: " << in_process.status().message() << "\n";
    return 1;
  }

  const Inputs inputs = MakeInputs(config);
  const std::string histogram_tag(kHistogramTag);
  const std::string image_tag(kImageTag);
  TagCounts expected;
  std::vector<Row> rows;
  if (config.scalars > 0) {
    Row row{absl::StrCat("(a) scalars: ", Si(static_cast<double>(config.scalars)), " over ",
                         config.tags, " tags"),
            "scalars", {}, {}};
    const auto& tags = inputs.scalar_tags;
    const int k = config.tags;
    row.daemon = ThroughDaemon(*writer, daemon_pid, config.scalars,
                               static_cast<double>(config.scalars), [&](int64_t i) {
                                 return writer->scalar(tags[i % k], i / k, ScalarValueAt(i));
                               });
    row.in_process = (*in_process)->Scalars(config, inputs);
    ExpectScalars("scalars/t", config.scalars, config.tags, &expected);
    rows.push_back(std::move(row));
  }
  if (config.histograms > 0) {
    Row row{absl::StrCat("(b) histograms: ", config.histograms, " x ",
                         Si(static_cast<double>(config.histogram_elements)), " f32"),
            "elements", {}, {}};
    const double units =
        static_cast<double>(config.histograms) * static_cast<double>(config.histogram_elements);
    row.daemon = ThroughDaemon(*writer, daemon_pid, config.histograms, units, [&](int64_t i) {
      return writer->histogram(histogram_tag, i, inputs.histogram_values);
    });
    row.in_process = (*in_process)->Histograms(config, inputs);
    expected[histogram_tag] += config.histograms;
    rows.push_back(std::move(row));
  }
  if (config.images > 0) {
    Row row{absl::StrCat("(c) images: ", config.images, " x ", config.image_side, "x",
                         config.image_side, "x3 u8"),
            "images", {}, {}};
    row.daemon = ThroughDaemon(*writer, daemon_pid, config.images,
                               static_cast<double>(config.images), [&](int64_t i) {
                                 return writer->image(image_tag, i, inputs.image_pixels,
                                                      inputs.image_shape);
                               });
    row.in_process = (*in_process)->Images(config, inputs);
    expected[image_tag] += config.images;
    rows.push_back(std::move(row));
  }
  if (config.writers > 0 && config.writer_scalars > 0) {
    Row row{absl::StrCat("(d) ", config.writers, " writer threads x ",
                         Si(static_cast<double>(config.writer_scalars)), " scalars"),
            "scalars", {}, {}};
    row.daemon = MultiWriterThroughDaemon(config, target, run_path, daemon_pid);
    row.in_process = (*in_process)->MultiWriterScalars(config);
    for (int w = 0; w < config.writers; ++w) {
      ExpectScalars(absl::StrCat("multi/w", w, "/t"), config.writer_scalars, config.tags,
                    &expected);
    }
    rows.push_back(std::move(row));
  }

  bool ok = true;
  if (absl::Status closed = writer->close(); !closed.ok()) {
    std::cout << "Writer::close: " << closed.message() << "\n";
    ok = false;
  }
  if (absl::Status closed = (*in_process)->Close(); !closed.ok()) {
    std::cout << "in-process Close: " << closed.message() << "\n";
    ok = false;
  }
  const std::string peak_rss = child != nullptr ? PeakRss(daemon_pid) : std::string("n/a");
  const std::string load_at_end = LoadAverage();

  std::cout << "tblog-loadgen: " << FirstLineStartingWith("/proc/cpuinfo", "model name") << ", "
            << std::thread::hardware_concurrency() << " cores, "
            << FirstLineStartingWith("/proc/meminfo", "MemTotal") << " RAM, " << Kernel() << "\n"
            << "load average (1/5/15 min): " << load_at_start << " at start, " << load_at_end
            << " at end\n"
            << "daemon: "
            << (child != nullptr ? absl::StrCat("spawned ", where.daemon_binary, " (pid ",
                                                daemon_pid, "), peak RSS ", peak_rss)
                                 : absl::StrCat("at ", target))
            << "; run " << run_path << "\n";
  PrintTable(rows);
  for (const Row& row : rows) ok = ok && row.daemon.status.ok() && row.in_process.status.ok();

  std::cout << "\n";
  if (!logdir.empty()) {
    ok = VerifyRun("through tblogd", logdir + "/" + run_path, expected) && ok;
  } else {
    std::cout << "read-back through tblogd: skipped (pass --logdir, the daemon's log directory)\n";
  }
  ok = VerifyRun("in-process", in_process_dir, expected) && ok;

  writer.reset();  // its channel too: the daemon's drain waits for open connections
  if (child != nullptr) {
    if (absl::Status stopped = child->Stop(); !stopped.ok()) {
      std::cout << "tblogd shutdown: " << stopped.message() << "\n";
      ok = false;
    }
  }
  if (!where.keep) {
    std::error_code ignored;  // best effort: a leftover temp dir is harmless
    std::filesystem::remove_all(temp, ignored);
  } else {
    std::cout << "kept " << temp << "\n";
  }
  std::cout << (ok ? "PASS" : "FAIL") << "\n";
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace tblog::loadgen

int main(int argc, char** argv) {
  tblog::loadgen::Config config;
  tblog::loadgen::Target where;
  CLI::App app{"tblog-loadgen: end-to-end rates through tblogd next to the same work in-process"};
  auto* address = app.add_option("--address", where.address,
                                 "gRPC target of a running tblogd (host:port or unix:/path)");
  app.add_option("--logdir", where.logdir,
                 "With --address: the daemon's log directory, to read the run back");
  auto* spawn = app.add_option("--spawn-daemon", where.daemon_binary,
                               "Start this tblogd on a temp logdir + unix socket, stop it at the end");
  app.add_option("--daemon-arg", where.daemon_args,
                 "Extra argument for the spawned tblogd (repeatable, e.g. --daemon-arg=--workers=2)");
  address->excludes(spawn);
  app.add_option("--scalars", config.scalars, "(a) scalars through one writer")->capture_default_str();
  app.add_option("--tags", config.tags, "Scalar tags, in rotation")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--histograms", config.histograms, "(b) histogram calls")->capture_default_str();
  app.add_option("--histogram-elements", config.histogram_elements, "float32 values per histogram")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 27));
  app.add_option("--images", config.images, "(c) image calls")->capture_default_str();
  app.add_option("--image-side", config.image_side, "Images are side x side x 3 uint8")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--writers", config.writers, "(d) writer threads, one stream each, into the run (0 = skip)")
      ->capture_default_str()->check(CLI::Range(0, 64));
  app.add_option("--writer-scalars", config.writer_scalars, "(d) scalars per writer thread")
      ->capture_default_str();
  app.add_flag("--keep", where.keep, "Keep the temp directory (logs, in-process run)");
  CLI11_PARSE(app, argc, argv);
  if (where.address.empty() && where.daemon_binary.empty()) {
    std::cerr << "tblog-loadgen: give --address or --spawn-daemon\n";
    return 2;
  }
  return tblog::loadgen::Run(config, where);
}
