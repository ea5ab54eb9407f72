// The Writer's side of the tblog.v1 protocol, against an in-process fake
// daemon that can break streams and forget acks: sequences, resends after a
// reconnect (no loss, no duplicates), resume, flush and record errors, and
// which status codes are retried (the list in tblog.proto).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "support/daemon_process.h"
#include "base/sync.h"
#include "record_stream.h"
#include "tblog/client.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog {
namespace {

// A point as the fake daemon stored it.
struct Point {
  std::string tag;
  std::string subrun;
  int64_t step;
  float value;
};

// Implements the write path the way tblogd promises to: a batch whose
// sequence was already written is acknowledged and dropped. Faults: break
// the stream with `break_code` after every `break_every`-th batch, before or
// after writing it; answer the next `refuse_opens` OpenRuns with `open_refusal`.
class FakeDaemon final : public v1::TBLog::Service {
 public:
  int break_every ABSL_GUARDED_BY(mu) = 0;
  bool write_before_break ABSL_GUARDED_BY(mu) = false;
  grpc::StatusCode break_code ABSL_GUARDED_BY(mu) = grpc::UNAVAILABLE;
  int refuse_opens ABSL_GUARDED_BY(mu) = 0;
  grpc::StatusCode open_refusal ABSL_GUARDED_BY(mu) = grpc::UNAVAILABLE;

  mutable Mutex mu;
  std::vector<v1::OpenRunRequest> opens ABSL_GUARDED_BY(mu);
  std::vector<v1::CloseRunRequest> closes ABSL_GUARDED_BY(mu);
  // The answers of the next CloseRuns, in order (then OK).
  std::vector<grpc::StatusCode> close_answers ABSL_GUARDED_BY(mu);
  std::vector<v1::FlushRequest> flushes ABSL_GUARDED_BY(mu);
  std::vector<Point> points ABSL_GUARDED_BY(mu);
  std::vector<std::string> other_tags ABSL_GUARDED_BY(mu);
  std::vector<v1::Record> histograms ABSL_GUARDED_BY(mu);
  std::map<std::string, uint64_t> written ABSL_GUARDED_BY(mu);  // by writer id
  std::vector<uint64_t> sequences ABSL_GUARDED_BY(mu);           // every batch received
  std::vector<v1::FlushMode> flush_modes ABSL_GUARDED_BY(mu);
  int duplicates ABSL_GUARDED_BY(mu) = 0;
  int gaps ABSL_GUARDED_BY(mu) = 0;
  int streams ABSL_GUARDED_BY(mu) = 0;
  int stream_tag_records ABSL_GUARDED_BY(mu) = 0;  // scalar columns using the stream dictionary

  grpc::Status OpenRun(grpc::ServerContext*, const v1::OpenRunRequest* request,
                       v1::OpenRunResponse* response) override {
    MutexLock lock(&mu);
    if (refuse_opens > 0) {
      --refuse_opens;
      return grpc::Status(open_refusal, "refused by the fake");
    }
    opens.push_back(*request);
    const std::string path = request->run_path().empty() ? "fake/run" : request->run_path();
    response->set_run_id(path);
    response->set_run_path(path);
    response->set_resumed(request->mode() == v1::OPEN_MODE_RESUME);
    for (const auto& [writer, sequence] : written) {
      (*response->mutable_writer_sequences())[writer] = sequence;
    }
    return grpc::Status::OK;
  }

