// Run ownership with tokens, through the caller-identity seam (run_owner.h):
// a real Daemon in this process, real gRPC over its unix socket, and an
// identity function that reads the test's "x-test-identity" header where
// the token authentication will name the token's identity. Plus the
// WriterBindings unit.
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/daemon.h"
#include "daemon/writer_binding.h"
#include "daemon_test_util.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/server_context.h"
#include "gtest/gtest.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::FreshTempDir;
using testing::ReadSummaryEvents;
using testing::TagSteps;

constexpr char kIdentityHeader[] = "x-test-identity";

TEST(WriterBindingsTest, OneLiveHolderPerWriterAndIdentityForGood) {
  WriterBindings bindings;
  const auto a = WriterBindings::NewHolder();
  const auto b = WriterBindings::NewHolder();
  ASSERT_TRUE(bindings.Bind("r", "w", a, "alice").ok());
  EXPECT_TRUE(bindings.Bind("r", "w", a, "alice").ok());  // the holder again
  const absl::Status busy = bindings.Bind("r", "w", b, "alice");
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(busy.message()), HasSubstr("writer_id \"w\" of run \"r\""));
  EXPECT_EQ(bindings.Bind("r", "w", b, "mallory").code(), absl::StatusCode::kPermissionDenied);
  bindings.Release("w", b);  // not the holder: no effect
  EXPECT_EQ(bindings.HeldCount(), 1);
  bindings.Release("w", a);
  EXPECT_EQ(bindings.HeldCount(), 0);
  // Free again: the same identity takes it over, another never does.
  const absl::Status foreign = bindings.Bind("r", "w", b, "mallory");
  EXPECT_EQ(foreign.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(foreign.message()), Not(HasSubstr("alice")));
  EXPECT_TRUE(bindings.Bind("r", "w", b, "alice").ok());
}

TEST(WriterClaimTest, ReleasesWhenDestroyedAndMovesOwnership) {
  auto bindings = std::make_shared<WriterBindings>();
  {
    auto claim = WriterClaim::Acquire(bindings, "r", "w", "");
    ASSERT_TRUE(claim.ok());
    EXPECT_FALSE(WriterClaim::Acquire(bindings, "r", "w", "").ok());
    WriterClaim moved = *std::move(claim);
    EXPECT_EQ(bindings->HeldCount(), 1);
  }
  EXPECT_EQ(bindings->HeldCount(), 0);
  EXPECT_TRUE(WriterClaim::Acquire(bindings, "r", "w", "").ok());
}

class RunOwnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    logdir_ = FreshTempDir("run_owner_test");
    StartDaemon();
  }
  // A daemon on logdir_ (again, after a Restart()).
  void StartDaemon() {
    DaemonOptions options;
    options.logdir = logdir_.string();
    options.listen = "";
    options.unix_socket = (logdir_.parent_path() / ("owner_" + std::to_string(::getpid()) + ".sock"))
                              .string();
    options.workers = 2;
    options.flush_interval = absl::Milliseconds(100);
    options.caller_identity = [](const grpc::ServerContextBase& context) {
      const auto& metadata = context.client_metadata();
      auto it = metadata.find(kIdentityHeader);
      return it == metadata.end() ? std::string() : std::string(it->second.data(), it->second.size());
    };
    auto daemon = Daemon::Start(options);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = std::move(*daemon);
    stub_ = v1::TBLog::NewStub(grpc::CreateChannel(daemon_->listening_addresses()[0],
                                                   grpc::InsecureChannelCredentials()));
  }
  // Stops the daemon and starts another on the same log directory.
  void Restart() {
    ASSERT_TRUE(daemon_->Shutdown(absl::Seconds(10)).ok());
    daemon_.reset();
    ASSERT_NO_FATAL_FAILURE(StartDaemon());
  }
  void TearDown() override {
    if (daemon_) {
      EXPECT_TRUE(daemon_->Shutdown(absl::Seconds(10)).ok());
    }
  }

  // A call's context as `identity`.
  static std::unique_ptr<grpc::ClientContext> As(const std::string& identity) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->AddMetadata(kIdentityHeader, identity);
    return context;
  }
  grpc::Status Open(const std::string& identity, const std::string& run_path,
                    const std::string& label = "") {
    v1::OpenRunRequest request;
    request.set_run_path(run_path);
    if (!label.empty()) (*request.mutable_labels())["job"] = label;
    v1::OpenRunResponse response;
    return stub_->OpenRun(As(identity).get(), request, &response);
  }
  grpc::Status WriteBatch(const std::string& identity, const std::string& run_id,
                          const std::string& writer, uint64_t sequence) {
    v1::WriteRequest request;
    request.set_run_id(run_id);
    request.set_writer_id(writer);
    request.set_sequence(sequence);
    v1::Record* record = request.add_records();
    record->set_tag("x");
    record->set_step(static_cast<int64_t>(sequence));
    record->set_wall_time(1700000000.0);
    record->mutable_scalar()->set_value(1.0f);
    v1::WriteResponse response;
    return stub_->WriteBatch(As(identity).get(), request, &response);
  }

  fs::path logdir_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<v1::TBLog::Stub> stub_;
};

