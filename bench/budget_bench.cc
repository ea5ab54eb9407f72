// tblog-budget-bench: does tblogd's memory stay within --max-inflight-bytes
// plus its documented overhead (README, "Memory")? Floods a real daemon with
// large records from 1, 4 and 16 clients at once, Write streams or unary
// WriteBatch callers, and prints the daemon's peak RSS next to the budget.
//
// Each row starts a fresh tblogd (so its VmHWM is the row's own peak), opens
// one run, and lets `n` clients (each with its own connection, as separate
// trainer processes would have) send `--batches` batches of one record each:
//   image      uint8 RGBA pixels of --image-bytes (random, so the PNG does not
//              compress: the worst case for the daemon's encoded copy);
//   histogram  float32 values of --histogram-bytes.
// Unary callers retry RESOURCE_EXHAUSTED (a refused or expired parked call)
// and UNAVAILABLE after 50 ms, as the clients' backoff would. At the end every record must be
// in the run (GetRun's records_written), or the row says LOST.
//
// The allowed peak is idle RSS (the daemon before any load) + the budget +
// the documented overhead: per connection, gRPC's transport buffers; per
// unary caller what a parked WriteBatch call holds of its unread message (one
// HTTP/2 stream window); plus a fixed allowance for the allocator (freed
// memory it keeps).
//
//   tblog-budget-bench --daemon build/server/daemon/tblogd
//   tblog-budget-bench --daemon /tmp/old/tblogd --max-inflight-bytes 32MiB --clients 16
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "grpcpp/grpcpp.h"
#include "machine.h"
#include "support/daemon_process.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = 1 << 20;

// The documented overhead (README, "Memory"), which each row is held to.
constexpr uint64_t kFixedOverhead = 48 * kMiB;       // allocator slack, gRPC and worker arenas
constexpr uint64_t kPerConnectionOverhead = 1 * kMiB;  // transport buffers, stream state
// A parked WriteBatch call: the 64 KiB stream window of its message, not read
// until the budget has room (the daemon's kParkedCallBytes).
constexpr uint64_t kPerParkedCallOverhead = 64 << 10;

struct Config {
  std::string daemon;
  std::string budget = "32MiB";
  std::vector<int> clients = {1, 4, 16};
  std::vector<std::string> kinds = {"image", "histogram"};
  std::vector<std::string> modes = {"stream", "unary"};
  int batches = 4;
  uint64_t image_bytes = 8 * kMiB;
  uint64_t histogram_bytes = 8 * kMiB;
  int workers = 0;
};

uint64_t ParseBytes(const std::string& text) {
  uint64_t value = 0;
  size_t used = 0;
  value = std::stoull(text, &used);
  const std::string unit = text.substr(used);
  if (unit == "KiB") return value << 10;
  if (unit == "MiB") return value << 20;
  if (unit == "GiB") return value << 30;
  return value;
}

std::string Mib(uint64_t bytes) { return absl::StrFormat("%.0f MiB", bytes / double(kMiB)); }

// One record of `kind`, `bytes` large, at `step`.
v1::Record MakeRecord(const std::string& kind, uint64_t bytes, int client, int step,
                      const std::string& payload) {
  v1::Record record;
  record.set_tag(absl::StrCat(kind, "/c", client));
  record.set_step(step);
  v1::Tensor* tensor = nullptr;
  if (kind == "image") {
    tensor = record.mutable_image()->mutable_pixels();
    tensor->set_dtype(v1::DTYPE_UINT8);
    const int64_t width = 2048;
    tensor->add_shape(static_cast<int64_t>(bytes / 4 / width));
    tensor->add_shape(width);
    tensor->add_shape(4);
  } else {
    tensor = record.mutable_histogram()->mutable_values();
    tensor->set_dtype(v1::DTYPE_FLOAT32);
    tensor->add_shape(static_cast<int64_t>(bytes / 4));
  }
  tensor->set_data(payload);
  return record;
}

std::string Payload(const std::string& kind, uint64_t bytes) {
  std::mt19937 random(42);
  std::string data(bytes, '\0');
  if (kind == "image") {
    for (char& c : data) c = static_cast<char>(random() & 0xff);
  } else {
    std::normal_distribution<float> normal;
    for (size_t i = 0; i + 4 <= data.size(); i += 4) {
      const float value = normal(random);
      std::memcpy(&data[i], &value, 4);
    }
  }
  return data;
}

