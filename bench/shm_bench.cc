// tblog-shm-bench: large histograms end to end through a tblogd child over
// shared memory, over its unix socket (bytes in the messages) and over TCP,
// next to the same histograms computed and written in-process with the
// engine, in one run (issue 13's first rows). Per transport and size:
// elements/s from the first call until flush() returned, the training
// thread's cost per call, and the total CPU per histogram (this process plus
// the daemon, from /proc); shared memory both through histogram() (one copy
// into the ring) and through histogram_slot() (zero-copy), with the ring's
// default size, grown as the tensors ask. A summary gives the rows.
// Benchmarks print; nothing is asserted.
//
//   tblog-shm-bench --daemon build-release/server/daemon/tblogd [--sizes 1048576,16777216]
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
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

// CPU seconds of every thread of `pid` so far, in nanoseconds
// (/proc/<pid>/task/*/schedstat), falling back to /proc/<pid>/stat's clock
// ticks. The ticks (10 ms) were too coarse: a default run's 64 histograms of
// 1M floats cost the daemon about 100 ms, which they gave to +-10%. A thread
// that ends between two readings loses what it ran since the first (tblogd's
// workers and polling threads live as long as it does).
double DaemonCpuSeconds(pid_t pid) {
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  DIR* dir = ::opendir(tasks.c_str());
  if (dir == nullptr) return bench::ProcessCpuSeconds(pid).value_or(0);
  unsigned long long nanoseconds = 0;
  while (const dirent* task = ::readdir(dir)) {
    if (task->d_name[0] == '.') continue;
    const std::string path = absl::StrCat(tasks, "/", task->d_name, "/schedstat");
    if (FILE* file = std::fopen(path.c_str(), "r")) {
      unsigned long long on_cpu = 0;
      if (std::fscanf(file, "%llu", &on_cpu) == 1) nanoseconds += on_cpu;
      std::fclose(file);
    }
  }
  ::closedir(dir);
  return static_cast<double>(nanoseconds) * 1e-9;
}

struct Transport {
  std::string name;
  std::string target;
  bool shm;    // false: bytes in the messages
  bool slots;  // Writer::histogram_slot (zero-copy) instead of histogram()
};

// CPU seconds of the calling thread so far.
double ThreadCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// The fills of slots (LogOne): what the trainer would spend computing its
// values anyway, wherever they go.
struct Fill {
  double seconds = 0;
  double cpu_seconds = 0;
};

// One histogram of `values`, through a slot (filled by a copy, standing for
// the trainer computing its values there; that copy is not counted in
// `caller_seconds` but added to `fill`) or through histogram().
absl::Status LogOne(Writer& writer, bool slots, const std::string& tag, int64_t step,
                    const std::vector<float>& values, double* caller_seconds,
                    Fill* fill = nullptr) {
  if (!slots) {
    const Clock::time_point start = Clock::now();
    absl::Status status = writer.histogram(tag, step, std::span<const float>(values));
    *caller_seconds += SecondsBetween(start, Clock::now());
    return status;
  }
  Clock::time_point start = Clock::now();
  absl::StatusOr<TensorSlot> slot =
      writer.histogram_slot<float>(tag, step, values.size());
  *caller_seconds += SecondsBetween(start, Clock::now());
  if (!slot.ok()) return slot.status();
  std::span<float> into = slot->values<float>();
  const double fill_cpu = ThreadCpuSeconds();
  start = Clock::now();
  std::copy(values.begin(), values.end(), into.begin());
  if (fill != nullptr) {
    fill->seconds += SecondsBetween(start, Clock::now());
    fill->cpu_seconds += ThreadCpuSeconds() - fill_cpu;
  }
  start = Clock::now();
  absl::Status status = writer.submit(*std::move(slot));
  *caller_seconds += SecondsBetween(start, Clock::now());
  return status;
}