  grpc::Status Write(grpc::ServerContext*,
                     grpc::ServerReaderWriter<v1::WriteResponse, v1::WriteRequest>* stream) override {
    std::string writer_id;
    v1::WriteRequest request;
    int batches_on_stream = 0;
    std::map<uint32_t, v1::ColumnTag> dictionary;  // the stream's (tblog.proto, stream_tags)
    {
      MutexLock lock(&mu);
      ++streams;
    }
    while (stream->Read(&request)) {
      if (!request.writer_id().empty()) writer_id = request.writer_id();
      if (writer_id.empty()) return grpc::Status(grpc::INVALID_ARGUMENT, "no writer_id");
      for (int i = 0; i < request.stream_tags_size(); ++i) {
        const v1::ColumnTag& definition = request.stream_tags(i);
        const auto [it, added] =
            dictionary.emplace(request.stream_tags_first_id() + static_cast<uint32_t>(i), definition);
        if (!added && (it->second.tag() != definition.tag() ||
                       it->second.subrun() != definition.subrun())) {
          return grpc::Status(grpc::INVALID_ARGUMENT, "fake: an id redefined");
        }
      }
      // The stream's bind-only first message, as tblogd ignores it.
      if (request.records_size() == 0 && request.sequence() == 0 &&
          request.flush() == v1::FLUSH_MODE_NONE) {
        continue;
      }
      v1::WriteResponse response;
      {
        MutexLock lock(&mu);
        sequences.push_back(request.sequence());
        flush_modes.push_back(request.flush());
        const bool fault = break_every > 0 && ++batches_on_stream % break_every == 0;
        if (fault && !write_before_break) return grpc::Status(break_code, "injected");
        uint64_t& last = written[writer_id];
        if (request.sequence() <= last) {
          ++duplicates;
        } else {
          if (request.sequence() != last + 1) ++gaps;
          last = request.sequence();
          if (!Store(request, dictionary, &response)) {
            return grpc::Status(grpc::INVALID_ARGUMENT, "fake: undefined stream tag id");
          }
        }
        if (fault) return grpc::Status(break_code, "injected after write");
        response.set_written_sequence(last);
        response.set_durable_sequence(last);
        if (request.flush() != v1::FLUSH_MODE_NONE) response.set_flushed_sequence(last);
      }
      if (!stream->Write(response)) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status Flush(grpc::ServerContext*, const v1::FlushRequest* request,
                     v1::FlushResponse*) override {
    MutexLock lock(&mu);
    flushes.push_back(*request);
    return grpc::Status::OK;
  }

  grpc::Status CloseRun(grpc::ServerContext*, const v1::CloseRunRequest* request,
                        v1::CloseRunResponse*) override {
    MutexLock lock(&mu);
    closes.push_back(*request);
    if (!close_answers.empty()) {
      const grpc::StatusCode code = close_answers.front();
      close_answers.erase(close_answers.begin());
      return grpc::Status(code, "CloseRun answered by the fake");
    }
    return grpc::Status::OK;
  }

 private:
  // False when a point refers to a stream tag id the stream did not define.
  bool Store(const v1::WriteRequest& request, const std::map<uint32_t, v1::ColumnTag>& dictionary,
             v1::WriteResponse* response) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (int i = 0; i < request.records_size(); ++i) {
      const v1::Record& record = request.records(i);
      if (record.has_scalars()) {
        const v1::ScalarColumns& columns = record.scalars();
        if (columns.stream_tag_ids()) ++stream_tag_records;
        for (int p = 0; p < columns.tag_index_size(); ++p) {
          const uint32_t index = columns.tag_index(p);
          if (columns.stream_tag_ids() && dictionary.count(index) == 0) return false;
          const v1::ColumnTag& tag = columns.stream_tag_ids()
                                         ? dictionary.at(index)
                                         : columns.tags(static_cast<int>(index));
          points.push_back({tag.tag(), tag.subrun(), columns.steps(p), columns.values(p)});
        }
      } else if (record.tag() == "bad") {
        v1::RecordError* error = response->add_errors();
        error->set_sequence(request.sequence());
        error->set_index(static_cast<uint32_t>(i));
        error->set_tag(record.tag());
        error->set_code(grpc::INVALID_ARGUMENT);
        error->set_message("rejected by the fake");
      } else {
        other_tags.push_back(record.tag());
        if (record.has_histogram()) histograms.push_back(record);
      }
    }
    return true;
  }
};

class WriterProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    target_ = "unix:" + dir_.path() + "/fake.sock";
    grpc::ServerBuilder builder;
    builder.AddListeningPort(target_, grpc::InsecureServerCredentials());
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now()); }

  WriterOptions Options() const {
    WriterOptions options;
    options.target = target_;
    options.run_path = "exp/run";
    options.batch_delay = absl::Milliseconds(2);
    options.initial_backoff = absl::Milliseconds(5);
    options.max_backoff = absl::Milliseconds(20);
    return options;
  }

  // Logs "loss" = 1 at steps 0..n-1; each call must be accepted.
  // A writer on the fake whose Write streams end with `code` after every
  // `every`-th batch; `max_batch_bytes` > 0 makes batches that small. Null
  // (with a test failure) if the writer does not open.
  std::unique_ptr<Writer> OpenWithStreamFault(grpc::StatusCode code, int every,
                                              size_t max_batch_bytes = 0) {
    WriterOptions options = Options();
    if (max_batch_bytes > 0) options.max_batch_bytes = max_batch_bytes;
    auto writer = Writer::Open(options);
    EXPECT_TRUE(writer.ok()) << writer.status();
    if (!writer.ok()) return nullptr;
    MutexLock lock(&fake_.mu);
    fake_.break_code = code;
    fake_.break_every = every;
    return *std::move(writer);
  }

  static void LogLoss(Writer& writer, int64_t n) {
    for (int64_t step = 0; step < n; ++step) {
      ASSERT_TRUE(writer.scalar("loss", step, 1.0f).ok()) << "step " << step;
    }
  }

  // Steps 0..n-1 of `tag`, each exactly once, in order.
  void ExpectSteps(const std::string& tag, int64_t n) {
    MutexLock lock(&fake_.mu);
    std::vector<int64_t> steps;
    for (const Point& point : fake_.points) {
      if (point.tag == tag) steps.push_back(point.step);
    }
    ASSERT_EQ(steps.size(), static_cast<size_t>(n));
    for (int64_t step = 0; step < n; ++step) ASSERT_EQ(steps[static_cast<size_t>(step)], step);
  }

  testing::TempDir dir_;
  std::string target_;
  FakeDaemon fake_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(WriterProtocolTest, ScalarsArriveInOrderInConsecutiveBatches) {
  WriterOptions options = Options();
  options.max_batch_bytes = 2000;  // many batches
  options.labels = {{"rank", "0"}};
  options.hparams.values = {{"lr", 0.5}};
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (int64_t step = 0; step < 5000; ++step) {
    ASSERT_TRUE((*writer)->scalar("loss", step, static_cast<float>(step)).ok());
    if (step % 10 == 0) {
      ASSERT_TRUE((*writer)->scalar("acc", step, 1.0f, {.subrun = "val"}).ok());
    }
  }
  ASSERT_TRUE((*writer)->close(v1::SESSION_STATUS_FAILURE).ok()) << (*writer)->status();

  ExpectSteps("loss", 5000);
  MutexLock lock(&fake_.mu);
  ASSERT_EQ(fake_.opens.size(), 1u);
  EXPECT_EQ(fake_.opens[0].run_path(), "exp/run");
  EXPECT_EQ(fake_.opens[0].labels().at("rank"), "0");
  EXPECT_EQ(fake_.opens[0].hparams().values().at("lr").number(), 0.5);
  ASSERT_EQ(fake_.closes.size(), 1u);
  EXPECT_EQ(fake_.closes[0].run_id(), "exp/run");
  EXPECT_EQ(fake_.closes[0].status(), v1::SESSION_STATUS_FAILURE);
  EXPECT_GT(fake_.sequences.size(), 10u);
  for (size_t i = 0; i < fake_.sequences.size(); ++i) EXPECT_EQ(fake_.sequences[i], i + 1);
  EXPECT_EQ(fake_.gaps, 0);
  int val_points = 0;
  for (const Point& point : fake_.points) val_points += point.subrun == "val" ? 1 : 0;
  EXPECT_EQ(val_points, 500);
  const WriterStats stats = (*writer)->stats();
  EXPECT_EQ(stats.enqueued, 5500u);
  EXPECT_EQ(stats.acknowledged, 5500u);
}

