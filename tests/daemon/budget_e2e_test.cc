// The in-flight budget against a real tblogd (tests/support/daemon_process.h)
// over real gRPC: unary WriteBatch callers wait (or are refused, and retry)
// while Write streams hold the budget, nothing is lost, and a batch larger
// than the whole budget goes through alone (README, "Memory").
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "support/upstream_fixture.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::daemon {
namespace {

using ::tblog::testing::BatchOf;
using ::tblog::testing::Connect;
using ::tblog::testing::DaemonProcess;
using ::tblog::testing::HistogramRecord;
using ::tblog::testing::PeakAllowance;
using ::tblog::testing::ProcStatusBytes;
using ::tblog::testing::WriteBatchRetryingRefusals;

constexpr uint64_t kMiB = 1 << 20;

class BudgetE2eTest : public ::testing::Test {
 protected:
  void StartDaemon(const std::string& budget) {
    DaemonProcess::Options options;
    options.extra_args = {"--max-inflight-bytes", budget, "--log-level", "warn"};
    auto daemon = DaemonProcess::Start(options);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = *std::move(daemon);
    stub_ = v1::TBLog::NewStub(Connect(daemon_->target()));
    v1::OpenRunRequest open;
    open.set_run_path("budget/run");
    v1::OpenRunResponse opened;
    grpc::ClientContext context;
    const grpc::Status status = stub_->OpenRun(&context, open, &opened);
    ASSERT_TRUE(status.ok()) << status.error_message();
    run_id_ = opened.run_id();
    run_dir_ = opened.directory();
  }

