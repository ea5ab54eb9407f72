// End to end in one process: a real Daemon on a temp logdir, real gRPC over
// TCP (port 0) and a unix socket, the generated stub, then the event files
// read back with the engine's reader.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "daemon/daemon.h"
#include "daemon_test_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;
using testing::FreshTempDir;
using testing::ReadSummaryEvents;
using testing::TagSteps;

v1::Record Scalar(const std::string& tag, int64_t step) {
  v1::Record record;
  record.set_tag(tag);
  record.set_step(step);
  record.set_wall_time(1700000000.0 + static_cast<double>(step));
  record.mutable_scalar()->set_value(static_cast<float>(step) / 10);
  return record;
}

v1::WriteRequest Batch(const std::string& run_id, uint64_t sequence,
                       const std::vector<std::string>& tags, int64_t step) {
  v1::WriteRequest request;
  request.set_run_id(run_id);
  request.set_writer_id("writer-1");
  request.set_sequence(sequence);
  for (const std::string& tag : tags) *request.add_records() = Scalar(tag, step);
  return request;
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    logdir_ = FreshTempDir("service_test");
    socket_ = (logdir_.parent_path() / ("tblogd_" + std::to_string(::getpid()) + ".sock")).string();
    StartDaemon();
  }
  void TearDown() override {
    if (daemon_) {
      EXPECT_TRUE(daemon_->Shutdown(absl::Seconds(10)).ok());
    }
  }

  void StartDaemon() {
    DaemonOptions options;
    options.logdir = logdir_.string();
    options.listen = "127.0.0.1:0";
    options.unix_socket = socket_;
    options.workers = 2;
    options.flush_interval = absl::Milliseconds(200);
    auto daemon = Daemon::Start(options);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = std::move(*daemon);
    const auto addresses = daemon_->listening_addresses();
    ASSERT_EQ(addresses.size(), 2u);
    EXPECT_NE(addresses[0], "127.0.0.1:0");
    EXPECT_EQ(addresses[1], "unix:" + socket_);
    tcp_ = v1::TBLog::NewStub(grpc::CreateChannel(addresses[0], grpc::InsecureChannelCredentials()));
    unix_ = v1::TBLog::NewStub(grpc::CreateChannel(addresses[1], grpc::InsecureChannelCredentials()));
  }

  // True once the metrics hold `line` (the service registers a stream on
  // gRPC's thread, shortly after the client's first write); false after 5 s.
  bool MetricsShow(const std::string& line) const {
    for (int i = 0; i < 500; ++i) {
      if (daemon_->RenderMetrics().find(line) != std::string::npos) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  // WriteBatch over the unix socket of batches first..last of `run_id`, each
  // one scalar "x" at step = its sequence number; each must be accepted.
  void WriteUnixBatches(const std::string& run_id, uint64_t first, uint64_t last) {
    for (uint64_t seq = first; seq <= last; ++seq) {
      grpc::ClientContext context;
      v1::WriteResponse response;
      ASSERT_TRUE(
          unix_->WriteBatch(&context, Batch(run_id, seq, {"x"}, static_cast<int64_t>(seq)), &response)
              .ok())
          << "batch " << seq;
    }
  }

  fs::path logdir_;
  std::string socket_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<v1::TBLog::Stub> tcp_;
  std::unique_ptr<v1::TBLog::Stub> unix_;
};

TEST_F(ServiceTest, WriteFlushCloseAndReadBack) {
  // OpenRun: the timestamped layout.
  v1::OpenRunRequest open;
  open.set_experiment("mnist");
  open.set_name("baseline");
  (*open.mutable_labels())["host"] = "test";
  v1::OpenRunResponse opened;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(tcp_->OpenRun(&context, open, &opened).ok());
  }
  const std::string run_id = opened.run_id();
  EXPECT_EQ(run_id.rfind("mnist/", 0), 0u) << run_id;
  EXPECT_NE(run_id.find("-baseline"), std::string::npos) << run_id;
  EXPECT_TRUE(fs::is_directory(opened.directory()));
  EXPECT_FALSE(opened.resumed());

  // A Write stream: three batches; then batch 2 resent on a new stream (a
  // reconnecting client), acknowledged as a duplicate.
  {
    grpc::ClientContext context;
    auto stream = tcp_->Write(&context);
    ASSERT_TRUE(stream->Write(Batch(run_id, 1, {"loss", "acc"}, 1)));
    v1::WriteRequest second = Batch("", 2, {"loss", "acc"}, 2);  // run_id may be left out
    second.clear_writer_id();
    ASSERT_TRUE(stream->Write(second));
    ASSERT_TRUE(stream->Write(Batch(run_id, 3, {"loss", "acc"}, 3)));
    // The gauges are read from the registry and the service: one run, one stream.
    EXPECT_TRUE(MetricsShow("tblogd_active_streams 1\n")) << daemon_->RenderMetrics();
    EXPECT_TRUE(MetricsShow("tblogd_active_runs 1\n")) << daemon_->RenderMetrics();
    ASSERT_TRUE(stream->WritesDone());
    v1::WriteResponse response;
    uint64_t written = 0;
    int errors = 0;
    while (stream->Read(&response)) {
      EXPECT_GE(response.written_sequence(), written);
      written = response.written_sequence();
      errors += response.errors_size();
    }
    const grpc::Status status = stream->Finish();
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(written, 3u);
    EXPECT_EQ(errors, 0);
  }
  {
    grpc::ClientContext context;
    auto stream = tcp_->Write(&context);
    ASSERT_TRUE(stream->Write(Batch(run_id, 2, {"loss", "acc"}, 2)));
    ASSERT_TRUE(stream->WritesDone());
    v1::WriteResponse response;
    std::vector<uint64_t> duplicates;
    while (stream->Read(&response)) {
      duplicates.insert(duplicates.end(), response.duplicate_sequences().begin(),
                        response.duplicate_sequences().end());
    }
    ASSERT_TRUE(stream->Finish().ok());
    EXPECT_EQ(duplicates, (std::vector<uint64_t>{2}));
  }

  // WriteBatch with a bad tag in the middle: INVALID_ARGUMENT naming it, the
  // others written.
  {
    grpc::ClientContext context;
    v1::WriteResponse response;
    const grpc::Status status =
        tcp_->WriteBatch(&context, Batch(run_id, 4, {"loss", "bad\x01tag", "acc"}, 4), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("record 1"), std::string::npos) << status.error_message();
    EXPECT_NE(status.error_message().find("bad"), std::string::npos) << status.error_message();
    // The whole WriteResponse rides in the trailers (no message with an error).
    const auto& trailers = context.GetServerTrailingMetadata();
    auto it = trailers.find(kWriteResponseTrailer);
    ASSERT_NE(it, trailers.end());
    ASSERT_TRUE(response.ParseFromArray(it->second.data(), static_cast<int>(it->second.size())));
    ASSERT_EQ(response.errors_size(), 1);
    EXPECT_EQ(response.errors(0).index(), 1u);
    EXPECT_EQ(response.written_sequence(), 4u);
  }

  // Flush barrier through the writer's batch 4, synced.
  {
    grpc::ClientContext context;
    v1::FlushRequest flush;
    flush.set_run_id(run_id);
    flush.set_writer_id("writer-1");
    flush.set_through_sequence(4);
    flush.set_sync(true);
    v1::FlushResponse response;
    const grpc::Status status = tcp_->Flush(&context, flush, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  // Visible before the run is closed.
  const std::vector<std::string> expected = {"loss@1", "acc@1", "loss@2", "acc@2", "loss@3",
                                             "acc@3",  "loss@4", "acc@4"};
  EXPECT_EQ(TagSteps(ReadSummaryEvents(opened.directory())), expected);

  // A flush waiting for a batch that never comes ends at its deadline.
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
    v1::FlushRequest flush;
    flush.set_run_id(run_id);
    flush.set_writer_id("writer-1");
    flush.set_through_sequence(99);
    v1::FlushResponse response;
    EXPECT_EQ(tcp_->Flush(&context, flush, &response).error_code(),
              grpc::StatusCode::DEADLINE_EXCEEDED);
  }

  {
    grpc::ClientContext context;
    v1::GetRunRequest get;
    get.set_run_id(run_id);
    v1::RunInfo info;
    ASSERT_TRUE(tcp_->GetRun(&context, get, &info).ok());
    EXPECT_EQ(info.records_written(), 8u);
    EXPECT_EQ(info.records_rejected(), 1u);
    EXPECT_EQ(info.batches_duplicate(), 1u);
    EXPECT_EQ(info.writers(), 1u);
    EXPECT_TRUE(info.open());
    EXPECT_EQ(info.labels().at("host"), "test");
  }

  // CloseRun, then writes are refused.
  {
    grpc::ClientContext context;
    v1::CloseRunRequest close;
    close.set_run_id(run_id);
    v1::CloseRunResponse response;
    ASSERT_TRUE(tcp_->CloseRun(&context, close, &response).ok());
    EXPECT_FALSE(response.run().open());
    EXPECT_GT(response.run().bytes_written(), 0u);
  }
  {
    grpc::ClientContext context;
    v1::WriteResponse response;
    EXPECT_EQ(tcp_->WriteBatch(&context, Batch(run_id, 5, {"loss"}, 5), &response).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  {
    grpc::ClientContext context;
    v1::ListRunsResponse list;
    ASSERT_TRUE(unix_->ListRuns(&context, v1::ListRunsRequest(), &list).ok());
    ASSERT_EQ(list.runs_size(), 1);
    EXPECT_EQ(list.runs(0).run_id(), run_id);
    EXPECT_FALSE(list.runs(0).open());
  }
  EXPECT_EQ(TagSteps(ReadSummaryEvents(opened.directory())), expected);
}

TEST_F(ServiceTest, UnixSocketRunPathResumeAfterRestart) {
  v1::OpenRunRequest open;
  open.set_run_path("runs/a");
  open.set_mode(v1::OPEN_MODE_CREATE);
  v1::OpenRunResponse opened;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(unix_->OpenRun(&context, open, &opened).ok());
  }
  EXPECT_EQ(opened.run_id(), "runs/a");
  {
    grpc::ClientContext context;
    v1::OpenRunResponse again;
    EXPECT_EQ(unix_->OpenRun(&context, open, &again).error_code(),
              grpc::StatusCode::ALREADY_EXISTS);
  }
  ASSERT_NO_FATAL_FAILURE(WriteUnixBatches("runs/a", 1, 3));
  // Stop the daemon (drains and checkpoints), start a new one on the logdir.
  ASSERT_TRUE(daemon_->Shutdown(absl::Seconds(10)).ok());
  daemon_.reset();
  StartDaemon();
  open.set_mode(v1::OPEN_MODE_RESUME);
  {
    grpc::ClientContext context;
    ASSERT_TRUE(unix_->OpenRun(&context, open, &opened).ok());
  }
  EXPECT_TRUE(opened.resumed());
  ASSERT_EQ(opened.writer_sequences().count("writer-1"), 1u);
  EXPECT_EQ(opened.writer_sequences().at("writer-1"), 3u);
  // The client resends from what OpenRun reported + 1; starting at or below
  // it is refused (tblog.proto, WriteRequest.sequence).
  {
    grpc::ClientContext context;
    v1::WriteResponse response;
    EXPECT_EQ(unix_->WriteBatch(&context, Batch("runs/a", 3, {"x"}, 3), &response).error_code(),
              grpc::StatusCode::OUT_OF_RANGE);
  }
  ASSERT_NO_FATAL_FAILURE(WriteUnixBatches("runs/a", 4, 4));
  {
    grpc::ClientContext context;
    v1::CloseRunRequest close;
    close.set_run_id("runs/a");
    v1::CloseRunResponse response;
    ASSERT_TRUE(unix_->CloseRun(&context, close, &response).ok());
  }
  EXPECT_EQ(TagSteps(ReadSummaryEvents(opened.directory())),
            (std::vector<std::string>{"x@1", "x@2", "x@3", "x@4"}));
  // Names that would leave the logdir are refused.
  {
    grpc::ClientContext context;
    v1::OpenRunRequest bad;
    bad.set_run_path("../escape");
    v1::OpenRunResponse response;
    EXPECT_EQ(unix_->OpenRun(&context, bad, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_FALSE(fs::exists(logdir_.parent_path() / "escape"));
}

// An address is one daemon's: a second tblogd on the same TCP port or unix
// socket refuses to start, naming it, and the first keeps serving on both
// (its socket file stays). A stale socket file, that nothing listens on, is
// replaced.
TEST_F(ServiceTest, AnAddressInUseIsRefusedAndAStaleSocketReplaced) {
  DaemonOptions options;
  options.logdir = (logdir_ / "second").string();
  options.listen = daemon_->listening_addresses()[0];
  auto second = Daemon::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find(options.listen + ": the port is in use"),
            std::string::npos)
      << second.status();

  options.listen = "";
  options.unix_socket = socket_;
  second = Daemon::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("unix socket " + socket_ + " is in use"),
            std::string::npos)
      << second.status();
  EXPECT_TRUE(fs::exists(socket_));

  for (v1::TBLog::Stub* stub : {tcp_.get(), unix_.get()}) {
    grpc::ClientContext context;
    v1::ListRunsResponse runs;
    EXPECT_TRUE(stub->ListRuns(&context, v1::ListRunsRequest(), &runs).ok());
  }

  // A socket file left behind: bound, never listened on, its process gone.
  const std::string stale = (logdir_.parent_path() / ("stale_" + std::to_string(::getpid()) +
                                                      ".sock")).string();
  {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    ASSERT_LT(stale.size(), sizeof(address.sun_path));
    std::memcpy(address.sun_path, stale.c_str(), stale.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
    ::close(fd);
  }
  ASSERT_TRUE(fs::is_socket(stale));
  options.unix_socket = stale;
  auto replaced = Daemon::Start(options);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  auto stub = v1::TBLog::NewStub(
      grpc::CreateChannel("unix:" + stale, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::ListRunsResponse runs;
  EXPECT_TRUE(stub->ListRuns(&context, v1::ListRunsRequest(), &runs).ok());
  EXPECT_TRUE((*replaced)->Shutdown(absl::Seconds(10)).ok());
}

TEST_F(ServiceTest, StreamToUnknownRunIsNotFound) {
  grpc::ClientContext context;
  auto stream = tcp_->Write(&context);
  stream->Write(Batch("no/such/run", 1, {"x"}, 1));
  stream->WritesDone();
  v1::WriteResponse response;
  while (stream->Read(&response)) {
  }
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("no/such/run"), std::string::npos);
}

TEST_F(ServiceTest, ShutdownRefusesNewCalls) {
  ASSERT_TRUE(daemon_->Shutdown(absl::Seconds(5)).ok());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::OpenRunResponse response;
  EXPECT_FALSE(tcp_->OpenRun(&context, v1::OpenRunRequest(), &response).ok());
  const std::string metrics = daemon_->RenderMetrics();
  EXPECT_NE(metrics.find("tblogd_active_runs 0"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tblogd_active_streams 0"), std::string::npos) << metrics;
}

}  // namespace
}  // namespace tblog::daemon
