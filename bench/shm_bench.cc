// tblog-shm-bench: large histograms end to end through a tblogd child over
// shared memory, over its unix socket (bytes in the messages) and over TCP,
// next to the same histograms computed and written in-process with the
// engine, in one run (issue 13's first rows). Per transport and size:
// elements/s from the first call until flush() returned, the training
// thread's cost per call, and the total CPU per histogram (this process plus
// the daemon, from /proc). Benchmarks print; nothing is asserted.
//
//   tblog-shm-bench --daemon build-release/server/daemon/tblogd [--sizes 1048576,16777216]
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "loadgen.h"
#include "machine.h"
#include "support/daemon_process.h"
#include "tblog/client.h"

namespace tblog::loadgen {
namespace {

// A TCP port that was free a moment ago, for the daemon's --listen.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

struct Transport {
  std::string name;
  std::string target;
  size_t ring_bytes;  // 0: bytes in the messages
};

// `calls` histograms of `values` through a Writer on `transport`, then flush.
Side ThroughDaemon(const Transport& transport, pid_t daemon_pid, const std::string& run,
                   int64_t calls, const std::vector<float>& values, uint64_t* shm_tensors) {
  Side side;
  WriterOptions options;
  options.target = transport.target;
  options.run_path = run;
  options.shm_ring_bytes = transport.ring_bytes;
  // Room for the tensors in flight either way (a 16M-float histogram is 64 MiB).
  options.max_buffer_bytes = std::max<size_t>(options.max_buffer_bytes, 3 * values.size() * 4);
  options.max_batch_bytes = 1;  // each histogram its own batch, sent at once
  auto writer = Writer::Open(options);
  if (!writer.ok()) {
    side.status = writer.status();
    return side;
  }
  // The ring is made when the first large tensor asks for it: one first.
  (void)(*writer)->histogram("hist/warm_up", 0, std::span<const float>(values));
  (void)(*writer)->flush();
  side.calls = calls;
  side.units = static_cast<double>(calls) * static_cast<double>(values.size());
  const auto cpu = [&] {
    return OwnCpuSeconds() + bench::ProcessCpuSeconds(daemon_pid).value_or(0);
  };
  const double cpu_start = cpu();
  const Clock::time_point start = Clock::now();
  for (int64_t i = 0; i < calls && side.status.ok(); ++i) {
    side.status = (*writer)->histogram("hist/values", i, std::span<const float>(values));
  }
  const Clock::time_point calls_done = Clock::now();
  if (side.status.ok()) side.status = (*writer)->flush();
  side.seconds = SecondsBetween(start, Clock::now());
  side.cpu_seconds = cpu() - cpu_start;
  side.caller_seconds = SecondsBetween(start, calls_done);
  *shm_tensors = (*writer)->stats().shm_tensors;
  if (side.status.ok()) side.status = (*writer)->close();
  return side;
}

void PrintRow(const std::string& workload, const Side& side, int64_t calls, double in_process_rate,
              const std::string& note) {
  if (!side.status.ok()) {
    std::cout << absl::StrFormat("%-30s | failed: %s\n", workload, side.status.ToString());
    return;
  }
  const double per = static_cast<double>(calls);
  std::cout << absl::StrFormat(
      "%-30s | %9.0fM el/s | %6.2f | %9.2f ms | %9.2f ms | %s\n", workload, side.rate() / 1e6,
      in_process_rate > 0 ? side.rate() / in_process_rate : 1.0, 1e3 * side.cpu_seconds / per,
      1e3 * side.per_call(), note) << std::flush;
}

int Run(const std::string& daemon_binary, const std::vector<int64_t>& sizes, int64_t calls,
        const std::vector<std::string>& daemon_args) {
  std::cout << "machine: " << bench::MachineLine() << "\nload average at start: "
            << bench::LoadAverage() << "\n";
  const int port = FreePort();
  testing::DaemonProcess::Options options;
  options.binary = daemon_binary;
  // Room for a 16M-float histogram as bytes (64 MiB and its framing) in one
  // message, and for it in flight next to a ring.
  options.extra_args = {"--listen", absl::StrCat("127.0.0.1:", port), "--max-message-size",
                        "256MiB", "--max-inflight-bytes", "1GiB"};
  options.extra_args.insert(options.extra_args.end(), daemon_args.begin(), daemon_args.end());
  auto daemon = testing::DaemonProcess::Start(options);
  if (!daemon.ok()) {
    std::cerr << "tblog-shm-bench: " << daemon.status() << "\n";
    return 1;
  }
  const pid_t pid = (*daemon)->pid();
  const std::vector<Transport> transports = {
      {"shared memory", (*daemon)->target(), size_t{160} << 20},  // two 16M-float slices
      {"unix socket", (*daemon)->target(), 0},
      {"TCP", absl::StrCat("127.0.0.1:", port), 0},
  };
  std::cout << absl::StrFormat("\n%-30s | %-15s | %-6s | %-12s | %-12s | %s\n", "workload", "rate",
                               "x in-p", "CPU/histo", "caller/call", "notes");
  std::cout << std::string(110, '-') << "\n";
  for (int64_t size : sizes) {
    Config config;
    config.histograms = calls;
    config.histogram_elements = size;
    config.scalars = 0;
    config.images = 0;
    const Inputs inputs = MakeInputs(config);
    auto in_process = InProcessRun::Create(absl::StrCat((*daemon)->logdir(), "/in-process-", size));
    if (!in_process.ok()) {
      std::cerr << "tblog-shm-bench: " << in_process.status() << "\n";
      return 1;
    }
    const Side local = (*in_process)->Histograms(config, inputs);
    const std::string label = absl::StrFormat("%lldx %.0fM f32", static_cast<long long>(calls),
                                              static_cast<double>(size) / (1 << 20));
    PrintRow(absl::StrCat(label, " in-process"), local, calls, local.rate(),
             "engine, one thread per core");
    for (const Transport& transport : transports) {
      uint64_t shm_tensors = 0;
      const Side side = ThroughDaemon(transport, pid, absl::StrCat("bench/", size, "-", transport.name),
                                      calls, inputs.histogram_values, &shm_tensors);
      PrintRow(absl::StrCat(label, " ", transport.name), side, calls, local.rate(),
               absl::StrCat(shm_tensors, " via the ring"));
    }
  }
  std::cout << "rate: elements/s from the first call until flush() returned; x in-p: rate / "
               "in-process rate;\nCPU/histo: CPU seconds of this process + tblogd per histogram; "
               "caller/call: time inside Writer::histogram.\nload average at end: "
            << bench::LoadAverage() << "\n";
  return (*daemon)->Stop().ok() ? 0 : 1;
}

}  // namespace
}  // namespace tblog::loadgen

int main(int argc, char** argv) {
  CLI::App app{"tblog-shm-bench: large histograms through tblogd over shared memory, unix socket "
               "and TCP, next to in-process"};
  std::string daemon;
  std::string sizes_text = "1048576,16777216";
  int64_t calls = 8;
  std::vector<std::string> daemon_args;
  app.add_option("--daemon", daemon, "The tblogd binary to start")->required();
  app.add_option("--sizes", sizes_text, "Histogram sizes, in float32 elements, comma-separated")
      ->capture_default_str();
  app.add_option("--histograms", calls, "Histograms per transport and size")->capture_default_str();
  app.add_option("--daemon-arg", daemon_args, "Extra argument for tblogd (repeatable)");
  CLI11_PARSE(app, argc, argv);
  std::vector<int64_t> sizes;
  for (absl::string_view size : absl::StrSplit(sizes_text, ',')) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(size, &n) || n <= 0) {
      std::cerr << "tblog-shm-bench: --sizes: not a positive number: " << size << "\n";
      return 2;
    }
    sizes.push_back(n);
  }
  return tblog::loadgen::Run(daemon, sizes, calls, daemon_args);
}
