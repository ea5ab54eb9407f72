// Upstream mode's operations (issue 11, README "Upstream mode") with real
// processes: an upstream tblogd and a node tblogd started with --upstream.
//   - WriteBatch through the node is charged to the node's in-flight budget:
//     16 callers of 8 MiB batches keep the node's peak memory within its
//     budget (forward_write_batch.h);
//   - keepalive: a frozen upstream (SIGSTOP) is noticed, the node reconnects
//     once it runs again (SIGCONT), and every point arrives once; the
//     tblogd_upstream_* metrics, scraped from /metrics, follow it all;
//   - the node's token file is re-read when it changes: a rotation on both
//     sides, with an upstream that then refuses the old token.
#include <signal.h>

#include <atomic>
#include <chrono>
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
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "support/upstream_fixture.h"
#include "tblog/client.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog {
namespace {

using ::tblog::testing::BatchOf;
using ::tblog::testing::Connect;
using ::tblog::testing::HistogramRecord;
using ::tblog::testing::PeakAllowance;
using ::tblog::testing::ProcStatusBytes;
using ::tblog::testing::ReadTextFile;
using ::tblog::testing::ScrapeMetrics;
using ::tblog::testing::WriteBatchRetryingRefusals;

constexpr uint64_t kMiB = 1 << 20;
constexpr char kRun[] = "job/run";

class UpstreamOpsE2eTest : public ::tblog::testing::UpstreamFixture {
 public:
  UpstreamOpsE2eTest() { upstream_args_ = {"--flush-interval", "50ms"}; }