// histogram() copies into buffers reclaimed from acknowledged batches: a
// reused buffer (larger than the new tensor) must carry exactly the new data.
TEST_F(WriterProtocolTest, HistogramsInReusedBuffersCarryExactlyTheirValues) {
  auto writer = Writer::Open(Options());
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::vector<std::vector<float>> sent;
  for (const size_t size : {300000, 200000, 300000, 50000, 400000}) {
    std::vector<float> values(size);
    for (size_t i = 0; i < size; ++i) {
      values[i] = static_cast<float>(i) * (sent.size() % 2 == 0 ? 1.0f : -1.0f) + 0.5f;
    }
    ASSERT_TRUE((*writer)->histogram("w", static_cast<int64_t>(sent.size()), values).ok());
    ASSERT_TRUE((*writer)->flush().ok()) << (*writer)->status();  // acknowledged: reclaimable
    sent.push_back(std::move(values));
  }
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();

  MutexLock lock(&fake_.mu);
  ASSERT_EQ(fake_.histograms.size(), sent.size());
  for (size_t h = 0; h < sent.size(); ++h) {
    const v1::Tensor& tensor = fake_.histograms[h].histogram().values();
    EXPECT_EQ(fake_.histograms[h].step(), static_cast<int64_t>(h));
    ASSERT_EQ(tensor.shape_size(), 1);
    EXPECT_EQ(tensor.shape(0), static_cast<int64_t>(sent[h].size()));
    ASSERT_EQ(tensor.data().size(), sent[h].size() * sizeof(float)) << "histogram " << h;
    EXPECT_EQ(std::memcmp(tensor.data().data(), sent[h].data(), tensor.data().size()), 0)
        << "histogram " << h;
  }
}

