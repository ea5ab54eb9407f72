// The attacks of issue 10 on a real tblogd (a child process, raw gRPC stubs
// where the clients would refuse themselves): a foreign writer id on a second
// stream, names the daemon keeps for itself, a run inside (or around) a run,
// and requests that do not parse. Each is refused with a precise status, and
// the owner's data is read back intact. Ownership with tokens is in
// run_owner_test.cc (through the caller-identity seam).
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "daemon_test_util.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/impl/codegen/client_unary_call.h"
#include "grpcpp/impl/codegen/sync_stream.h"
#include "grpcpp/security/credentials.h"
#include "daemon/request_builders.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ReadSummaryEvents;
using testing::TagSteps;
using tblog::testing::DaemonProcess;

v1::WriteRequest Batch(const std::string& run_id, const std::string& writer, uint64_t sequence,
                       const std::string& tag = "x") {
  return tblog::testing::ScalarBatch(run_id, writer, sequence, tag);
}

class OwnershipTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    DaemonProcess::Options options;
    if (daemon_) {  // a restart: the same logdir and socket
      options.logdir = logdir_;
      options.socket_path = socket_;
    }
    options.extra_args = {"--flush-interval", "100ms"};
    auto daemon = DaemonProcess::Start(options);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    if (!daemon_) {
      logdir_ = (*daemon)->logdir();
      socket_ = (*daemon)->socket_path();
      first_ = std::move(*daemon);
    } else {
      restarted_ = std::move(*daemon);
    }
    daemon_ = restarted_ ? restarted_.get() : first_.get();
  }
  void Restart() {
    ASSERT_TRUE(daemon_->Stop().ok());
    ASSERT_NO_FATAL_FAILURE(Start());
  }

  // A new connection: another process, as far as the daemon can tell.
  std::unique_ptr<v1::TBLog::Stub> Connect() {
    return v1::TBLog::NewStub(
        grpc::CreateChannel(daemon_->target(), grpc::InsecureChannelCredentials()));
  }

  static grpc::Status Open(v1::TBLog::Stub& stub, const v1::OpenRunRequest& request,
                           v1::OpenRunResponse* response = nullptr) {
    v1::OpenRunResponse ignored;
    grpc::ClientContext context;
    return stub.OpenRun(&context, request, response != nullptr ? response : &ignored);
  }
  static grpc::Status Open(v1::TBLog::Stub& stub, const std::string& run_path,
                           v1::OpenRunResponse* response = nullptr,
                           v1::OpenMode mode = v1::OPEN_MODE_DEFAULT) {
    v1::OpenRunRequest request;
    request.set_run_path(run_path);
    request.set_mode(mode);
    return Open(stub, request, response);
  }
  static grpc::Status OpenTimestamped(v1::TBLog::Stub& stub, const std::string& experiment) {
    v1::OpenRunRequest request;
    request.set_experiment(experiment);
    return Open(stub, request);
  }
  grpc::Status WriteBatch(v1::TBLog::Stub& stub, const v1::WriteRequest& request,
                          v1::WriteResponse* response = nullptr) {
    v1::WriteResponse ignored;
    grpc::ClientContext context;
    return stub.WriteBatch(&context, request, response != nullptr ? response : &ignored);
  }
  grpc::Status Close(v1::TBLog::Stub& stub, const std::string& run_id) {
    v1::CloseRunRequest request;
    request.set_run_id(run_id);
    v1::CloseRunResponse response;
    grpc::ClientContext context;
    return stub.CloseRun(&context, request, &response);
  }
  std::vector<std::string> Steps(const std::string& run_path) {
    return TagSteps(ReadSummaryEvents(fs::path(logdir_) / run_path));
  }

  // One Write stream: writes `request` and waits for the ack of `sequence`.
  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::WriteRequest, v1::WriteResponse>> rw;
  };
  std::unique_ptr<Stream> OpenStream(v1::TBLog::Stub& stub) {
    auto stream = std::make_unique<Stream>();
    stream->rw = stub.Write(&stream->context);
    return stream;
  }
  // Sends a batch and waits for its written ack; false when the stream ended.
  static bool SendAndAck(Stream& stream, const v1::WriteRequest& request) {
    if (!stream.rw->Write(request)) return false;
    v1::WriteResponse response;
    while (stream.rw->Read(&response)) {
      if (response.written_sequence() >= request.sequence()) return true;
    }
    return false;
  }

  DaemonProcess* daemon_ = nullptr;
  std::unique_ptr<DaemonProcess> first_;      // owns the temp dir of logdir and socket
  std::unique_ptr<DaemonProcess> restarted_;  // the daemon after Restart()
  std::string logdir_;
  std::string socket_;
};