// `calls` histograms of `values` through a Writer on `transport`, then flush.
// The median time of one call when the daemon keeps up (each call flushed
// before the next, so the ring always has room): the training thread's own
// cost, without the backpressure of back-to-back calls.
double MedianCallWithRoom(Writer& writer, bool slots, const std::vector<float>& values) {
  std::vector<double> seconds;
  for (int64_t i = 0; i < 15; ++i) {
    double call = 0;
    if (!LogOne(writer, slots, "hist/spaced", i, values, &call).ok() || !writer.flush().ok()) break;
    seconds.push_back(call);
  }
  if (seconds.empty()) return 0;
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

// `calls` histograms of `values` through a Writer on `transport`, then flush;
// then, for shared memory, MedianCallWithRoom into `call_with_room`.
Side ThroughDaemon(const Transport& transport, pid_t daemon_pid, const std::string& run,
                   int64_t calls, const std::vector<float>& values, WriterStats* stats,
                   double* call_with_room, double* fill_seconds, double* daemon_cpu_seconds) {
  Side side;
  WriterOptions options;
  options.target = transport.target;
  options.run_path = run;
  if (!transport.shm) options.shm_ring_bytes = 0;  // else the defaults: 64 MiB, grown on demand
  // Room for the tensors in flight either way (a 16M-float histogram is 64 MiB).
  options.max_buffer_bytes = std::max<size_t>(options.max_buffer_bytes, 3 * values.size() * 4);
  options.max_batch_bytes = 1;  // each histogram its own batch, sent at once
  options.max_record_bytes = (size_t{256} << 20) - (size_t{1} << 20);  // the daemon's below
  auto writer = Writer::Open(options);
  if (!writer.ok()) {
    side.status = writer.status();
    return side;
  }
  // The ring is made when the first large tensor asks for it, and grown
  // when one leaves no room for a second: two first, flushed.
  double ignored = 0;
  for (int64_t i = 0; i < 2; ++i) {
    (void)LogOne(**writer, transport.slots, "hist/warm_up", i, values, &ignored);
  }
  (void)(*writer)->flush();
  side.calls = calls;
  side.units = static_cast<double>(calls) * static_cast<double>(values.size());
  const auto cpu = [&] {
    return OwnCpuSeconds() + DaemonCpuSeconds(daemon_pid);
  };
  const double cpu_start = cpu();
  const double daemon_cpu_start = DaemonCpuSeconds(daemon_pid);
  const Clock::time_point start = Clock::now();
  Fill fill;
  for (int64_t i = 0; i < calls && side.status.ok(); ++i) {
    side.status = LogOne(**writer, transport.slots, "hist/values", i, values,
                         &side.caller_seconds, &fill);
  }
  if (side.status.ok()) side.status = (*writer)->flush();
  // The fills' CPU is left out: the in-process side does not count making
  // its values either, so both count the CPU logging adds to the training
  // loop. Their time stays in (it holds a core the daemon could use).
  side.seconds = SecondsBetween(start, Clock::now());
  side.cpu_seconds = cpu() - cpu_start - fill.cpu_seconds;
  *daemon_cpu_seconds = DaemonCpuSeconds(daemon_pid) - daemon_cpu_start;
  *fill_seconds = fill.seconds;
  *stats = (*writer)->stats();
  if (side.status.ok() && transport.shm) {
    *call_with_room = MedianCallWithRoom(**writer, transport.slots, values);
  }
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

// A transport row's notes: how many tensors went through the ring, the
// call with room, tblogd's share of the CPU and (slots) the fills.
std::string RowNote(const WriterStats& stats, int64_t calls, bool slots, double call_with_room,
                    double fill_seconds, double daemon_cpu_seconds) {
  const double per = static_cast<double>(calls);
  std::string note = absl::StrCat(stats.shm_tensors, " of ", calls + 2, " via the ring");
  if (stats.shm_ring_bytes > 0) absl::StrAppend(&note, " of ", stats.shm_ring_bytes >> 20, " MiB");
  if (call_with_room > 0) {
    absl::StrAppend(&note, absl::StrFormat("; %.2f ms a call with room", 1e3 * call_with_room));
  }
  absl::StrAppend(&note,
                  absl::StrFormat("; CPU %.2f ms tblogd", 1e3 * daemon_cpu_seconds / per));
  if (slots) {
    absl::StrAppend(&note, absl::StrFormat("; fills %.2f ms a call, not in CPU",
                                           1e3 * fill_seconds / per));
  }
  return note;
}

// The shared-memory rows, from the rows printed above.
struct Summary {
  struct Size {
    int64_t calls = 1;
    Side in_process, shm, slots;
    double shm_call_with_room = 0, slots_call_with_room = 0;
  };
  std::map<int64_t, Size> sizes;

  void Print() const {
    std::cout << "\nissue 13's rows (shared memory; goals in brackets):\n";
    for (const auto& [size, row] : sizes) {
      const double local = row.in_process.rate();
      std::cout << absl::StrFormat(
          "  %.0fM-float histograms end to end: %.0fM el/s = %.2fx in-process (%.0fM el/s) "
          "[>= 0.8x%s]\n",
          static_cast<double>(size) / (1 << 20), row.shm.rate() / 1e6,
          local > 0 ? row.shm.rate() / local : 0, local / 1e6,
          size == (1 << 20) ? ", >= 1G el/s with 2 threads" : "");
      std::cout << absl::StrFormat(
          "    through histogram_slot(): %.0fM el/s = %.2fx in-process\n",
          row.slots.rate() / 1e6, local > 0 ? row.slots.rate() / local : 0);
      if (size != (1 << 20)) continue;
      const double calls = static_cast<double>(row.calls);
      const double cpu = 1e3 * row.shm.cpu_seconds / calls;
      const double slots_cpu = 1e3 * row.slots.cpu_seconds / calls;
      const double local_cpu = 1e3 * row.in_process.cpu_seconds / calls;
      std::cout << absl::StrFormat(
          "  CPU per 1M-float histogram, client + daemon: %.2f ms = %.2fx in-process (%.2f ms) "
          "[<= 1.3x]; through histogram_slot(): %.2f ms = %.2fx\n",
          cpu, local_cpu > 0 ? cpu / local_cpu : 0, local_cpu, slots_cpu,
          local_cpu > 0 ? slots_cpu / local_cpu : 0);
      std::cout << absl::StrFormat(
          "  training-thread cost of a 1M-float histogram (C++), median with room in the ring: "
          "%.3f ms histogram(), %.3f ms histogram_slot() + submit() [<= 0.5 ms]; back to back, "
          "waits for the daemon included: %.3f / %.3f ms\n",
          1e3 * row.shm_call_with_room, 1e3 * row.slots_call_with_room,
          1e3 * row.shm.caller_seconds / calls, 1e3 * row.slots.caller_seconds / calls);
    }
  }
};

int Run(const std::string& daemon_binary, const std::vector<int64_t>& sizes, int64_t min_calls,
        int64_t min_elements, const std::vector<std::string>& daemon_args,
        const std::vector<std::string>& only) {
  std::cout << "machine: " << bench::MachineLine() << "\nload average at start: "
            << bench::LoadAverage() << "\n";
  const int port = FreePort();
  testing::DaemonProcess::Options options;
  options.binary = daemon_binary;
  // Room for a 16M-float histogram as bytes (64 MiB and its framing) in one
  // message, and for it in flight next to a ring.
  options.extra_args = {"--listen", absl::StrCat("127.0.0.1:", port), "--max-message-size",
                        "256MiB", "--max-inflight-bytes", "1GiB", "--log-level", "warn"};
  options.extra_args.insert(options.extra_args.end(), daemon_args.begin(), daemon_args.end());
  auto daemon = testing::DaemonProcess::Start(options);
  if (!daemon.ok()) {
    std::cerr << "tblog-shm-bench: " << daemon.status() << "\n";
    return 1;
  }
  const pid_t pid = (*daemon)->pid();
  std::vector<Transport> transports = {
      {"shared memory", (*daemon)->target(), true, false},
      {"shared memory, slots", (*daemon)->target(), true, true},
      {"unix socket", (*daemon)->target(), false, false},
      {"TCP", absl::StrCat("127.0.0.1:", port), false, false},
  };
  if (!only.empty()) {
    std::erase_if(transports, [&](const Transport& transport) {
      return std::find(only.begin(), only.end(), transport.name) == only.end();
    });
  }
  Summary summary;
  std::cout << absl::StrFormat("\n%-30s | %-15s | %-6s | %-12s | %-12s | %s\n", "workload", "rate",
                               "x in-p", "CPU/histo", "caller/call", "notes");
  std::cout << std::string(110, '-') << "\n";
  for (int64_t size : sizes) {
    // Enough calls that the flush's round trip does not decide the rate.
    const int64_t calls = std::max(min_calls, (min_elements + size - 1) / size);
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
             "engine: the daemon's kernels and thread count, same buffer each call");
    summary.sizes[size].in_process = local;
    summary.sizes[size].calls = calls;
    for (const Transport& transport : transports) {
      WriterStats stats;
      double call_with_room = 0, fill_seconds = 0, daemon_cpu = 0;
      const Side side = ThroughDaemon(transport, pid,
                                      absl::StrCat("bench/", size, "-", transport.name), calls,
                                      inputs.histogram_values, &stats, &call_with_room,
                                      &fill_seconds, &daemon_cpu);
      const std::string note = RowNote(stats, calls, transport.slots, call_with_room,
                                       fill_seconds, daemon_cpu);
      PrintRow(absl::StrCat(label, " ", transport.name), side, calls, local.rate(), note);
      Summary::Size& row = summary.sizes[size];
      if (transport.shm) {
        (transport.slots ? row.slots : row.shm) = side;
        (transport.slots ? row.slots_call_with_room : row.shm_call_with_room) = call_with_room;
      }
    }
  }
  summary.Print();
  std::cout << "rate: elements/s from the first call until flush() returned; x in-p: rate / "
               "in-process rate;\nCPU/histo: CPU seconds of this process + tblogd per histogram "
               "(notes: tblogd's share); "
               "caller/call: time inside Writer::histogram (slots: histogram_slot + submit), back "
               "to back: waits for ring room included;\nslots: the fills (the trainer computing "
               "its values into the slot) are left out of CPU, as in-process leaves out making "
               "its values (not out of rate).\nload average at end: "
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
  int64_t min_elements = int64_t{64} << 20;
  std::vector<std::string> daemon_args;
  app.add_option("--daemon", daemon, "The tblogd binary to start")->required();
  app.add_option("--sizes", sizes_text, "Histogram sizes, in float32 elements, comma-separated")
      ->capture_default_str();
  app.add_option("--histograms", calls, "Histograms per transport and size, at least")
      ->capture_default_str();
  app.add_option("--min-elements", min_elements,
                 "More histograms of a small size, until they hold this many elements")
      ->capture_default_str();
  app.add_option("--daemon-arg", daemon_args, "Extra argument for tblogd (repeatable)");
  std::vector<std::string> only;
  app.add_option("--transport", only,
                 "Only this transport (repeatable): 'shared memory', 'shared memory, slots', "
                 "'unix socket', 'TCP'; default all");
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
  return tblog::loadgen::Run(daemon, sizes, calls, min_elements, daemon_args, only);
}