  // Waits (up to `limit`, generous) until `metric` of node `name` is
  // `value`; false if it never is.
  bool AwaitMetric(const std::string& name, const std::string& metric, double value,
                   absl::Duration limit = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + limit;
    while (absl::Now() < deadline) {
      if (ScrapeMetrics(LogOf(name))[metric] == value) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
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
    return ::tblog::testing::StepsByTag(RunDirOf("upstream", kRun));
  }
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
  const uint64_t idle = ProcStatusBytes((*node)->pid(), "VmRSS");
  ASSERT_GT(idle, 0u);

  std::atomic<int> retries{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      auto stub = v1::TBLog::NewStub(Connect((*node)->target()));
      const std::string writer = absl::StrCat("u", c);
      for (int i = 1; i <= kCalls; ++i) {
        ASSERT_NO_FATAL_FAILURE(WriteBatchRetryingRefusals(
            *stub, BatchOf(run_id, writer, i, HistogramRecord(writer, i, kFloats)), &retries));
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  const uint64_t peak = ProcStatusBytes((*node)->pid(), "VmHWM");
  const uint64_t allowed = PeakAllowance(idle, kBudget, kCallers);
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

// The node pings its upstream every second (--upstream-keepalive 1s). The
// upstream is frozen (SIGSTOP: its socket stays open, nothing answers):
// the node notices within keepalive + 5 s and gives the connection up
// (tblogd_upstream_connected 0; without keepalive it stayed connected for
// as long as the upstream was frozen), while the rank keeps logging into its
// buffer. Once the upstream runs again the node reconnects
// (tblogd_upstream_reconnects_total), and every point is in the upstream's
// files once. Nothing is pending: every batch forwarded was acknowledged or
// given up with its connection.
TEST_F(UpstreamOpsE2eTest, KeepaliveNoticesAFrozenUpstreamAndTheNodeReconnects) {
  constexpr int64_t kSteps = 400;
  auto upstream = StartUpstream();
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  auto node = StartNode("node-a", {"--upstream-keepalive", "1s", "--metrics-listen", "127.0.0.1:0"});
  ASSERT_TRUE(node.ok()) << node.status();
  ASSERT_TRUE(AwaitMetric("node-a", "tblogd_upstream_connected", 1));
  auto writer = Writer::Open(QuickOptions("node-a", kRun, "rank-0"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (int64_t step = 0; step < kSteps / 2; ++step) {
    ASSERT_TRUE((*writer)->scalar("loss", step, 1.0f).ok());
  }
  ASSERT_TRUE((*writer)->flush().ok()) << (*writer)->status();
  auto before = ScrapeMetrics(LogOf("node-a"));
  EXPECT_GT(before["tblogd_upstream_batches_forwarded_total"], 0);
  EXPECT_GT(before["tblogd_upstream_records_forwarded_total"], 0);  // scalars go in columns
  EXPECT_GT(before["tblogd_upstream_bytes_forwarded_total"], 0);
  EXPECT_EQ(before["tblogd_upstream_reconnects_total"], 0);

  ASSERT_EQ(kill((*upstream)->pid(), SIGSTOP), 0);
  for (int64_t step = kSteps / 2; step < kSteps; ++step) {
    ASSERT_TRUE((*writer)->scalar("loss", step, 1.0f).ok());
  }
  const absl::Time frozen = absl::Now();
  const bool noticed = AwaitMetric("node-a", "tblogd_upstream_connected", 0);
  const absl::Duration noticed_after = absl::Now() - frozen;
  ASSERT_EQ(kill((*upstream)->pid(), SIGCONT), 0);
  EXPECT_TRUE(noticed) << "the node still deems a frozen upstream connected";
  EXPECT_NE(ReadTextFile(LogOf("node-a")).find("connection lost"), std::string::npos);

  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
  EXPECT_TRUE(AwaitMetric("node-a", "tblogd_upstream_connected", 1));
  auto after = ScrapeMetrics(LogOf("node-a"));
  EXPECT_GE(after["tblogd_upstream_reconnects_total"], 1);
  EXPECT_GT(after["tblogd_upstream_batches_forwarded_total"],
            before["tblogd_upstream_batches_forwarded_total"]);
  // Not necessarily more acks: the batch forwarded into the frozen upstream
  // sits in its socket buffer; woken, the upstream may write it from there
  // after the node gave the connection up (unacked, abandoned), and the
  // rank's close() then learns from CloseRun that it is durable without a
  // resend (seen in CI: forwarded 2, acked 1, resent 0).
  EXPECT_GE(after["tblogd_upstream_batches_acked_total"],
            before["tblogd_upstream_batches_acked_total"]);
  EXPECT_EQ(after["tblogd_upstream_pending_bytes"], 0);
  EXPECT_LT(after["tblogd_upstream_last_ack_age_seconds"], 60);
  const auto steps = StepsByTag();
  ASSERT_TRUE(steps.count("loss"));
  std::vector<int64_t> want(kSteps);
  for (int64_t i = 0; i < kSteps; ++i) want[i] = i;
  EXPECT_EQ(steps.at("loss"), want);
  std::printf("frozen upstream noticed after %s; forwarded %.0f batches, acked %.0f, resent %.0f\n",
              absl::FormatDuration(noticed_after).c_str(),
              after["tblogd_upstream_batches_forwarded_total"],
              after["tblogd_upstream_batches_acked_total"],
              after["tblogd_upstream_batches_resent_total"]);
  EXPECT_TRUE((*node)->Stop(SIGTERM).ok());
  EXPECT_TRUE((*upstream)->Stop(SIGTERM).ok());
}

// Token rotation: the upstream's token file and the node's are rewritten
// (both re-read within --credentials-reload-interval). Once the upstream
// knows only the new token, the node's calls are refused UNAUTHENTICATED;
// once the node's file holds it too, its calls go through again, without a
// restart of either daemon.
TEST_F(UpstreamOpsE2eTest, TheNodeRereadsItsTokenFileWhenItChanges) {
  const std::string tokens = absl::StrCat(root_.path(), "/tokens");
  const std::string node_token = absl::StrCat(root_.path(), "/node-token");
  const std::string old_token = "0123456789abcdef0123456789abcdef";
  const std::string new_token = "fedcba9876543210fedcba9876543210";
  std::ofstream(tokens) << "node:" << old_token << "\n";
  std::ofstream(node_token) << old_token << "\n";
  auto upstream = StartUpstream({"--auth-token-file", tokens, "--credentials-reload-interval", "1s"});
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  auto node = StartNode("node-a", {"--upstream-token-file", node_token,
                                   "--credentials-reload-interval", "1s"});
  ASSERT_TRUE(node.ok()) << node.status();
  auto stub = v1::TBLog::NewStub(Connect((*node)->target()));
  // ListRuns through the node: its status is the upstream's verdict.
  auto list = [&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::ListRunsResponse response;
    return stub->ListRuns(&context, v1::ListRunsRequest(), &response).error_code();
  };
  // Waits (generously) until ListRuns through the node answers `code`.
  auto await = [&](grpc::StatusCode code) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    grpc::StatusCode got = list();
    while (got != code && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
      got = list();
    }
    return got;
  };
  ASSERT_EQ(list(), grpc::StatusCode::OK);

  std::ofstream(tokens) << "node:" << new_token << "\n";
  EXPECT_EQ(await(grpc::StatusCode::UNAUTHENTICATED), grpc::StatusCode::UNAUTHENTICATED)
      << "the upstream still accepts the old token";
  std::ofstream(node_token) << new_token << "\n";
  EXPECT_EQ(await(grpc::StatusCode::OK), grpc::StatusCode::OK)
      << "the node did not take the new token";
  EXPECT_NE(ReadTextFile(LogOf("node-a")).find("present the new token"), std::string::npos);

  // A writer through the node writes under the new token.
  auto writer = Writer::Open(QuickOptions("node-a", kRun, "rank-0"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (int64_t step = 0; step < 10; ++step) ASSERT_TRUE((*writer)->scalar("loss", step, 1.0f).ok());
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
  EXPECT_EQ(StepsByTag()["loss"].size(), 10u);

  // A file emptied mid-rotation keeps the current token.
  std::ofstream(node_token) << "\n";
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(list(), grpc::StatusCode::OK);
  EXPECT_NE(ReadTextFile(LogOf("node-a")).find("keeping the current token"),
            std::string::npos);
  EXPECT_TRUE((*node)->Stop(SIGTERM).ok());
  EXPECT_TRUE((*upstream)->Stop(SIGTERM).ok());
}

}  // namespace
}  // namespace tblog
