// End to end through the real tblogd process (tests/support/daemon_process.h)
// and raw gRPC: the sequence contract of tblog.proto (WriteRequest.sequence),
// a quiet writer's batch becoming durable within --fsync-interval, and a
// write past RLIMIT_FSIZE (set on the daemon process with prlimit) answered
// as an error, with no partial record in any file, and recovered once the
// limit is lifted.
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "daemon_test_util.h"
#include "engine/io/record_reader.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "daemon/request_builders.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;
using tblog::testing::DaemonProcess;
using testing::ReadSummaryEvents;
using testing::TagSteps;
using Stream = grpc::ClientReaderWriter<v1::WriteRequest, v1::WriteResponse>;

v1::WriteRequest Batch(const std::string& run_id, const std::string& writer, uint64_t sequence,
                       const std::string& tag = "x", size_t padding = 0) {
  return tblog::testing::ScalarBatch(run_id, writer, sequence, tag,
                                     static_cast<float>(sequence), padding);
}

// Every event file under `dir` reads to its end in whole records.
void ExpectWholeRecordsOnly(const fs::path& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file() || !IsEventFileName(entry.path().filename().string())) continue;
    auto reader = RecordReader::Open(entry.path().string());
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::string payload;
    RecordReader::State state;
    while ((state = (*reader)->Next(&payload)) == RecordReader::State::kRecord) {
    }
    EXPECT_EQ(state, RecordReader::State::kEnd) << entry.path() << ": " << (*reader)->error();
  }
}

class SequenceDurabilityTest : public ::testing::Test {
 protected:
  // `logdir` "" = a temporary one.
  void Start(std::vector<std::string> extra_args = {}, std::string logdir = "") {
    DaemonProcess::Options options;
    options.extra_args = std::move(extra_args);
    options.logdir = std::move(logdir);
    options.log_path = ::testing::TempDir() + "sequence_durability_tblogd_" +
                       std::to_string(::getpid()) + ".log";
    auto daemon = DaemonProcess::Start(options);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = std::move(*daemon);
    stub_ = v1::TBLog::NewStub(
        grpc::CreateChannel(daemon_->target(), grpc::InsecureChannelCredentials()));
  }

