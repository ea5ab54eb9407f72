// tblog-reduce-bench: what a reduction across writers costs the daemon
// (tblog.proto, "Reductions across writers"). For 8, 64 and 512 contributors
// per step and --tags tags, a fresh tblogd takes --steps steps in lockstep,
// as a data-parallel job logs them: at each step every contributor (its own
// writer id) sends one WriteBatch of one MEAN contribution per tag, from
// --clients connections; the step ends when every batch is acknowledged.
// Printed per row:
//   cpu/contribution  the daemon's CPU seconds (utime + stime) over the row,
//                     per contribution, next to the same batches as plain
//                     scalars (each writer its own tags, no reduction);
//   last->point       from sending the step's last contribution to its ack
//                     (WriteBatch answers once its batch is written, and the
//                     batch that completes a group writes the points with
//                     it): p50 and max over the steps;
//   merge/step        cpu/contribution x contributors x tags: the daemon's
//                     CPU to combine one step of every tag (torchtitan's
//                     logging process merges 500 ranks' states in 368 ms).
// Every row checks GetRun: reduce_points == tags x steps, nothing missing.
//
//   tblog-reduce-bench --daemon build-release/server/daemon/tblogd
//   tblog-reduce-bench --daemon ... --contributors 8,64 --tags 100 --steps 20
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "grpcpp/grpcpp.h"
#include "machine.h"
#include "support/daemon_process.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  std::string daemon;
  std::string contributors = "8,64,512";
  int tags = 100;
  // Contributions per row (contributors x tags x steps) aim at this many;
  // steps are at least 3.
  int contributions = 100000;
  int clients = 8;
};

struct Row {
  double cpu_seconds = 0;
  uint64_t contributions = 0;
  std::vector<double> last_to_point;  // seconds, per step
  uint64_t points = 0;
  uint64_t missing = 0;
  bool ok = true;
};

v1::WriteRequest Batch(const std::string& run, int writer, int step, int tags, bool reduce) {
  v1::WriteRequest request;
  request.set_run_id(run);
  request.set_writer_id(absl::StrCat("rank", writer));
  request.set_sequence(static_cast<uint64_t>(step));
  for (int t = 0; t < tags; ++t) {
    v1::Record* record = request.add_records();
    record->set_tag(reduce ? absl::StrCat("metric", t) : absl::StrCat("rank", writer, "/metric", t));
    record->set_step(step);
    record->mutable_scalar()->set_value(static_cast<float>(writer + t) * 0.5f);
    if (reduce) record->mutable_reduce()->set_op(v1::REDUCE_OP_MEAN);
  }
  return request;
}

