// The Write stream's tag dictionary (tblog.proto, WriteRequest.stream_tags)
// against a real tblogd (tests/support/daemon_process.h) over real gRPC: ids
// defined by one batch serve the later ones; a new stream starts empty (a
// reconnect defines again); an undefined id or a bad tag rejects its record
// naming it, the daemon and the stream up; a conflicting redefinition or an
// id past the cap ends the stream with INVALID_ARGUMENT naming the id;
// WriteBatch definitions hold for the call only. The events written are the
// very bytes of the batch-local form (both runs read back and compared).
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/daemon_test_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;
using ::tblog::testing::DaemonProcess;

struct Point {
  uint32_t id;  // the stream id (or the index into the batch's dictionary)
  int64_t step;
  float value;
};

// A batch of one columns record; with `stream`, tag_index holds stream ids.
v1::WriteRequest Columns(const std::string& run_id, uint64_t sequence, bool stream,
                         const std::vector<Point>& points) {
  v1::WriteRequest request;
  request.set_run_id(run_id);
  request.set_writer_id("w");
  request.set_sequence(sequence);
  v1::ScalarColumns* columns = request.add_records()->mutable_scalars();
  columns->set_stream_tag_ids(stream);
  for (const Point& point : points) {
    columns->add_tag_index(point.id);
    columns->add_steps(point.step);
    columns->add_values(point.value);
    columns->add_wall_times(1700000000.0 + static_cast<double>(point.step));
  }
  return request;
}

void Define(v1::WriteRequest& request, uint32_t first, const std::vector<std::string>& tags,
            const std::string& subrun = "") {
  request.set_stream_tags_first_id(first);
  for (const std::string& tag : tags) {
    v1::ColumnTag* definition = request.add_stream_tags();
    definition->set_tag(tag);
    definition->set_subrun(subrun);
  }
}

// What a stream ends with: its acks' errors and its status.
struct StreamEnd {
  std::vector<v1::RecordError> errors;
  uint64_t written = 0;
  grpc::Status status;
};

// The serialized events with a summary of a run directory's event files:
// the scalar events' very bytes (the files also hold batch markers, which
// carry receive times).
std::vector<std::string> EventBytes(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& event : testing::ReadSummaryEvents(dir)) out.push_back(event.SerializeAsString());
  return out;
}

class StreamTagsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DaemonProcess::Options options;
    options.extra_args = {"--log-level", "warn"};
    auto daemon = DaemonProcess::Start(options);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = *std::move(daemon);
    stub_ = v1::TBLog::NewStub(
        grpc::CreateChannel(daemon_->target(), grpc::InsecureChannelCredentials()));
  }

  // Opens run `path`; returns its id and sets dir.
  std::string Open(const std::string& path, fs::path* dir = nullptr) {
    v1::OpenRunRequest open;
    open.set_run_path(path);
    v1::OpenRunResponse opened;
    grpc::ClientContext context;
    const grpc::Status status = stub_->OpenRun(&context, open, &opened);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (dir != nullptr) *dir = opened.directory();
    return opened.run_id();
  }

  // Sends `requests` on one Write stream, half-closes and reads to the end.
  StreamEnd Stream(const std::vector<v1::WriteRequest>& requests) {
    grpc::ClientContext context;
    auto stream = stub_->Write(&context);
    for (const v1::WriteRequest& request : requests) {
      if (!stream->Write(request)) break;
    }
    stream->WritesDone();
    StreamEnd end;
    v1::WriteResponse ack;
    while (stream->Read(&ack)) {
      end.written = std::max(end.written, ack.written_sequence());
      for (const v1::RecordError& error : ack.errors()) end.errors.push_back(error);
    }
    end.status = stream->Finish();
    return end;
  }

  void Close(const std::string& run_id) {
    v1::CloseRunRequest close;
    close.set_run_id(run_id);
    v1::CloseRunResponse closed;
    grpc::ClientContext context;
    const grpc::Status status = stub_->CloseRun(&context, close, &closed);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<v1::TBLog::Stub> stub_;
};