TEST_F(WriterProtocolTest, BrokenStreamsAreResentWithoutLossOrDuplicates) {
  {
    MutexLock lock(&fake_.mu);
    fake_.break_every = 3;  // the third batch of every stream is lost
  }
  WriterOptions options = Options();
  options.max_batch_bytes = 1000;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_NO_FATAL_FAILURE(LogLoss(**writer, 3000));
  ASSERT_TRUE((*writer)->flush().ok()) << (*writer)->status();
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();

  ExpectSteps("loss", 3000);
  const WriterStats stats = (*writer)->stats();
  EXPECT_GE(stats.reconnects, 1u);
  EXPECT_GE(stats.resent_batches, 1u);
  EXPECT_EQ(stats.acknowledged, 3000u);
  MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.gaps, 0);
  EXPECT_EQ(fake_.duplicates, 0);
  ASSERT_GE(fake_.opens.size(), 2u);
  EXPECT_EQ(fake_.opens[1].mode(), v1::OPEN_MODE_RESUME);
  EXPECT_EQ(fake_.opens[1].run_path(), "exp/run");
  EXPECT_FALSE(fake_.opens[1].has_hparams());  // the session exists already
}

// The stream tag dictionary (tblog.proto, WriteRequest.stream_tags): each
// tag is defined once per stream, and every new stream defines again what
// the batches it resends use (the fake fails the stream on an undefined id).
TEST_F(WriterProtocolTest, StreamTagsAreDefinedAgainOnEveryNewStream) {
  {
    MutexLock lock(&fake_.mu);
    fake_.break_every = 3;  // the third batch of every stream is lost
  }
  WriterOptions options = Options();
  options.max_batch_bytes = 2000;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  constexpr int kTags = 40;
  constexpr int64_t kSteps = 60;
  std::vector<std::string> tags;
  for (int t = 0; t < kTags; ++t) tags.push_back(absl::StrCat("tag/", t));
  for (int64_t step = 0; step < kSteps; ++step) {
    for (const std::string& tag : tags) {
      // A fresh copy now and then: the same tag from another address.
      const std::string copy = step % 7 == 0 ? std::string(tag) : std::string();
      ASSERT_TRUE((*writer)->scalar(copy.empty() ? tag : copy, step, 1.0f).ok()) << tag;
    }
  }
  ASSERT_TRUE((*writer)->flush().ok()) << (*writer)->status();
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
  for (const std::string& tag : tags) ASSERT_NO_FATAL_FAILURE(ExpectSteps(tag, kSteps));
  MutexLock lock(&fake_.mu);
  EXPECT_GT(fake_.streams, 2);
  EXPECT_GT(fake_.stream_tag_records, 0);
  EXPECT_EQ(fake_.points.size(), static_cast<size_t>(kTags * kSteps));
}

TEST_F(WriterProtocolTest, WrittenButUnacknowledgedBatchesAreNotWrittenTwice) {
  {
    MutexLock lock(&fake_.mu);
    fake_.break_every = 2;
    fake_.write_before_break = true;  // written, then the ack is lost
  }
  WriterOptions options = Options();
  options.max_batch_bytes = 1000;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_NO_FATAL_FAILURE(LogLoss(**writer, 2000));
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
  ExpectSteps("loss", 2000);
  MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.gaps, 0);
  // OpenRun's writer_sequences told the writer what the daemon had: nothing
  // written was sent again.
  EXPECT_EQ(fake_.duplicates, 0);
}