  v1::OpenRunResponse Open(const std::string& run_path) {
    v1::OpenRunRequest request;
    request.set_run_path(run_path);
    v1::OpenRunResponse response;
    grpc::ClientContext context;
    const grpc::Status status = stub_->OpenRun(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  v1::RunInfo GetRun(const std::string& run_id) {
    v1::GetRunRequest request;
    request.set_run_id(run_id);
    v1::RunInfo info;
    grpc::ClientContext context;
    EXPECT_TRUE(stub_->GetRun(&context, request, &info).ok());
    return info;
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<v1::TBLog::Stub> stub_;
};

// Reads acks until one reports `written` through `sequence`; false if the
// stream ended first.
bool ReadUntilWritten(Stream& stream, uint64_t sequence, v1::WriteResponse* last = nullptr) {
  v1::WriteResponse response;
  while (stream.Read(&response)) {
    if (last != nullptr) *last = response;
    if (response.written_sequence() >= sequence) return true;
  }
  return false;
}

// Sequences 1, 3 on a stream: the stream ends with OUT_OF_RANGE naming the
// expected (2) and the received (3) sequence, batch 3 is not written, and
// another writer's stream on the same run goes on.
TEST_F(SequenceDurabilityTest, AGapEndsTheStreamWithOutOfRange) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const v1::OpenRunResponse run = Open("seq/gap");
  grpc::ClientContext other_context;
  std::unique_ptr<Stream> other = stub_->Write(&other_context);
  ASSERT_TRUE(other->Write(Batch(run.run_id(), "other", 1, "o")));
  ASSERT_TRUE(ReadUntilWritten(*other, 1));

  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->Write(&context);
  ASSERT_TRUE(stream->Write(Batch(run.run_id(), "w", 1)));
  ASSERT_TRUE(ReadUntilWritten(*stream, 1));
  stream->Write(Batch(run.run_id(), "w", 3));
  stream->Write(Batch(run.run_id(), "w", 2));  // too late: the stream has ended
  v1::WriteResponse response;
  while (stream->Read(&response)) {
  }
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << status.error_message();
  EXPECT_NE(status.error_message().find("expected batch sequence 2 after 1 on this stream, "
                                        "received 3"),
            std::string::npos)
      << status.error_message();

  ASSERT_TRUE(other->Write(Batch(run.run_id(), "other", 2, "o")));
  ASSERT_TRUE(ReadUntilWritten(*other, 2));
  other->WritesDone();
  EXPECT_TRUE(other->Finish().ok());
  ASSERT_TRUE(daemon_->Stop().ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(run.directory())),
            (std::vector<std::string>{"o@1", "x@1", "o@2"}));
}

// A writer that starts again from 1 after OpenRun reported its batches (a
// restarted trainer with a fixed writer_id, no rebase) is refused; before,
// its batches were dropped as duplicates in silence. A reconnecting writer
// that resends from what OpenRun reported + 1 is served, and a resend of
// batches still in the run is acknowledged as duplicates, listed in the ack.
TEST_F(SequenceDurabilityTest, ARestartedSequenceIsRefusedAndAResendIsADuplicate) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const v1::OpenRunResponse run = Open("seq/restart");
  {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = stub_->Write(&context);
    for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(stream->Write(Batch(run.run_id(), "w", seq)));
    ASSERT_TRUE(ReadUntilWritten(*stream, 3));
    stream->WritesDone();
    ASSERT_TRUE(stream->Finish().ok());
  }
  const v1::OpenRunResponse reopened = Open("seq/restart");
  ASSERT_EQ(reopened.writer_sequences().at("w"), 3u);
  {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = stub_->Write(&context);
    stream->Write(Batch(run.run_id(), "w", 1, "restarted"));
    v1::WriteResponse response;
    while (stream->Read(&response)) {
    }
    const grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << status.error_message();
    EXPECT_NE(status.error_message().find("expected a new stream to start at batch sequence 4 "
                                          "or later, received 1"),
              std::string::npos)
        << status.error_message();
  }
  {
    // The WriteBatch path follows the same rule.
    grpc::ClientContext context;
    v1::WriteResponse response;
    const grpc::Status status =
        stub_->WriteBatch(&context, Batch(run.run_id(), "w", 2, "restarted"), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << status.error_message();
  }
  {
    // Continuing after the report works; resending 4 on the next stream (its
    // ack was lost, say) is a duplicate, acknowledged and listed.
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = stub_->Write(&context);
    ASSERT_TRUE(stream->Write(Batch(run.run_id(), "w", 4)));
    ASSERT_TRUE(ReadUntilWritten(*stream, 4));
    stream->WritesDone();
    ASSERT_TRUE(stream->Finish().ok());
  }
  {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = stub_->Write(&context);
    ASSERT_TRUE(stream->Write(Batch(run.run_id(), "w", 4)));
    ASSERT_TRUE(stream->Write(Batch(run.run_id(), "w", 5)));
    std::vector<uint64_t> duplicates;
    v1::WriteResponse response;
    while (response.written_sequence() < 5 && stream->Read(&response)) {
      duplicates.insert(duplicates.end(), response.duplicate_sequences().begin(),
                        response.duplicate_sequences().end());
    }
    EXPECT_EQ(duplicates, (std::vector<uint64_t>{4}));
    stream->WritesDone();
    ASSERT_TRUE(stream->Finish().ok());
  }
  EXPECT_EQ(GetRun(run.run_id()).batches_duplicate(), 1u);
  ASSERT_TRUE(daemon_->Stop().ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(run.directory())),
            (std::vector<std::string>{"x@1", "x@2", "x@3", "x@4", "x@5"}));
}

// A reconnecting writer resends many batches the daemon already has: every
// one is listed once in duplicate_sequences, even when the stream coalesces
// acks that arrive while it is still sending an earlier one (before: the
// coalesced acks' duplicate lists were dropped).
TEST_F(SequenceDurabilityTest, EveryResentDuplicateIsListedWhenAcksCoalesce) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const v1::OpenRunResponse run = Open("durable/resent");
  constexpr uint64_t kBatches = 20000;
  {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = stub_->Write(&context);
    for (uint64_t sequence = 1; sequence <= kBatches; ++sequence) {
      ASSERT_TRUE(stream->Write(Batch(run.run_id(), "w", sequence)));
    }
    ASSERT_TRUE(ReadUntilWritten(*stream, kBatches));
    stream->WritesDone();
    ASSERT_TRUE(stream->Finish().ok());
  }
  // All of them again, then one new batch, without reading in between: the
  // daemon's acks fill the stream's flow-control window, so acks coalesce
  // behind the one it is still sending.
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->Write(&context);
  for (uint64_t sequence = 1; sequence <= kBatches + 1; ++sequence) {
    ASSERT_TRUE(stream->Write(Batch(run.run_id(), "w", sequence)));
  }
  stream->WritesDone();
  std::vector<uint64_t> duplicates;
  v1::WriteResponse response;
  int acks = 0;
  while (stream->Read(&response)) {
    ++acks;
    duplicates.insert(duplicates.end(), response.duplicate_sequences().begin(),
                      response.duplicate_sequences().end());
  }
  ASSERT_TRUE(stream->Finish().ok());
  std::sort(duplicates.begin(), duplicates.end());
  std::vector<uint64_t> expected(kBatches);
  for (uint64_t i = 0; i < kBatches; ++i) expected[i] = i + 1;
  EXPECT_EQ(duplicates, expected) << acks << " acks";
  EXPECT_EQ(GetRun(run.run_id()).batches_duplicate(), kBatches);
}