TEST_F(RunOwnerTest, OnlyTheIdentityThatOpenedARunUsesIt) {
  ASSERT_TRUE(Open("alice", "runs/alice", "secret-job").ok());
  ASSERT_TRUE(WriteBatch("alice", "runs/alice", "w", 1).ok());
  ASSERT_TRUE(Open("mallory", "runs/mallory").ok());

  // Opening (joining or resuming) it: refused, naming the run, not alice.
  const grpc::Status open = Open("mallory", "runs/alice");
  EXPECT_EQ(open.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(open.error_message(), HasSubstr("run \"runs/alice\""));
  EXPECT_THAT(open.error_message(), HasSubstr("another identity"));
  // Writing: unary and on a stream, with alice's writer id or another.
  EXPECT_EQ(WriteBatch("mallory", "runs/alice", "w", 100).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(WriteBatch("mallory", "runs/alice", "m", 1).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  {
    auto context = As("mallory");
    auto stream = stub_->Write(context.get());
    v1::WriteRequest request;
    request.set_run_id("runs/alice");
    request.set_writer_id("w");
    request.set_sequence(2);
    stream->Write(request);
    stream->WritesDone();
    v1::WriteResponse response;
    while (stream->Read(&response)) {
    }
    const grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(status.error_message(), HasSubstr("write to"));
  }
  // Flushing, reading and closing it.
  {
    v1::FlushRequest request;
    request.set_run_id("runs/alice");
    v1::FlushResponse response;
    EXPECT_EQ(stub_->Flush(As("mallory").get(), request, &response).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    v1::GetRunRequest request;
    request.set_run_id("runs/alice");
    v1::RunInfo response;
    EXPECT_EQ(stub_->GetRun(As("mallory").get(), request, &response).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_TRUE(stub_->GetRun(As("alice").get(), request, &response).ok());
  }
  v1::CloseRunRequest close;
  close.set_run_id("runs/alice");
  v1::CloseRunResponse closed;
  const grpc::Status close_status = stub_->CloseRun(As("mallory").get(), close, &closed);
  EXPECT_EQ(close_status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(close_status.error_message(), HasSubstr("close"));

  // Listing: each identity sees its own runs only, labels included.
  {
    v1::ListRunsResponse listed;
    ASSERT_TRUE(stub_->ListRuns(As("mallory").get(), v1::ListRunsRequest(), &listed).ok());
    ASSERT_EQ(listed.runs_size(), 1);
    EXPECT_EQ(listed.runs(0).run_id(), "runs/mallory");
    EXPECT_THAT(listed.DebugString(), Not(HasSubstr("secret-job")));
  }
  {
    v1::ListRunsResponse listed;
    ASSERT_TRUE(stub_->ListRuns(As("alice").get(), v1::ListRunsRequest(), &listed).ok());
    ASSERT_EQ(listed.runs_size(), 1);
    EXPECT_EQ(listed.runs(0).labels().at("job"), "secret-job");
  }

  // Alice's run is untouched: her next batch is written, she closes it.
  ASSERT_TRUE(WriteBatch("alice", "runs/alice", "w", 2).ok());
  ASSERT_TRUE(stub_->CloseRun(As("alice").get(), close, &closed).ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(logdir_ / "runs/alice")),
            (std::vector<std::string>{"x@1", "x@2"}));
  // A closed run keeps its owner: mallory cannot resume it either.
  EXPECT_EQ(Open("mallory", "runs/alice").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Open("alice", "runs/alice").ok());
}

TEST_F(RunOwnerTest, WithoutIdentityEveryCallerIsTheSameOwner) {
  // The anonymous caller ("" = no tokens) is an identity like another: its
  // runs are not alice's, and alice's are not its.
  ASSERT_TRUE(Open("", "runs/anonymous").ok());
  ASSERT_TRUE(WriteBatch("", "runs/anonymous", "w", 1).ok());
  EXPECT_EQ(WriteBatch("alice", "runs/anonymous", "w2", 1).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::FlushRequest all;  // every open run of the caller: not the anonymous one's
  v1::FlushResponse flushed;
  EXPECT_TRUE(stub_->Flush(As("alice").get(), all, &flushed).ok());
}

// The owner is recorded in the run's .tblogd directory: after a restart the
// first to open the run is refused unless it is the owner (before: whoever
// came first took the run over). The record never shows the identity.
TEST_F(RunOwnerTest, OwnershipOutlivesARestart) {
  ASSERT_TRUE(Open("alice", "runs/kept").ok());
  ASSERT_TRUE(WriteBatch("alice", "runs/kept", "w", 1).ok());
  ASSERT_TRUE(Open("", "runs/anonymous").ok());  // no tokens: nothing recorded
  ASSERT_NO_FATAL_FAILURE(Restart());

  const grpc::Status taken = Open("mallory", "runs/kept");
  EXPECT_EQ(taken.error_code(), grpc::StatusCode::PERMISSION_DENIED) << taken.error_message();
  EXPECT_THAT(taken.error_message(), HasSubstr("another identity"));
  EXPECT_THAT(taken.error_message(), Not(HasSubstr("alice")));
  EXPECT_EQ(Open("", "runs/kept").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  bool recorded = false;
  for (const auto& entry : fs::directory_iterator(logdir_ / "runs/kept/.tblogd")) {
    if (entry.path().extension() != ".owner") continue;
    recorded = true;
    std::ifstream in(entry.path());
    std::ostringstream read;
    read << in.rdbuf();
    const std::string record = read.str();
    EXPECT_THAT(record, HasSubstr("sha256:"));
    EXPECT_THAT(record, Not(HasSubstr("alice")));
  }
  EXPECT_TRUE(recorded);
  EXPECT_EQ(WriteBatch("mallory", "runs/kept", "w", 2).error_code(),
            grpc::StatusCode::NOT_FOUND);  // mallory's OpenRun did not open it

  // Alice resumes her run and writes on; mallory is still refused.
  ASSERT_TRUE(Open("alice", "runs/kept").ok());
  ASSERT_TRUE(WriteBatch("alice", "runs/kept", "w", 2).ok());
  EXPECT_EQ(Open("mallory", "runs/kept").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // A run the anonymous caller opened had no owner to record: the first
  // identity to open it now owns it, from then on across restarts too.
  ASSERT_TRUE(Open("bob", "runs/anonymous").ok());
  ASSERT_NO_FATAL_FAILURE(Restart());
  EXPECT_EQ(Open("carol", "runs/anonymous").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Open("bob", "runs/anonymous").ok());
  EXPECT_TRUE(Open("alice", "runs/kept").ok());
  ASSERT_NO_FATAL_FAILURE(Restart());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(logdir_ / "runs/kept")),
            (std::vector<std::string>{"x@1", "x@2"}));
}

}  // namespace
}  // namespace tblog::daemon