std::shared_ptr<grpc::Channel> Connect(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(-1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection per client
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

struct RowResult {
  int clients = 0;
  std::string kind, mode;
  uint64_t budget = 0, idle = 0, peak = 0, allowed = 0;
  double seconds = 0;
  int64_t written = 0, expected = 0, retries = 0;
  std::string error;
};

// Peak VmRSS sampled every 2 ms (VmHWM is the kernel's exact peak; this is
// for a daemon that is not our child).
class RssSampler {
 public:
  explicit RssSampler(pid_t pid) : pid_(pid), thread_([this] { Loop(); }) {}
  ~RssSampler() { Stop(); }
  uint64_t Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return peak_;
  }

 private:
  void Loop() {
    while (!stop_) {
      peak_ = std::max<uint64_t>(peak_, StatusBytes(pid_, "VmRSS").value_or(0));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  pid_t pid_;
  std::atomic<bool> stop_{false};
  uint64_t peak_ = 0;
  std::thread thread_;
};

// Client `c`: `batches` sequenced batches over one Write stream.
std::string StreamClient(const std::string& target, const std::string& run_id, int c,
                         const Config& config, const std::string& kind, uint64_t bytes,
                         const std::string& payload) {
  auto stub = v1::TBLog::NewStub(Connect(target));
  grpc::ClientContext context;
  auto stream = stub->Write(&context);
  for (int i = 0; i < config.batches; ++i) {
    v1::WriteRequest request;
    request.set_run_id(run_id);
    request.set_writer_id(absl::StrCat("s", c));
    request.set_sequence(static_cast<uint64_t>(i + 1));
    *request.add_records() = MakeRecord(kind, bytes, c, i, payload);
    if (!stream->Write(request)) break;
  }
  stream->WritesDone();
  v1::WriteResponse ack;
  while (stream->Read(&ack)) {
    if (ack.written_sequence() == static_cast<uint64_t>(config.batches)) break;
  }
  context.TryCancel();
  grpc::Status status = stream->Finish();
  return ack.written_sequence() == static_cast<uint64_t>(config.batches)
             ? ""
             : absl::StrCat("stream ", c, ": ", status.error_message());
}

// Client `c`: `batches` WriteBatch calls, retrying RESOURCE_EXHAUSTED.
std::string UnaryClient(const std::string& target, const std::string& run_id, int c,
                        const Config& config, const std::string& kind, uint64_t bytes,
                        const std::string& payload, std::atomic<int64_t>* retries) {
  auto stub = v1::TBLog::NewStub(Connect(target));
  for (int i = 0; i < config.batches; ++i) {
    v1::WriteRequest request;
    request.set_run_id(run_id);
    request.set_writer_id(absl::StrCat("u", c));
    request.set_sequence(static_cast<uint64_t>(i + 1));
    *request.add_records() = MakeRecord(kind, bytes, c, i, payload);
    while (true) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
      v1::WriteResponse response;
      grpc::Status status = stub->WriteBatch(&context, request, &response);
      if (status.ok()) break;
      // Transient codes are retried, as the clients do (tblog.proto, "Retries").
      if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED &&
          status.error_code() != grpc::StatusCode::UNAVAILABLE) {
        return absl::StrCat("unary ", c, ": ", status.error_message());
      }
      ++*retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return "";
}

RowResult RunRow(const Config& config, int clients, const std::string& kind,
                 const std::string& mode) {
  RowResult row;
  row.clients = clients;
  row.kind = kind;
  row.mode = mode;
  row.budget = ParseBytes(config.budget);
  row.expected = int64_t{clients} * config.batches;
  testing::DaemonProcess::Options options;
  options.binary = config.daemon;
  options.extra_args = {"--max-inflight-bytes", config.budget, "--log-level", "warn"};
  if (config.workers > 0) {
    options.extra_args.insert(options.extra_args.end(),
                              {"--workers", std::to_string(config.workers)});
  }
  auto daemon = testing::DaemonProcess::Start(options);
  if (!daemon.ok()) {
    row.error = daemon.status().ToString();
    return row;
  }
  const pid_t pid = (*daemon)->pid();
  const std::string target = (*daemon)->target();
  auto stub = v1::TBLog::NewStub(Connect(target));
  v1::OpenRunRequest open;
  open.set_run_path(absl::StrCat("bench/", kind, "-", mode, "-", clients));
  v1::OpenRunResponse opened;
  {
    grpc::ClientContext context;
    grpc::Status status = stub->OpenRun(&context, open, &opened);
    if (!status.ok()) {
      row.error = status.error_message();
      return row;
    }
  }
  const uint64_t bytes = kind == "image" ? config.image_bytes : config.histogram_bytes;
  const std::string payload = Payload(kind, bytes);
  row.idle = StatusBytes(pid, "VmRSS").value_or(0);
  row.allowed = row.idle + row.budget + kFixedOverhead +
                kPerConnectionOverhead * static_cast<uint64_t>(clients) +
                (mode == "unary" ? kPerParkedCallOverhead * static_cast<uint64_t>(clients) : 0);

  RssSampler sampler(pid);
  std::atomic<int64_t> retries{0};
  std::vector<std::string> errors(static_cast<size_t>(clients));
  const Clock::time_point start = Clock::now();
  {
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        errors[static_cast<size_t>(c)] =
            mode == "stream"
                ? StreamClient(target, opened.run_id(), c, config, kind, bytes, payload)
                : UnaryClient(target, opened.run_id(), c, config, kind, bytes, payload, &retries);
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  row.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  {
    grpc::ClientContext context;
    v1::FlushRequest flush;
    flush.set_run_id(opened.run_id());
    v1::FlushResponse flushed;
    (void)stub->Flush(&context, flush, &flushed);
  }
  sampler.Stop();
  row.peak = StatusBytes(pid, "VmHWM").value_or(0);
  row.retries = retries;
  {
    grpc::ClientContext context;
    v1::GetRunRequest get;
    get.set_run_id(opened.run_id());
    v1::RunInfo info;
    if (stub->GetRun(&context, get, &info).ok()) {
      row.written = static_cast<int64_t>(info.records_written());
    }
  }
  for (const std::string& error : errors) {
    if (!error.empty() && row.error.empty()) row.error = error;
  }
  (void)(*daemon)->Stop();
  return row;
}

int Main(int argc, char** argv) {
  Config config;
  std::string clients = "1,4,16", kinds = "image,histogram", modes = "stream,unary";
  std::string image_bytes = "8MiB", histogram_bytes = "8MiB";
  CLI::App app("tblogd's peak memory under floods of large records, next to its budget");
  app.add_option("--daemon", config.daemon, "the tblogd binary")->required();
  app.add_option("--max-inflight-bytes", config.budget, "the daemon's budget")
      ->capture_default_str();
  app.add_option("--clients", clients, "client counts, one row each")->capture_default_str();
  app.add_option("--kinds", kinds, "image, histogram")->capture_default_str();
  app.add_option("--modes", modes, "stream (Write), unary (WriteBatch)")->capture_default_str();
  app.add_option("--batches", config.batches, "batches per client")->capture_default_str();
  app.add_option("--image-bytes", image_bytes, "pixels per image record")->capture_default_str();
  app.add_option("--histogram-bytes", histogram_bytes, "float32 values per histogram record")
      ->capture_default_str();
  app.add_option("--workers", config.workers, "the daemon's --workers (0: its default)");
  CLI11_PARSE(app, argc, argv);
  config.clients.clear();
  for (const std::string& n : std::vector<std::string>(absl::StrSplit(clients, ','))) {
    config.clients.push_back(std::stoi(n));
  }
  config.kinds = std::vector<std::string>(absl::StrSplit(kinds, ','));
  config.modes = std::vector<std::string>(absl::StrSplit(modes, ','));
  config.image_bytes = ParseBytes(image_bytes);
  config.histogram_bytes = ParseBytes(histogram_bytes);

  std::cout << "tblog-budget-bench: " << MachineLine() << "\n"
            << "daemon " << config.daemon << ", --max-inflight-bytes " << config.budget
            << ", " << config.batches << " batches of one " << image_bytes << " image / "
            << histogram_bytes << " histogram per client; load average at start "
            << LoadAverage() << "\n\n";
  std::cout << "| clients | kind | mode | budget | idle RSS | peak RSS | peak - idle - budget | "
               "allowed peak | within | time | records | retries |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  int status = 0;
  for (const std::string& kind : config.kinds) {
    for (const std::string& mode : config.modes) {
      for (int n : config.clients) {
        const RowResult row = RunRow(config, n, kind, mode);
        const bool within = row.error.empty() && row.peak <= row.allowed;
        const bool complete = row.written == row.expected;
        if (!within || !complete) status = 1;
        const int64_t over = static_cast<int64_t>(row.peak) - static_cast<int64_t>(row.idle) -
                             static_cast<int64_t>(row.budget);
        std::cout << absl::StrFormat(
                         "| %d | %s | %s | %s | %s | %s | %+.0f MiB | %s | %s | %.1f s | %d/%d%s | %d |",
                         n, kind, mode, Mib(row.budget), Mib(row.idle), Mib(row.peak),
                         over / double(kMiB), Mib(row.allowed), within ? "yes" : "NO",
                         row.seconds, row.written, row.expected, complete ? "" : " LOST",
                         row.retries)
                  << (row.error.empty() ? "" : "  error: " + row.error) << std::endl;
      }
    }
  }
  std::cout << "\nload average at end " << LoadAverage() << "\n";
  return status;
}

}  // namespace
}  // namespace tblog::bench

int main(int argc, char** argv) { return tblog::bench::Main(argc, argv); }