// One row on a fresh daemon: `contributors` writers x `steps` steps.
Row RunRow(const Config& config, int contributors, int steps, bool reduce) {
  Row row;
  testing::DaemonProcess::Options options;
  options.binary = config.daemon;
  auto daemon = testing::DaemonProcess::Start(options);
  if (!daemon.ok()) {
    std::cerr << "starting tblogd: " << daemon.status() << "\n";
    row.ok = false;
    return row;
  }
  const std::string run = "bench/reduce";
  std::vector<std::unique_ptr<v1::TBLog::Stub>> stubs;
  for (int c = 0; c < config.clients; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection each
    stubs.push_back(v1::TBLog::NewStub(grpc::CreateCustomChannel(
        (*daemon)->target(), grpc::InsecureChannelCredentials(), args)));
  }
  {
    grpc::ClientContext context;
    v1::OpenRunRequest request;
    request.set_run_path(run);
    request.set_writer_id("opener");
    request.set_reduce_group_size(static_cast<uint32_t>(contributors));
    v1::OpenRunResponse response;
    if (!stubs[0]->OpenRun(&context, request, &response).ok()) row.ok = false;
  }
  const pid_t pid = (*daemon)->pid();
  const double cpu_before = ProcessCpuSeconds(pid).value_or(0);
  // Per step: when its last batch was sent and when its last ack came.
  std::vector<std::atomic<int64_t>> last_sent(static_cast<size_t>(steps) + 1);
  std::vector<std::atomic<int64_t>> last_acked(static_cast<size_t>(steps) + 1);
  std::atomic<bool> failed{false};
  std::barrier step_barrier(config.clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < config.clients; ++c) {
    threads.emplace_back([&, c] {
      for (int step = 1; step <= steps; ++step) {
        for (int writer = c; writer < contributors; writer += config.clients) {
          const v1::WriteRequest request = Batch(run, writer, step, config.tags, reduce);
          const int64_t sent = Clock::now().time_since_epoch().count();
          grpc::ClientContext context;
          v1::WriteResponse response;
          if (!stubs[static_cast<size_t>(c)]->WriteBatch(&context, request, &response).ok()) {
            failed = true;
          }
          const int64_t acked = Clock::now().time_since_epoch().count();
          auto& s = last_sent[static_cast<size_t>(step)];
          for (int64_t v = s.load(); sent > v && !s.compare_exchange_weak(v, sent);) {}
          auto& a = last_acked[static_cast<size_t>(step)];
          for (int64_t v = a.load(); acked > v && !a.compare_exchange_weak(v, acked);) {}
        }
        step_barrier.arrive_and_wait();  // lockstep, as ranks of one job
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  row.cpu_seconds = ProcessCpuSeconds(pid).value_or(0) - cpu_before;
  row.contributions = static_cast<uint64_t>(contributors) * static_cast<uint64_t>(config.tags) *
                      static_cast<uint64_t>(steps);
  for (int step = 1; step <= steps; ++step) {
    const auto ticks = last_acked[static_cast<size_t>(step)] - last_sent[static_cast<size_t>(step)];
    row.last_to_point.push_back(
        std::chrono::duration<double>(Clock::duration(ticks)).count());
  }
  {
    grpc::ClientContext context;
    v1::GetRunRequest request;
    request.set_run_id(run);
    v1::RunInfo info;
    if (!stubs[0]->GetRun(&context, request, &info).ok()) row.ok = false;
    row.points = info.reduce_points();
    row.missing = info.reduce_contributions_missing();
  }
  if (failed) row.ok = false;
  (void)(*daemon)->Stop();
  return row;
}

std::string Micros(double seconds) { return absl::StrFormat("%.2f us", seconds * 1e6); }
std::string Millis(double seconds) { return absl::StrFormat("%.2f ms", seconds * 1e3); }

}  // namespace
}  // namespace tblog::bench

int main(int argc, char** argv) {
  using namespace tblog::bench;
  Config config;
  CLI::App app("tblog-reduce-bench: the daemon's cost of reductions across writers");
  app.add_option("--daemon", config.daemon, "tblogd binary")->required();
  app.add_option("--contributors", config.contributors,
                 "contributors per step, one row each (comma-separated)");
  app.add_option("--tags", config.tags, "reduced tags per contributor and step");
  app.add_option("--contributions", config.contributions,
                 "contributions per row (sets the steps; at least 3)");
  app.add_option("--clients", config.clients, "connections sending the contributions");
  CLI11_PARSE(app, argc, argv);

  std::cout << "machine: " << MachineLine() << "\n";
  std::cout << "load average before: " << LoadAverage() << "\n";
  std::cout << absl::StrFormat("%d tags, %d connections, steps in lockstep\n\n", config.tags,
                               config.clients);
  std::cout << absl::StrFormat("%-12s %6s %16s %16s %14s %14s %12s %s\n", "contributors", "steps",
                               "cpu/contribution", "cpu/plain record", "last->point p50",
                               "last->point max", "merge/step", "check");
  int status = 0;
  for (const absl::string_view text : absl::StrSplit(config.contributors, ',')) {
    int contributors = 0;
    if (!absl::SimpleAtoi(text, &contributors) || contributors <= 0) {
      std::cerr << "--contributors: not a positive number: " << text << "\n";
      return 2;
    }
    const int steps = std::max(3, config.contributions / std::max(1, contributors * config.tags));
    const Row reduced = RunRow(config, contributors, steps, /*reduce=*/true);
    const Row plain = RunRow(config, contributors, steps, /*reduce=*/false);
    std::vector<double> latency = reduced.last_to_point;
    std::sort(latency.begin(), latency.end());
    const double per = reduced.cpu_seconds / static_cast<double>(reduced.contributions);
    const double per_plain = plain.cpu_seconds / static_cast<double>(plain.contributions);
    const uint64_t want = static_cast<uint64_t>(config.tags) * static_cast<uint64_t>(steps);
    const bool ok = reduced.ok && plain.ok && reduced.points == want && reduced.missing == 0;
    if (!ok) status = 1;
    std::cout << absl::StrFormat(
        "%-12d %6d %16s %16s %14s %14s %12s %s\n", contributors, steps, Micros(per),
        Micros(per_plain), latency.empty() ? "-" : Millis(latency[latency.size() / 2]),
        latency.empty() ? "-" : Millis(latency.back()),
        Millis(per * contributors * config.tags),
        ok ? "ok" : absl::StrCat("FAILED (points ", reduced.points, "/", want, ", missing ",
                                 reduced.missing, ")"));
  }
  std::cout << "load average after: " << LoadAverage() << "\n";
  return status;
}