// One batch, then nothing: the writer gets a durable_sequence ack within
// about --fsync-interval, without sending more (before: 0 after 8 s).
TEST_F(SequenceDurabilityTest, AQuietWritersBatchIsDurableWithinTheFsyncInterval) {
  ASSERT_NO_FATAL_FAILURE(Start({"--fsync", "interval", "--fsync-interval", "2s"}));
  const v1::OpenRunResponse run = Open("durable/quiet");
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->Write(&context);
  const absl::Time sent = absl::Now();
  ASSERT_TRUE(stream->Write(Batch(run.run_id(), "w", 1)));
  v1::WriteResponse response;
  bool durable = false;
  while (!durable && stream->Read(&response)) durable = response.durable_sequence() >= 1;
  const absl::Duration took = absl::Now() - sent;
  ASSERT_TRUE(durable);
  std::printf("quiet writer: batch 1 durable after %.2f s (--fsync-interval 2s)\n",
              absl::ToDoubleSeconds(took));
  EXPECT_LT(took, absl::Seconds(20));  // generous: interval + flush tick + a slow machine
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

void SetFileSizeLimit(pid_t pid, rlim_t bytes) {
  rlimit limit{};
  ASSERT_EQ(::prlimit(pid, RLIMIT_FSIZE, nullptr, &limit), 0) << std::strerror(errno);
  limit.rlim_cur = bytes;
  ASSERT_EQ(::prlimit(pid, RLIMIT_FSIZE, &limit, nullptr), 0) << std::strerror(errno);
}

// The daemon's files reach RLIMIT_FSIZE (a real EFBIG, the write stopping in
// the middle of a record): the daemon stays up (SIGXFSZ ignored), the writer
// is told (UNAVAILABLE naming the error, RunInfo.last_error), no file holds a
// partial record, and once the limit is lifted the writer reconnects, resends
// and every batch is in the run exactly once.
TEST_F(SequenceDurabilityTest, AFileSizeLimitIsAnErrorToTheClientAndRecovered) {
  ASSERT_NO_FATAL_FAILURE(Start({"--flush-interval", "200ms"}));
  const v1::OpenRunResponse run = Open("fsize/run");
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->Write(&context);
  for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(stream->Write(Batch(run.run_id(), "w", seq)));
  ASSERT_TRUE(ReadUntilWritten(*stream, 3));
  {
    v1::FlushRequest flush;
    flush.set_run_id(run.run_id());
    v1::FlushResponse flushed;
    grpc::ClientContext flush_context;
    ASSERT_TRUE(stub_->Flush(&flush_context, flush, &flushed).ok());
  }
  uint64_t largest = 0;
  for (const auto& entry : fs::directory_iterator(run.directory())) {
    if (IsEventFileName(entry.path().filename().string())) {
      largest = std::max<uint64_t>(largest, entry.file_size());
    }
  }
  ASSERT_GT(largest, 0u);
  // Room for 10 more bytes: batch 4 (a 4 KiB text) stops in the middle of its
  // record, and a fresh file cannot hold it either.
  ASSERT_NO_FATAL_FAILURE(SetFileSizeLimit(daemon_->pid(), largest + 10));
  ASSERT_TRUE(stream->Write(Batch(run.run_id(), "w", 4, "text", 4096)));
  std::string last_error;
  for (int i = 0; i < 200 && last_error.empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    last_error = GetRun(run.run_id()).last_error();
  }
  EXPECT_NE(last_error.find("File too large"), std::string::npos) << last_error;
  // The next batch is refused: the stream ends with UNAVAILABLE. (Batch 4 is
  // acknowledged as written: it waits in the daemon's buffer, to be carried
  // to a file that takes it; it is not durable.)
  stream->Write(Batch(run.run_id(), "w", 5, "text", 4096));
  v1::WriteResponse response;
  while (stream->Read(&response)) EXPECT_LT(response.durable_sequence(), 4u);
  const grpc::Status refused = stream->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_NE(refused.error_message().find("File too large"), std::string::npos)
      << refused.error_message();
  ASSERT_EQ(::kill(daemon_->pid(), 0), 0);  // alive
  ExpectWholeRecordsOnly(run.directory());

  // Lifted: the flusher's retry writes batch 4; the client reconnects and
  // resends from what OpenRun reports.
  ASSERT_NO_FATAL_FAILURE(SetFileSizeLimit(daemon_->pid(), RLIM_INFINITY));
  for (int i = 0; i < 200 && !GetRun(run.run_id()).last_error().empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(GetRun(run.run_id()).last_error(), "");
  const v1::OpenRunResponse reopened = Open("fsize/run");
  const uint64_t have = reopened.writer_sequences().at("w");
  EXPECT_GE(have, 3u);
  grpc::ClientContext resume_context;
  std::unique_ptr<Stream> resumed = stub_->Write(&resume_context);
  for (uint64_t seq = have + 1; seq <= 5; ++seq) {
    ASSERT_TRUE(resumed->Write(Batch(run.run_id(), "w", seq, "text", 4096)));
  }
  ASSERT_TRUE(ReadUntilWritten(*resumed, 5));
  resumed->WritesDone();
  EXPECT_TRUE(resumed->Finish().ok());
  ASSERT_TRUE(daemon_->Stop().ok());
  ExpectWholeRecordsOnly(run.directory());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(run.directory())),
            (std::vector<std::string>{"x@1", "x@2", "x@3", "text@4", "text@5"}));
}