TEST_F(StreamTagsE2eTest, IdsServeLaterBatchesAndWriteTheBytesOfBatchLocalDictionaries) {
  fs::path stream_dir;
  fs::path local_dir;
  const std::string stream_run = Open("dict/stream", &stream_dir);
  const std::string local_run = Open("dict/local", &local_dir);
  // Batch 1 defines ids 0-1 (and uses them), batch 2 defines id 2 in a
  // sub-run and uses all three, batch 3 defines nothing. A message of
  // definitions only comes in between and is not acknowledged.
  std::vector<v1::WriteRequest> stream;
  stream.push_back(Columns(stream_run, 1, true, {{0, 1, 0.5f}, {1, 1, 0.25f}, {0, 2, 0.4f}}));
  Define(stream.back(), 0, {"loss", "acc"});
  stream.push_back(Columns(stream_run, 2, true, {{2, 3, 1.5f}, {1, 3, 0.75f}, {0, 3, 0.3f}}));
  Define(stream.back(), 2, {"loss"}, "eval");
  v1::WriteRequest definitions_only;
  Define(definitions_only, 3, {"lr"});
  stream.push_back(definitions_only);
  stream.push_back(Columns(stream_run, 3, true, {{3, 4, 0.01f}, {2, 4, 1.0f}, {1, 4, 0.8f}}));
  const StreamEnd end = Stream(stream);
  ASSERT_TRUE(end.status.ok()) << end.status.error_message();
  EXPECT_TRUE(end.errors.empty()) << end.errors[0].message();
  EXPECT_EQ(end.written, 3u);

  // The same points with batch-local dictionaries.
  const auto local = [&](uint64_t sequence, const std::vector<Point>& points,
                         const std::vector<std::pair<std::string, std::string>>& tags) {
    v1::WriteRequest request = Columns(local_run, sequence, false, points);
    for (const auto& [tag, subrun] : tags) {
      v1::ColumnTag* entry = request.mutable_records(0)->mutable_scalars()->add_tags();
      entry->set_tag(tag);
      entry->set_subrun(subrun);
    }
    return request;
  };
  const StreamEnd local_end = Stream(
      {local(1, {{0, 1, 0.5f}, {1, 1, 0.25f}, {0, 2, 0.4f}}, {{"loss", ""}, {"acc", ""}}),
       local(2, {{0, 3, 1.5f}, {1, 3, 0.75f}, {2, 3, 0.3f}},
             {{"loss", "eval"}, {"acc", ""}, {"loss", ""}}),
       local(3, {{0, 4, 0.01f}, {1, 4, 1.0f}, {2, 4, 0.8f}},
             {{"lr", ""}, {"loss", "eval"}, {"acc", ""}})});
  ASSERT_TRUE(local_end.status.ok()) << local_end.status.error_message();
  Close(stream_run);
  Close(local_run);

  EXPECT_EQ(EventBytes(stream_dir).size(), 7u);
  EXPECT_EQ(EventBytes(stream_dir), EventBytes(local_dir));
  EXPECT_EQ(EventBytes(stream_dir / "eval"), EventBytes(local_dir / "eval"));
  const auto tag_steps = testing::TagSteps(testing::ReadSummaryEvents(stream_dir));
  EXPECT_EQ(tag_steps, (std::vector<std::string>{"loss@1", "acc@1", "loss@2", "acc@3", "loss@3",
                                                 "lr@4", "acc@4"}));
  EXPECT_EQ(testing::TagSteps(testing::ReadSummaryEvents(stream_dir / "eval")),
            (std::vector<std::string>{"loss@3", "loss@4"}));
}