TEST_F(OwnershipTest, ForeignWriterIdIsRefusedWhileTheOwnersStreamLives) {
  auto owner = Connect();
  ASSERT_TRUE(Open(*owner, "runs/owned").ok());
  auto stream = OpenStream(*owner);
  ASSERT_TRUE(SendAndAck(*stream, Batch("runs/owned", "w", 1)));
  ASSERT_TRUE(SendAndAck(*stream, Batch("runs/owned", "w", 2)));

  // Another connection sends the owner's writer id with a high sequence: on
  // a stream, and with WriteBatch. Both refused, naming the writer.
  auto attacker = Connect();
  ASSERT_TRUE(Open(*attacker, "runs/owned").ok());  // no tokens: anyone may join the run
  {
    auto foreign = OpenStream(*attacker);
    foreign->rw->Write(Batch("runs/owned", "w", 1000));
    foreign->rw->WritesDone();
    v1::WriteResponse response;
    while (foreign->rw->Read(&response)) {
    }
    const grpc::Status status = foreign->rw->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(status.error_message(), HasSubstr("writer_id \"w\""));
    EXPECT_THAT(status.error_message(), HasSubstr("in use by another live stream"));
  }
  const grpc::Status unary = WriteBatch(*attacker, Batch("runs/owned", "w", 1001));
  EXPECT_EQ(unary.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << unary.error_message();

  // The owner goes on: batch 3 is written, not taken for a duplicate.
  ASSERT_TRUE(SendAndAck(*stream, Batch("runs/owned", "w", 3)));
  stream->rw->WritesDone();
  v1::WriteResponse response;
  while (stream->rw->Read(&response)) {
  }
  ASSERT_TRUE(stream->rw->Finish().ok());
  ASSERT_TRUE(Close(*owner, "runs/owned").ok());
  EXPECT_EQ(Steps("runs/owned"), (std::vector<std::string>{"x@1", "x@2", "x@3"}));
}

TEST_F(OwnershipTest, AReconnectTakesTheWriterIdOverOnceTheOldStreamIsGone) {
  auto first = Connect();
  ASSERT_TRUE(Open(*first, "runs/reconnect").ok());
  {
    auto stream = OpenStream(*first);
    ASSERT_TRUE(SendAndAck(*stream, Batch("runs/reconnect", "w", 1)));
    // The connection breaks under the client: the daemon sees a cancel.
    stream->context.TryCancel();
    v1::WriteResponse response;
    while (stream->rw->Read(&response)) {
    }
    EXPECT_FALSE(stream->rw->Finish().ok());
  }
  // The client reconnects on a new connection and resends from batch 2. The
  // daemon may see the old stream's end a moment after the new one starts:
  // the refusal is FAILED_PRECONDITION, which the clients retry.
  auto second = Connect();
  grpc::Status status;
  for (int attempt = 0; attempt < 100; ++attempt) {
    status = WriteBatch(*second, Batch("runs/reconnect", "w", 2));
    if (status.error_code() != grpc::StatusCode::FAILED_PRECONDITION) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(status.ok()) << status.error_message();
  // A stream that ended cleanly lets the next one in at once.
  {
    auto stream = OpenStream(*second);
    ASSERT_TRUE(SendAndAck(*stream, Batch("runs/reconnect", "w", 3)));
    stream->rw->WritesDone();
    v1::WriteResponse response;
    while (stream->rw->Read(&response)) {
    }
    ASSERT_TRUE(stream->rw->Finish().ok());
  }
  ASSERT_TRUE(WriteBatch(*Connect(), Batch("runs/reconnect", "w", 4)).ok());
  ASSERT_TRUE(Close(*second, "runs/reconnect").ok());
  EXPECT_EQ(Steps("runs/reconnect"), (std::vector<std::string>{"x@1", "x@2", "x@3", "x@4"}));
}

TEST_F(OwnershipTest, NamesTheDaemonKeepsAreRefusedAndTheRunSurvives) {
  auto owner = Connect();
  ASSERT_TRUE(Open(*owner, "runs/victim").ok());
  ASSERT_TRUE(WriteBatch(*owner, Batch("runs/victim", "w", 1)).ok());
  {  // fsync and checkpoint
    v1::FlushRequest flush;
    flush.set_run_id("runs/victim");
    flush.set_sync(true);
    v1::FlushResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(owner->Flush(&context, flush, &response).ok());
  }
  const fs::path checkpoint = fs::path(logdir_) / "runs/victim/.tblogd";
  ASSERT_TRUE(fs::is_directory(checkpoint));

  auto attacker = Connect();
  for (const std::string run_path :
       {"runs/victim/.tblogd/checkpoint", "runs/victim/.tblogd", "runs/.tblogd",
        ".tblogd/x", "runs/victim/.TBLogd/x", "runs/.tblogd-2", "a/projector_config.pbtxt"}) {
    const grpc::Status status = Open(*attacker, run_path);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << run_path;
    EXPECT_THAT(status.error_message(), HasSubstr("run_path")) << run_path;
    EXPECT_THAT(status.error_message(), HasSubstr("keeps for its own files")) << run_path;
  }
  EXPECT_EQ(OpenTimestamped(*attacker, "exp/.tblogd").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // In a record: a sub-run or a tag entering .tblogd is a RecordError, the
  // records around it are written.
  v1::WriteRequest batch = Batch("runs/victim", "w", 2);
  *batch.add_records() = batch.records(0);
  batch.mutable_records(1)->set_subrun(".tblogd");
  *batch.add_records() = batch.records(0);
  batch.mutable_records(2)->set_tag(".tblogd/checkpoint");
  *batch.add_records() = batch.records(0);
  batch.mutable_records(3)->set_tag("y");
  v1::WriteResponse response;
  const grpc::Status status = WriteBatch(*owner, batch, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("subrun"));
  ASSERT_TRUE(Close(*owner, "runs/victim").ok());
  EXPECT_EQ(Steps("runs/victim"), (std::vector<std::string>{"x@1", "x@2", "y@2"}));
  // The daemon's one checkpoint (<daemon id>.checkpoint) and nothing else.
  EXPECT_EQ(fs::directory_iterator(checkpoint)->path().extension(), ".checkpoint");
  EXPECT_EQ(std::distance(fs::directory_iterator(checkpoint), fs::directory_iterator()), 1);

  // The run resumes after a restart: its checkpoint is whole.
  ASSERT_NO_FATAL_FAILURE(Restart());
  auto later = Connect();
  v1::OpenRunResponse resumed;
  ASSERT_TRUE(Open(*later, "runs/victim", &resumed, v1::OPEN_MODE_RESUME).ok());
  EXPECT_TRUE(resumed.resumed());
  EXPECT_EQ(resumed.writer_sequences().at("w"), 2u);
}

TEST_F(OwnershipTest, ARunIsNeverOpenedInsideOrAroundAnotherRun) {
  auto client = Connect();
  ASSERT_TRUE(Open(*client, "outer").ok());
  ASSERT_TRUE(WriteBatch(*client, Batch("outer", "w", 1)).ok());
  ASSERT_TRUE(Open(*client, "x/inner").ok());
  ASSERT_TRUE(WriteBatch(*client, Batch("x/inner", "w", 1)).ok());

  auto expect_refused = [&](const grpc::Status& status, const std::string& names) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << names;
    EXPECT_THAT(status.error_message(), HasSubstr(names));
  };
  // Known to the registry.
  expect_refused(Open(*client, "outer/sub"), "\"outer\" is a run");
  expect_refused(Open(*client, "outer/a/b"), "\"outer\" is a run");
  expect_refused(OpenTimestamped(*client, "outer"), "\"outer\" is a run");
  expect_refused(Open(*client, "x"), "contains the run \"x/inner\"");
  // A sub-run of the run is the way in.
  v1::WriteRequest sub = Batch("outer", "w", 2);
  sub.mutable_records(0)->set_subrun("sub");
  ASSERT_TRUE(WriteBatch(*client, sub).ok());
  ASSERT_TRUE(Close(*client, "outer").ok());
  ASSERT_TRUE(Close(*client, "x/inner").ok());

  // A new daemon knows the runs from their directories only.
  ASSERT_NO_FATAL_FAILURE(Restart());
  auto later = Connect();
  expect_refused(Open(*later, "outer/sub"), "\"outer\" is a run");
  expect_refused(OpenTimestamped(*later, "outer/sub"), "\"outer\" is a run");
  expect_refused(Open(*later, "x"), "contains the run \"x/inner\"");
  // Neighbours and the runs themselves are fine.
  EXPECT_TRUE(Open(*later, "outer", nullptr, v1::OPEN_MODE_RESUME).ok());
  EXPECT_TRUE(Open(*later, "x/inner", nullptr, v1::OPEN_MODE_RESUME).ok());
  EXPECT_TRUE(Open(*later, "x/other").ok());
  EXPECT_TRUE(Open(*later, "outer2").ok());
  EXPECT_EQ(Steps("outer"), (std::vector<std::string>{"x@1"}));
  EXPECT_EQ(Steps("outer/sub"), (std::vector<std::string>{"x@2"}));
}

// Bytes that are no protobuf message: field 1, length 5, 2 bytes present.
const std::string kTruncated("\x0a\x05" "ab", 4);

grpc::ByteBuffer Bytes(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

TEST_F(OwnershipTest, UnparsableUnaryRequestIsInvalidArgument) {
  auto channel = grpc::CreateChannel(daemon_->target(), grpc::InsecureChannelCredentials());
  // gRPC's health service parses its request itself ("could not parse
  // request"); the daemon's methods are rewritten by the interceptor.
  for (const char* method : {"/tblog.v1.TBLog/OpenRun", "/tblog.v1.TBLog/WriteBatch",
                             "/tblog.v1.TBLog/Flush", "/tblog.v1.TBLog/CloseRun",
                             "/tblog.v1.TBLog/ListRuns", "/tblog.v1.TBLog/GetRun",
                             "/grpc.health.v1.Health/Check"}) {
    grpc::ClientContext context;
    grpc::ByteBuffer response;
    const grpc::Status status =
        grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
            channel.get(), grpc::internal::RpcMethod(method, grpc::internal::RpcMethod::NORMAL_RPC),
            &context, Bytes(kTruncated), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method;
    if (std::string(method).find("tblog.v1") != std::string::npos) {
      EXPECT_THAT(status.error_message(), HasSubstr(method));
      EXPECT_THAT(status.error_message(), HasSubstr("not a valid protobuf message"));
    }
  }
  // An unknown method is still UNIMPLEMENTED, and the daemon serves on.
  {
    grpc::ClientContext context;
    grpc::ByteBuffer response;
    const grpc::Status status =
        grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
            channel.get(),
            grpc::internal::RpcMethod("/tblog.v1.TBLog/NoSuch", grpc::internal::RpcMethod::NORMAL_RPC),
            &context, Bytes(kTruncated), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  EXPECT_TRUE(Open(*Connect(), "runs/after").ok());
}

TEST_F(OwnershipTest, UnparsableStreamMessageIsInvalidArgumentNotTheEndOfTheStream) {
  auto client = Connect();
  ASSERT_TRUE(Open(*client, "runs/stream").ok());
  auto channel = grpc::CreateChannel(daemon_->target(), grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(),
          grpc::internal::RpcMethod("/tblog.v1.TBLog/Write",
                                    grpc::internal::RpcMethod::BIDI_STREAMING),
          &context));
  ASSERT_TRUE(stream->Write(Bytes(Batch("runs/stream", "w", 1).SerializeAsString())));
  grpc::ByteBuffer raw;
  ASSERT_TRUE(stream->Read(&raw));  // the ack of batch 1
  stream->Write(Bytes(kTruncated));
  stream->WritesDone();
  while (stream->Read(&raw)) {
  }
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("message 2 of the Write stream"));
  EXPECT_THAT(status.error_message(), HasSubstr("tblog.v1.WriteRequest"));
  // The batch before it is written; the writer id is free again.
  ASSERT_TRUE(WriteBatch(*client, Batch("runs/stream", "w", 2)).ok());
  ASSERT_TRUE(Close(*client, "runs/stream").ok());
  EXPECT_EQ(Steps("runs/stream"), (std::vector<std::string>{"x@1", "x@2"}));
}

}  // namespace
}  // namespace tblog::daemon