// A real full file system: the logdir on a small tmpfs (mounted here when the
// test may mount; skipped otherwise). The disk fills in the middle of a
// record: no event file holds a partial record, the writer is told
// (UNAVAILABLE, RunInfo.last_error), and once space is freed the writer
// reconnects, resends, and every batch is in the run once.
TEST_F(SequenceDurabilityTest, ARealFullFileSystemLeavesNoPartialRecordAndRecovers) {
  char pattern[] = "/tmp/tblog-full-fs-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string mount_point = pattern;
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=1m") != 0) {
    const int error = errno;
    ::rmdir(mount_point.c_str());
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(error) << ")";
  }
  struct Unmount {
    std::string path;
    ~Unmount() {
      ::umount2(path.c_str(), MNT_DETACH);
      ::rmdir(path.c_str());
    }
  } unmount{mount_point};
  const std::string filler = mount_point + "/filler";
  {
    std::ofstream out(filler, std::ios::binary);
    out << std::string(512 << 10, 'f');
  }
  ASSERT_NO_FATAL_FAILURE(Start({"--flush-interval", "200ms"}, mount_point + "/logs"));
  const v1::OpenRunResponse run = Open("full/run");
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->Write(&context);
  uint64_t sent = 0;
  std::string last_error;
  for (uint64_t seq = 1; seq <= 200 && last_error.empty(); ++seq) {
    if (!stream->Write(Batch(run.run_id(), "w", seq, "text", 16 << 10))) break;
    sent = seq;
    absl::SleepFor(absl::Milliseconds(20));
    last_error = GetRun(run.run_id()).last_error();
  }
  for (int i = 0; i < 100 && last_error.empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    last_error = GetRun(run.run_id()).last_error();
  }
  EXPECT_NE(last_error.find("No space left on device"), std::string::npos) << last_error;
  stream->Write(Batch(run.run_id(), "w", sent + 1, "text", 16 << 10));
  v1::WriteResponse response;
  while (stream->Read(&response)) {
  }
  const grpc::Status refused = stream->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  ExpectWholeRecordsOnly(run.directory());

  ASSERT_TRUE(fs::remove(filler));  // space returns
  for (int i = 0; i < 200 && !GetRun(run.run_id()).last_error().empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(GetRun(run.run_id()).last_error(), "");
  const uint64_t have = Open("full/run").writer_sequences().at("w");
  grpc::ClientContext resume_context;
  std::unique_ptr<Stream> resumed = stub_->Write(&resume_context);
  for (uint64_t seq = have + 1; seq <= sent; ++seq) {
    ASSERT_TRUE(resumed->Write(Batch(run.run_id(), "w", seq, "text", 16 << 10)));
  }
  if (have < sent) {
    ASSERT_TRUE(ReadUntilWritten(*resumed, sent));
  }
  resumed->WritesDone();
  EXPECT_TRUE(resumed->Finish().ok());
  ASSERT_TRUE(daemon_->Stop().ok());
  ExpectWholeRecordsOnly(run.directory());
  std::vector<std::string> expected;
  for (uint64_t seq = 1; seq <= sent; ++seq) expected.push_back("text@" + std::to_string(seq));
  EXPECT_EQ(TagSteps(ReadSummaryEvents(run.directory())), expected);
  std::printf("full file system: %llu batches of 16 KiB, refused at %llu; %llu written before "
              "the error, the rest resent\n",
              static_cast<unsigned long long>(sent), static_cast<unsigned long long>(sent + 1),
              static_cast<unsigned long long>(have));
}

}  // namespace
}  // namespace tblog::daemon