// close()'s CloseRun is tried again while the daemon is away or slow
// (restarting): UNAVAILABLE and DEADLINE_EXCEEDED; a NOT_FOUND after them is a
// restarted daemon that holds nothing of the writer (released). Any other
// answer is close()'s result at once.
TEST_F(WriterProtocolTest, CloseRunIsTriedAgainWhileTheDaemonRestarts) {
  const std::vector<std::pair<std::vector<grpc::StatusCode>, absl::StatusCode>> cases = {
      {{grpc::UNAVAILABLE, grpc::DEADLINE_EXCEEDED}, absl::StatusCode::kOk},
      {{grpc::UNAVAILABLE, grpc::NOT_FOUND}, absl::StatusCode::kOk},
      {{grpc::NOT_FOUND}, absl::StatusCode::kNotFound},
      {{grpc::PERMISSION_DENIED}, absl::StatusCode::kPermissionDenied},
  };
  for (const auto& [answers, result] : cases) {
    auto writer = Writer::Open(Options());
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_NO_FATAL_FAILURE(LogLoss(**writer, 10));
    {
      MutexLock lock(&fake_.mu);
      fake_.closes.clear();
      fake_.close_answers = answers;
    }
    const absl::Status closed = (*writer)->close();
    EXPECT_EQ(closed.code(), result) << closed;
    MutexLock lock(&fake_.mu);
    const size_t tries = result == absl::StatusCode::kOk && answers.back() != grpc::NOT_FOUND
                             ? answers.size() + 1
                             : answers.size();
    EXPECT_EQ(fake_.closes.size(), tries) << closed;
  }
}

// RESOURCE_EXHAUSTED is transient (tblog.proto, "Retries"): a daemon at its
// --max-streams or --max-runs limit has room once other writers close.
TEST_F(WriterProtocolTest, ResourceExhaustedIsRetriedWithoutLoss) {
  std::unique_ptr<Writer> writer = OpenWithStreamFault(grpc::RESOURCE_EXHAUSTED, 3, 1000);
  ASSERT_NE(writer, nullptr);
  {
    MutexLock lock(&fake_.mu);
    fake_.open_refusal = grpc::RESOURCE_EXHAUSTED;
    fake_.refuse_opens = 2;  // the first resume is refused twice
  }
  ASSERT_NO_FATAL_FAILURE(LogLoss(*writer, 3000));
  ASSERT_TRUE(writer->close().ok()) << writer->status();
  ExpectSteps("loss", 3000);
  EXPECT_GE(writer->stats().reconnects, 1u);
  MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.refuse_opens, 0);
  EXPECT_EQ(fake_.duplicates, 0);
  ASSERT_GE(fake_.opens.size(), 2u);
  EXPECT_EQ(fake_.opens[1].mode(), v1::OPEN_MODE_RESUME);
}

// A final code that ends the Write stream ends the writer with that code: it
// is not turned into CANCELLED by the client and retried forever.
TEST_F(WriterProtocolTest, FinalCodeOnTheStreamEndsTheWriter) {
  std::unique_ptr<Writer> writer = OpenWithStreamFault(grpc::PERMISSION_DENIED, 1);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->scalar("loss", 0, 1.0f).ok());
  const absl::Status closed = writer->close();
  EXPECT_EQ(closed.code(), absl::StatusCode::kPermissionDenied) << closed;
  EXPECT_EQ(writer->status().code(), absl::StatusCode::kPermissionDenied);
  MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.streams, 1);  // no retry
  EXPECT_TRUE(fake_.points.empty());
}

// NOT_FOUND on the Write stream: the daemon does not know the run (it
// restarted after OpenRun). The writer reopens it with RESUME and resends:
// every point arrives once, and nothing is reported.
TEST_F(WriterProtocolTest, RunNotFoundOnTheStreamReopensTheRun) {
  std::unique_ptr<Writer> writer = OpenWithStreamFault(grpc::NOT_FOUND, 5, 1000);
  ASSERT_NE(writer, nullptr);
  ASSERT_NO_FATAL_FAILURE(LogLoss(*writer, 2000));
  ASSERT_TRUE(writer->close().ok()) << writer->status();
  ExpectSteps("loss", 2000);
  MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.duplicates, 0);
  ASSERT_GE(fake_.opens.size(), 2u);
  EXPECT_EQ(fake_.opens.back().mode(), v1::OPEN_MODE_RESUME);
}

// A daemon that keeps answering NOT_FOUND after each reopen: the writer
// gives up after a few reopens in a row, with that code.
TEST_F(WriterProtocolTest, RunNotFoundAgainAndAgainIsFinal) {
  std::unique_ptr<Writer> writer = OpenWithStreamFault(grpc::NOT_FOUND, 1);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->scalar("loss", 0, 1.0f).ok());
  EXPECT_EQ(writer->close().code(), absl::StatusCode::kNotFound);
  MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.streams, 4);  // the first stream and three reopened ones
}