// The dictionary is per stream: a new stream (a reconnect) starts empty, so a
// resend that does not define its ids again is rejected record by record; a
// resend that does is written (or acknowledged as a duplicate).
TEST_F(StreamTagsE2eTest, ANewStreamStartsEmptyAndAResendDefinesAgain) {
  fs::path dir;
  const std::string run = Open("dict/reconnect", &dir);
  v1::WriteRequest first = Columns(run, 1, true, {{0, 1, 1.0f}, {1, 1, 2.0f}});
  Define(first, 0, {"a", "b"});
  ASSERT_TRUE(Stream({first}).status.ok());

  // A reconnecting client: the definitions first (bind-only style), then the
  // resend of batch 1 (a duplicate, its definitions repeated) and batch 2.
  v1::WriteRequest bind;
  bind.set_run_id(run);
  bind.set_writer_id("w");
  Define(bind, 0, {"a", "b"});
  const StreamEnd again = Stream({bind, first, Columns(run, 2, true, {{1, 2, 3.0f}, {0, 2, 4.0f}})});
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_TRUE(again.errors.empty()) << again.errors[0].message();
  EXPECT_EQ(again.written, 2u);

  // Batch 3 refers to ids the earlier streams defined: undefined on its own.
  const StreamEnd undefined = Stream({Columns(run, 3, true, {{0, 3, 1.0f}, {1, 3, 2.0f}})});
  ASSERT_TRUE(undefined.status.ok()) << undefined.status.error_message();
  EXPECT_EQ(undefined.written, 3u);
  ASSERT_EQ(undefined.errors.size(), 1u);
  EXPECT_EQ(undefined.errors[0].code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(undefined.errors[0].message().find("stream tag id 0 is not defined"),
            std::string::npos)
      << undefined.errors[0].message();
  EXPECT_NE(undefined.errors[0].message().find("tag_index[0]"), std::string::npos);
  Close(run);
  EXPECT_EQ(testing::TagSteps(testing::ReadSummaryEvents(dir)),
            (std::vector<std::string>{"a@1", "b@1", "b@2", "a@2"}));
}

// An id defined by a later message of the same stream is still undefined for
// an earlier batch, however the conversions are scheduled.
TEST_F(StreamTagsE2eTest, AnIdIsUndefinedForBatchesBeforeItsDefinition) {
  const std::string run = Open("dict/order");
  std::vector<v1::WriteRequest> stream;
  for (uint64_t sequence = 1; sequence <= 20; ++sequence) {
    // Batch s uses id s-1, defined by batch s itself, and id s, defined by
    // the next batch: rejected.
    const auto id = static_cast<uint32_t>(sequence - 1);
    stream.push_back(Columns(run, sequence, true, {{id, 1, 1.0f}}));
    Define(stream.back(), id, {absl::StrCat("t", id)});
    v1::Record* early = stream.back().add_records();
    early->mutable_scalars()->set_stream_tag_ids(true);
    early->mutable_scalars()->add_tag_index(id + 1);
    early->mutable_scalars()->add_steps(1);
    early->mutable_scalars()->add_values(1.0f);
  }
  const StreamEnd end = Stream(stream);
  ASSERT_TRUE(end.status.ok()) << end.status.error_message();
  EXPECT_EQ(end.written, 20u);
  ASSERT_EQ(end.errors.size(), 20u);
  for (const v1::RecordError& error : end.errors) {
    EXPECT_EQ(error.index(), 1u);
    EXPECT_NE(error.message().find(absl::StrCat("stream tag id ", error.sequence(),
                                                " is not defined")),
              std::string::npos)
        << error.message();
  }
}

TEST_F(StreamTagsE2eTest, BadDefinitionsRejectRecordsOrEndTheStreamNamingTheId) {
  const std::string run = Open("dict/bad");
  // A bad tag: the records using it are rejected, naming the id; the stream
  // and the other records go on.
  v1::WriteRequest bad_tag = Columns(run, 1, true, {{0, 1, 1.0f}});
  Define(bad_tag, 0, {"bad\x01tag", "good"});
  v1::WriteRequest uses_good = Columns(run, 2, true, {{1, 1, 1.0f}});
  const StreamEnd end = Stream({bad_tag, uses_good});
  ASSERT_TRUE(end.status.ok()) << end.status.error_message();
  EXPECT_EQ(end.written, 2u);
  ASSERT_EQ(end.errors.size(), 1u);
  EXPECT_EQ(end.errors[0].sequence(), 1u);
  EXPECT_NE(end.errors[0].message().find("stream tag id 0"), std::string::npos)
      << end.errors[0].message();

  // Redefined with another tag: the stream ends, naming the id.
  v1::WriteRequest one = Columns(run, 3, true, {{5, 2, 1.0f}});
  Define(one, 5, {"x"});
  v1::WriteRequest other = Columns(run, 4, true, {{5, 3, 1.0f}});
  Define(other, 5, {"y"});
  const StreamEnd redefined = Stream({one, other});
  EXPECT_EQ(redefined.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(redefined.status.error_message().find("id 5: is defined already as tag \"x\""),
            std::string::npos)
      << redefined.status.error_message();
  EXPECT_EQ(redefined.written, 3u);

  // Past the cap: ids from 65536 on.
  v1::WriteRequest past = Columns(run, 4, true, {{65536, 4, 1.0f}});
  Define(past, 65535, {"last", "past"});
  const StreamEnd capped = Stream({past});
  EXPECT_EQ(capped.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(capped.status.error_message().find("id 65536: is past the stream's cap of 65536"),
            std::string::npos)
      << capped.status.error_message();

  // Past the byte cap: 1 MiB of names.
  v1::WriteRequest big = Columns(run, 4, true, {{0, 4, 1.0f}});
  std::vector<std::string> long_tags;
  for (int i = 0; i < 4400; ++i) long_tags.push_back(absl::StrCat(std::string(240, 'L'), i));
  Define(big, 0, long_tags);
  const StreamEnd too_big = Stream({big});
  EXPECT_EQ(too_big.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(too_big.status.error_message().find("past 1048576 bytes"), std::string::npos)
      << too_big.status.error_message();

  // The daemon is up: a fresh stream writes.
  v1::WriteRequest fine = Columns(run, 4, true, {{0, 4, 1.0f}});
  Define(fine, 0, {"fine"});
  const StreamEnd after = Stream({fine});
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.written, 4u);
}

// WriteBatch has no stream: its definitions serve that call only.
TEST_F(StreamTagsE2eTest, WriteBatchDefinitionsHoldForTheCallOnly) {
  fs::path dir;
  const std::string run = Open("dict/unary", &dir);
  v1::WriteRequest defines = Columns(run, 1, true, {{7, 1, 1.0f}});
  Define(defines, 7, {"u"});
  {
    grpc::ClientContext context;
    v1::WriteResponse response;
    const grpc::Status status = stub_->WriteBatch(&context, defines, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  {
    grpc::ClientContext context;
    v1::WriteResponse response;
    const grpc::Status status =
        stub_->WriteBatch(&context, Columns(run, 2, true, {{7, 2, 1.0f}}), &response);
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("stream tag id 7 is not defined"), std::string::npos)
        << status.error_message();
  }
  Close(run);
  EXPECT_EQ(testing::TagSteps(testing::ReadSummaryEvents(dir)), (std::vector<std::string>{"u@1"}));
}

}  // namespace
}  // namespace tblog::daemon
