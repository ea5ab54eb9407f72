// Upstream mode's operations (issue 11, README "Upstream mode") with real
// processes: an upstream tblogd and a node tblogd started with --upstream.
//   - WriteBatch through the node is charged to the node's in-flight budget:
//     16 callers of 8 MiB batches keep the node's peak memory within its
//     budget (forward_write_batch.h);
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon_test_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog {
namespace {

namespace fs = std::filesystem;
using ::tblog::daemon::testing::ReadSummaryEvents;
using ::tblog::testing::DaemonProcess;
using ::tblog::testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;
constexpr char kRun[] = "job/run";

// A memory figure of /proc/<pid>/status ("VmHWM": the peak resident set;
// "VmRSS"), in bytes; 0 when unreadable.
uint64_t StatusBytes(pid_t pid, const std::string& field) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  }
  return 0;
}

std::shared_ptr<grpc::Channel> Connect(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection per client
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// A batch of one histogram record of `floats` float32 values.
v1::WriteRequest HistogramBatch(const std::string& run_id, const std::string& writer,
                                uint64_t sequence, size_t floats) {
  v1::WriteRequest request;
  request.set_run_id(run_id);
  request.set_writer_id(writer);
  request.set_sequence(sequence);
  v1::Record* record = request.add_records();
  record->set_tag(writer);
  record->set_step(static_cast<int64_t>(sequence));
  v1::Tensor* values = record->mutable_histogram()->mutable_values();
  values->set_dtype(v1::DTYPE_FLOAT32);
  values->add_shape(static_cast<int64_t>(floats));
  std::string data(floats * 4, '\0');
  for (size_t i = 0; i < floats; ++i) {
    const float value = static_cast<float>(i % 100);
    std::memcpy(&data[i * 4], &value, 4);
  }
  values->set_data(std::move(data));
  return request;
}

class UpstreamOpsE2eTest : public ::testing::Test {
 public:
  std::string SocketOf(const std::string& name) const {
    return absl::StrCat(root_.path(), "/", name, ".sock");
  }
  std::string LogdirOf(const std::string& name) const {
    return absl::StrCat(root_.path(), "/", name, "-logs");
  }

  // Starts (or restarts: same logdir and socket) the upstream daemon.
  absl::StatusOr<std::unique_ptr<DaemonProcess>> StartUpstream(std::vector<std::string> extra = {}) {
    DaemonProcess::Options options;
    options.logdir = LogdirOf("upstream");
    options.socket_path = SocketOf("upstream");
    options.log_path = options.socket_path + ".log";
    options.extra_args = {"--daemon-id", "upstream", "--flush-interval", "50ms"};
    options.extra_args.insert(options.extra_args.end(), extra.begin(), extra.end());
    return DaemonProcess::Start(options);
  }

  // Starts node daemon `name`, forwarding to the upstream.
  absl::StatusOr<std::unique_ptr<DaemonProcess>> StartNode(const std::string& name,
                                                           std::vector<std::string> extra = {}) {
    DaemonProcess::Options options;
    options.logdir = LogdirOf(name);
    options.socket_path = SocketOf(name);
    options.log_path = options.socket_path + ".log";
    options.extra_args = {"--daemon-id", name, "--upstream", "unix:" + SocketOf("upstream")};
    options.extra_args.insert(options.extra_args.end(), extra.begin(), extra.end());
    return DaemonProcess::Start(options);
  }

  // Opens kRun through `target`: its run id.
  static std::string OpenRun(const std::string& target) {
    auto stub = v1::TBLog::NewStub(Connect(target));
    v1::OpenRunRequest open;
    open.set_run_path(kRun);
    v1::OpenRunResponse opened;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    const grpc::Status status = stub->OpenRun(&context, open, &opened);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return opened.run_id();
  }

  // tag -> steps, as the upstream's files hold them.
  std::map<std::string, std::vector<int64_t>> StepsByTag() const {
    std::map<std::string, std::vector<int64_t>> steps;
    for (const auto& event : ReadSummaryEvents(fs::path(LogdirOf("upstream")) / kRun)) {
      for (const auto& value : event.summary().value()) steps[value.tag()].push_back(event.step());
    }
    return steps;
  }

  TempDir root_;
};

// 16 unary callers send 8 MiB batches at once through a node whose budget is
// 16 MiB (128 MiB in flight): the node reads each request only once its
// budget has room and holds its charge until the upstream answered, so its
// peak resident memory stays within its idle size + the budget + the
// allowance of budget_e2e_test (gRPC and the allocator). Before, gRPC read
// every caller's message whole as the call arrived (idle + ~300 MiB here).
// Callers retry the documented transient refusal (RESOURCE_EXHAUSTED).
// Every batch is written once upstream.
TEST_F(UpstreamOpsE2eTest, UnaryCallersThroughANodeStayWithinItsBudget) {
  constexpr uint64_t kBudget = 16 * kMiB;
  constexpr int kCallers = 16, kCalls = 2;
  constexpr size_t kFloats = 2 << 20;  // 8 MiB of float32
  auto upstream = StartUpstream();
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  auto node = StartNode("node-a", {"--max-inflight-bytes", "16MiB"});
  ASSERT_TRUE(node.ok()) << node.status();
  const std::string run_id = OpenRun((*node)->target());
  ASSERT_FALSE(run_id.empty());
  const uint64_t idle = StatusBytes((*node)->pid(), "VmRSS");
  ASSERT_GT(idle, 0u);

  std::atomic<int> retries{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      auto stub = v1::TBLog::NewStub(Connect((*node)->target()));
      const std::string writer = absl::StrCat("u", c);
      for (int i = 1; i <= kCalls; ++i) {
        const v1::WriteRequest request = HistogramBatch(run_id, writer, i, kFloats);
        for (int attempt = 0;; ++attempt) {
          ASSERT_LT(attempt, 2000) << writer << " never got in";
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
          v1::WriteResponse response;
          const grpc::Status status = stub->WriteBatch(&context, request, &response);
          if (status.ok()) {
            EXPECT_EQ(response.written_sequence(), static_cast<uint64_t>(i));
            break;
          }
          ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
              << status.error_message();
          EXPECT_NE(status.error_message().find("--max-inflight-bytes"), std::string::npos)
              << status.error_message();
          ++retries;
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  const uint64_t peak = StatusBytes((*node)->pid(), "VmHWM");
  // A memory bound, not a timing (budget_e2e_test's allowance).
  const uint64_t allowed = idle + kBudget + 48 * kMiB + kCallers * kMiB;
  EXPECT_LE(peak, allowed) << "peak " << peak / kMiB << " MiB, idle " << idle / kMiB
                           << " MiB, budget " << kBudget / kMiB << " MiB";
  std::printf("node: idle %llu MiB, peak %llu MiB, %d refusals retried\n",
              static_cast<unsigned long long>(idle / kMiB),
              static_cast<unsigned long long>(peak / kMiB), retries.load());
  const auto steps = StepsByTag();
  for (int c = 0; c < kCallers; ++c) {
    auto it = steps.find(absl::StrCat("u", c));
    ASSERT_NE(it, steps.end()) << "u" << c;
    EXPECT_EQ(it->second, (std::vector<int64_t>{1, 2})) << "u" << c;
  }
  EXPECT_TRUE((*node)->Stop(SIGTERM).ok());
  EXPECT_TRUE((*upstream)->Stop(SIGTERM).ok());
}

}  // namespace
}  // namespace tblog