  // Sends `batches` histograms of `floats` values over one Write stream and
  // waits until all are acknowledged written.
  void StreamWriter(const std::string& writer, int batches, size_t floats) {
    auto stub = v1::TBLog::NewStub(Connect(daemon_->target()));
    grpc::ClientContext context;
    auto stream = stub->Write(&context);
    for (int i = 1; i <= batches; ++i) {
      ASSERT_TRUE(stream->Write(BatchOf(run_id_, writer, i, HistogramRecord(writer, i, floats))));
    }
    stream->WritesDone();
    v1::WriteResponse ack;
    uint64_t written = 0;
    while (written < static_cast<uint64_t>(batches) && stream->Read(&ack)) {
      EXPECT_EQ(ack.errors_size(), 0) << ack.errors(0).message();
      written = ack.written_sequence();
    }
    EXPECT_EQ(written, static_cast<uint64_t>(batches)) << writer;
    const grpc::Status status = stream->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  // Sends `calls` WriteBatch calls of histograms of `floats` values, each
  // retried while the daemon answers the documented transient refusal
  // (RESOURCE_EXHAUSTED: refused while many calls are parked, or parked past
  // 30 s), counted in `*refused`.
  void UnaryCaller(const std::string& writer, int calls, size_t floats, std::atomic<int>* refused) {
    auto stub = v1::TBLog::NewStub(Connect(daemon_->target()));
    for (int i = 1; i <= calls; ++i) {
      ASSERT_NO_FATAL_FAILURE(WriteBatchRetryingRefusals(
          *stub, BatchOf(run_id_, writer, i, HistogramRecord(writer, i, floats)), refused));
    }
  }

  int64_t RecordsWritten() {
    grpc::ClientContext flush_context;
    v1::FlushRequest flush;
    flush.set_run_id(run_id_);
    v1::FlushResponse flushed;
    EXPECT_TRUE(stub_->Flush(&flush_context, flush, &flushed).ok());
    grpc::ClientContext context;
    v1::GetRunRequest get;
    get.set_run_id(run_id_);
    v1::RunInfo info;
    EXPECT_TRUE(stub_->GetRun(&context, get, &info).ok());
    return static_cast<int64_t>(info.records_written());
  }

  // tag -> steps, as the run's event files hold them.
  std::map<std::string, std::vector<int64_t>> StepsByTag() {
    return ::tblog::testing::StepsByTag(run_dir_);
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<v1::TBLog::Stub> stub_;
  std::string run_id_;
  std::string run_dir_;
};

// Streams keep a 1 MiB budget spent with 2 MiB batches (each larger than the
// budget: one at a time); unary callers of 128 KiB batches meanwhile are
// parked behind them, or refused at once when the parked ones already hold a
// quarter of the budget, and retry. Every batch is written exactly once.
TEST_F(BudgetE2eTest, UnaryCallsWaitWhileStreamsHoldTheBudgetAndNothingIsLost) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon("1MiB"));
  constexpr int kStreams = 2, kStreamBatches = 4, kCallers = 3, kCalls = 4;
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s) {
    threads.emplace_back([&, s] { StreamWriter(absl::StrCat("s", s), kStreamBatches, 512 << 10); });
  }
  for (int c = 0; c < kCallers; ++c) {
    threads.emplace_back([&, c] { UnaryCaller(absl::StrCat("u", c), kCalls, 32 << 10, &refused); });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(RecordsWritten(), kStreams * kStreamBatches + kCallers * kCalls);
  const auto steps = StepsByTag();
  for (int s = 0; s < kStreams; ++s) {
    EXPECT_EQ(steps.at(absl::StrCat("s", s)), (std::vector<int64_t>{1, 2, 3, 4}));
  }
  for (int c = 0; c < kCallers; ++c) {
    EXPECT_EQ(steps.at(absl::StrCat("u", c)), (std::vector<int64_t>{1, 2, 3, 4}));
  }
  RecordProperty("refused_then_retried", refused.load());
  EXPECT_TRUE(daemon_->Stop().ok());
}

// The budget bounds memory for unary callers too: WriteBatch reads a request
// only once the budget has room for it, so 16 callers that each send 8 MiB
// batches at once (twice a 16 MiB budget: 128 MiB in flight) leave the
// daemon's peak resident memory within its idle size + the budget + a
// generous allowance for gRPC and the allocator (README, "Memory"). Before,
// gRPC received every caller's message whole before the daemon saw the call:
// about idle + 170 MiB here. Every batch is written once.
TEST_F(BudgetE2eTest, ManyConcurrentUnaryCallersStayWithinTheBudget) {
  constexpr uint64_t kBudget = 16 * kMiB;
  ASSERT_NO_FATAL_FAILURE(StartDaemon("16MiB"));
  constexpr int kCallers = 16, kCalls = 2;
  constexpr size_t kFloats = 2 << 20;  // 8 MiB of float32
  const uint64_t idle = ProcStatusBytes(daemon_->pid(), "VmRSS");
  ASSERT_GT(idle, 0u);
  std::vector<std::thread> threads;
  std::atomic<int> retries{0};
  for (int c = 0; c < kCallers; ++c) {
    threads.emplace_back([&, c] { UnaryCaller(absl::StrCat("u", c), kCalls, kFloats, &retries); });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(RecordsWritten(), kCallers * kCalls);
  const uint64_t peak = ProcStatusBytes(daemon_->pid(), "VmHWM");
  // Well below the 128 MiB of messages the callers have in flight.
  const uint64_t allowed = PeakAllowance(idle, kBudget, kCallers);
  EXPECT_LE(peak, allowed) << "peak " << peak / kMiB << " MiB, idle " << idle / kMiB
                           << " MiB, budget " << kBudget / kMiB << " MiB";
  RecordProperty("peak_mib", static_cast<int>(peak / kMiB));
  RecordProperty("idle_mib", static_cast<int>(idle / kMiB));
  RecordProperty("retries", retries.load());
  const auto steps = StepsByTag();
  for (int c = 0; c < kCallers; ++c) {
    EXPECT_EQ(steps.at(absl::StrCat("u", c)), (std::vector<int64_t>{1, 2}));
  }
  EXPECT_TRUE(daemon_->Stop().ok());
}

// WriteBatch reads its request itself: a call that carries none (a streaming
// client that half-closes at once) is INVALID_ARGUMENT naming the method, and
// the daemon serves on.
TEST_F(BudgetE2eTest, AWriteBatchCallWithoutARequestIsInvalidArgument) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon("1MiB"));
  auto channel = Connect(daemon_->target());
  {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> call(
        grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
            channel.get(),
            grpc::internal::RpcMethod("/tblog.v1.TBLog/WriteBatch",
                                      grpc::internal::RpcMethod::BIDI_STREAMING),
            &context));
    ASSERT_TRUE(call->WritesDone());
    const grpc::Status status = call->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("/tblog.v1.TBLog/WriteBatch"), std::string::npos)
        << status.error_message();
  }
  grpc::ClientContext context;
  v1::WriteResponse response;
  ASSERT_TRUE(
      stub_->WriteBatch(&context, BatchOf(run_id_, "w", 1, HistogramRecord("w", 1, 16)), &response)
          .ok());
  EXPECT_EQ(response.written_sequence(), 1u);
  EXPECT_TRUE(daemon_->Stop().ok());
}

// A batch larger than the whole budget is not refused and does not deadlock:
// it waits until nothing else is held and goes through alone, on a stream and
// unary alike.
TEST_F(BudgetE2eTest, ABatchLargerThanTheBudgetGoesThroughAlone) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon("256KiB"));
  std::thread stream([&] { StreamWriter("big-stream", 3, 1 << 20); });  // 4 MiB batches
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::WriteResponse response;
    const grpc::Status status = stub_->WriteBatch(
        &context, BatchOf(run_id_, "big-unary", 1, HistogramRecord("big-unary", 1, 1 << 20)),
        &response);
    // Parked behind the stream's batches, or refused while another waits:
    // either way it is a transient answer and a retry gets through.
    if (!status.ok()) {
      ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << status.error_message();
      stream.join();
      grpc::ClientContext retry;
      ASSERT_TRUE(stub_
                      ->WriteBatch(&retry,
                                   BatchOf(run_id_, "big-unary", 1,
                                           HistogramRecord("big-unary", 1, 1 << 20)),
                                   &response)
                      .ok());
    }
  }
  if (stream.joinable()) stream.join();
  EXPECT_EQ(RecordsWritten(), 4);
  const auto steps = StepsByTag();
  EXPECT_EQ(steps.at("big-stream"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(steps.at("big-unary"), (std::vector<int64_t>{1}));
  EXPECT_TRUE(daemon_->Stop().ok());
}

}  // namespace
}  // namespace tblog::daemon