// One list for every client: IsRetryable holds exactly the codes that the
// "Retries" comment of tblog.proto calls transient.
TEST(RetryPolicyTest, IsRetryableIsTheProtosTransientList) {
  std::ifstream file(TBLOG_PROTO_FILE);
  ASSERT_TRUE(file) << TBLOG_PROTO_FILE;
  std::stringstream text;
  text << file.rdbuf();
  const std::string proto = text.str();
  const size_t begin = proto.find("// Transient (retried");
  const size_t end = proto.find("// Final (reported", begin);
  ASSERT_NE(begin, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  std::set<std::string> transient;
  std::istringstream block(proto.substr(begin, end - begin));
  for (std::string line; std::getline(block, line);) {
    // "//   CODE_NAME   reason": a code starts at column 5.
    if (line.size() > 5 && line.compare(0, 5, "//   ") == 0 && line[5] >= 'A' && line[5] <= 'Z') {
      transient.insert(line.substr(5, line.find(' ', 5) - 5));
    }
  }
  std::set<std::string> retried;
  for (int code = 0; code <= 16; ++code) {
    const auto status_code = static_cast<absl::StatusCode>(code);
    if (IsRetryable(status_code)) retried.insert(absl::StatusCodeToString(status_code));
  }
  EXPECT_EQ(retried, transient);
  EXPECT_TRUE(transient.contains("RESOURCE_EXHAUSTED"));
}

TEST_F(WriterProtocolTest, FlushCompletesAfterTheFlushBatchAndErrorsAreReported) {
  auto writer = Writer::Open(Options());
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->scalar("loss", 1, 1.0f).ok());
  ASSERT_TRUE((*writer)->text("notes", 1, "fine").ok());
  ASSERT_TRUE((*writer)->text("bad", 1, "rejected").ok());
  const absl::Status flushed = (*writer)->flush(/*sync=*/true);
  EXPECT_TRUE(absl::IsInvalidArgument(flushed)) << flushed;
  EXPECT_NE(flushed.message().find("'bad'"), std::string::npos) << flushed;
  EXPECT_EQ((*writer)->stats().errors, 1u);
  {
    MutexLock lock(&fake_.mu);
    ASSERT_FALSE(fake_.flush_modes.empty());
    EXPECT_EQ(fake_.flush_modes.back(), v1::FLUSH_MODE_SYNC);
    EXPECT_EQ(fake_.points.size(), 1u);
    EXPECT_EQ(fake_.other_tags, std::vector<std::string>{"notes"});
  }
  EXPECT_EQ((*writer)->close(), flushed);
}

TEST_F(WriterProtocolTest, ARestartedWriterContinuesAfterItsEarlierSequences) {
  {
    MutexLock lock(&fake_.mu);
    fake_.written["rank-0"] = 5;  // a previous process with this writer id
  }
  WriterOptions options = Options();
  options.writer_id = "rank-0";
  options.open_in_background = true;  // batches may be sealed before the open
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_NO_FATAL_FAILURE(LogLoss(**writer, 100));
  ASSERT_TRUE((*writer)->flush().ok()) << (*writer)->status();
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
  ExpectSteps("loss", 100);
  MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.duplicates, 0);
  EXPECT_EQ(fake_.gaps, 0);
  ASSERT_FALSE(fake_.sequences.empty());
  EXPECT_EQ(fake_.sequences.front(), 6u);
}

TEST_F(WriterProtocolTest, ScalarsAsPyTorchAddScalarsSubRuns) {
  auto writer = Writer::Open(Options());
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->scalars("loss/all", 7, {{"train", 1.0f}, {"val", 2.0f}}).ok());
  ASSERT_TRUE((*writer)->close().ok());
  MutexLock lock(&fake_.mu);
  ASSERT_EQ(fake_.points.size(), 2u);
  EXPECT_EQ(fake_.points[0].tag, "loss/all");
  EXPECT_EQ(fake_.points[0].subrun, "loss_all_train");
  EXPECT_EQ(fake_.points[1].subrun, "loss_all_val");
  EXPECT_EQ(fake_.points[1].value, 2.0f);
  EXPECT_EQ(fake_.points[1].step, 7);
}

}  // namespace
}  // namespace tblog
