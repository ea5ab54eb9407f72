// Shared-memory tensors against the real tblogd (README "Shared memory"):
// records sent through a ring equal the same records sent as bytes; forged
// slices, rewritten slices, a killed client, refused and absent rings are
// each answered with a clear status while the daemon stays up and other
// writers are unaffected.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/io/event_reader.h"
#include "golden_util.h"
#include "shm_ring.h"
#include "support/daemon_process.h"
#include "tblog/client.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog {
namespace {

using ::tblog::testing::DaemonProcess;

constexpr char kChildEnv[] = "TBLOG_SHM_TEST_CHILD";

// Summary values of a run ("exp/run", or a sub-run), in file order.
std::vector<tb::Event> RunEvents(const std::string& logdir, const std::string& run) {
  std::vector<tb::Event> events;
  auto listed = ListRuns(logdir);
  EXPECT_TRUE(listed.ok()) << listed.status();
  if (!listed.ok()) return events;
  for (const RunFiles& files : *listed) {
    if (files.name != run) continue;
    for (const std::string& file : files.files) {
      for (tb::Event& event : ReadEventFile(file)) {
        if (event.has_summary()) events.push_back(std::move(event));
      }
    }
  }
  return events;
}

std::vector<float> Values(size_t n, float scale) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = std::sin(static_cast<float>(i) * 0.001f) * scale;
  return values;
}

// A writer makes its ring when it first meets a large tensor (sent as
// bytes): one, flushed, so that the next ones go through the ring.
void WarmUp(Writer& writer) {
  const std::vector<float> values(ShmRing::kMinSliceBytes / sizeof(float), 1.0f);
  ASSERT_TRUE(writer.histogram("warm_up", 0, std::span<const float>(values)).ok());
  ASSERT_TRUE(writer.flush().ok()) << writer.status();
}

WriterOptions OptionsFor(const DaemonProcess& daemon, std::string run_path) {
  WriterOptions options;
  options.target = daemon.target();
  options.run_path = std::move(run_path);
  options.batch_delay = absl::Milliseconds(5);
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  options.shm_socket = "";  // derived from the target, whatever the environment says
  return options;
}

// The daemon's --shm-socket next to its unix socket (the default).
std::string ShmSocketOf(const DaemonProcess& daemon) { return daemon.socket_path() + ".shm"; }

// Hands `fd` to the shm socket as a client would (ShmRing::Attach), for the
// cases that ShmRing never produces; code -1 when there was no answer.
v1::ShmAttachResponse AttachRaw(const std::string& socket_path, int fd, uint64_t ring_bytes) {
  absl::StatusOr<v1::ShmAttachResponse> response =
      ShmRing::Exchange(socket_path, fd, ring_bytes, absl::Seconds(5));
  if (response.ok()) return *response;
  v1::ShmAttachResponse none;
  none.set_code(-1);
  none.set_message(std::string(response.status().message()));
  return none;
}

class ShmE2eTest : public ::testing::Test {
 protected:
  void StartDaemon(std::vector<std::string> extra_args = {}) {
    DaemonProcess::Options options;
    options.extra_args = std::move(extra_args);
    auto daemon = DaemonProcess::Start(options);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = std::move(*daemon);
    channel_ = grpc::CreateChannel(daemon_->target(), grpc::InsecureChannelCredentials());
    stub_ = v1::TBLog::NewStub(channel_);
  }

  std::string OpenRun(const std::string& run_path) {
    grpc::ClientContext context;
    v1::OpenRunRequest request;
    request.set_run_path(run_path);
    v1::OpenRunResponse response;
    grpc::Status status = stub_->OpenRun(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.run_id();
  }

  // A histogram record whose values are the slice [offset, offset + length).
  static v1::Record SliceHistogram(const std::string& tag, uint64_t offset, uint64_t length,
                                   int64_t elements) {
    v1::Record record;
    record.set_tag(tag);
    record.set_step(1);
    v1::Tensor* values = record.mutable_histogram()->mutable_values();
    values->set_dtype(v1::DTYPE_FLOAT32);
    values->add_shape(elements);
    values->mutable_shm()->set_offset(offset);
    values->mutable_shm()->set_length(length);
    return record;
  }

  // One batch on a new Write stream bound to `token`; returns the stream's
  // acks and its final status.
  grpc::Status WriteOnce(const std::string& run_id, const std::string& writer,
                         const std::string& token, std::vector<v1::Record> records,
                         std::vector<v1::WriteResponse>* acks) {
    grpc::ClientContext context;
    auto stream = stub_->Write(&context);
    v1::WriteRequest request;
    request.set_run_id(run_id);
    request.set_writer_id(writer);
    request.set_shm_ring(token);
    request.set_sequence(1);
    for (v1::Record& record : records) *request.add_records() = std::move(record);
    stream->Write(request);
    stream->WritesDone();
    v1::WriteResponse response;
    while (stream->Read(&response)) acks->push_back(response);
    return stream->Finish();
  }

  // A writer on `run` through the ring (`shm`) or with bytes, warmed up.
  std::unique_ptr<Writer> OpenWarm(const std::string& run, bool shm) {
    WriterOptions options = OptionsFor(*daemon_, run);
    if (!shm) options.shm_ring_bytes = 0;
    auto writer = Writer::Open(options);
    EXPECT_TRUE(writer.ok()) << writer.status();
    if (!writer.ok()) return nullptr;
    WarmUp(**writer);
    return *std::move(writer);
  }

  // Opens a writer with `options`, warms it up, logs `count` histograms of
  // `values` under "h", closes it and checks that the run holds them, all
  // equal. Returns the writer's stats.
  WriterStats LogEqualHistograms(const WriterOptions& options, const std::vector<float>& values,
                                 int count) {
    auto writer = Writer::Open(options);
    EXPECT_TRUE(writer.ok()) << writer.status();
    if (!writer.ok()) return {};
    WarmUp(**writer);
    for (int step = 0; step < count; ++step) {
      EXPECT_TRUE((*writer)->histogram("h", step, std::span<const float>(values)).ok());
    }
    EXPECT_TRUE((*writer)->close().ok()) << (*writer)->status();
    const std::vector<tb::Event> events = RunEvents(daemon_->logdir(), options.run_path);
    EXPECT_EQ(events.size(), static_cast<size_t>(count) + 1);  // warm_up and the equal ones
    for (size_t i = 2; i < events.size(); ++i) {
      EXPECT_EQ(events[i].summary().value(0).tensor().SerializeAsString(),
                events[1].summary().value(0).tensor().SerializeAsString());
    }
    return (*writer)->stats();
  }

  // A writer on `run` with a 1 MiB ring: `large` first when `large_first`
  // (it makes the ring), else a warm-up; then three steps of `large` and
  // of a 400 KB "small", and close. Returns its stats.
  WriterStats LogLargeAndSmall(const std::string& run, const std::vector<float>& large,
                               bool large_first) {
    const std::vector<float> small = Values(100000, 1.0f);
    WriterOptions options = OptionsFor(*daemon_, run);
    options.shm_ring_bytes = 1 << 20;
    options.max_buffer_bytes = 32 << 20;
    auto writer = Writer::Open(options);
    EXPECT_TRUE(writer.ok()) << writer.status();
    if (!writer.ok()) return {};
    if (large_first) {
      EXPECT_TRUE((*writer)->histogram("large", 0, std::span<const float>(large)).ok());
      EXPECT_TRUE((*writer)->flush().ok());
    } else {
      WarmUp(**writer);
    }
    for (int step = 1; step < 4; ++step) {
      EXPECT_TRUE((*writer)->histogram("large", step, std::span<const float>(large)).ok());
      EXPECT_TRUE((*writer)->histogram("small", step, std::span<const float>(small)).ok());
    }
    EXPECT_TRUE((*writer)->close().ok()) << (*writer)->status();
    return (*writer)->stats();
  }

  bool Healthy() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListRunsRequest request;
    v1::ListRunsResponse response;
    return stub_->ListRuns(&context, request, &response).ok();
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TBLog::Stub> stub_;
};

TEST_F(ShmE2eTest, HistogramImageEmbeddingThroughShmEqualTheSameSentAsBytes) {
  StartDaemon();
  const std::vector<float> weights = Values(1 << 20, 3.0f);
  std::vector<uint8_t> pixels(256 * 256 * 3);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7 % 251);
  const std::vector<float> matrix = Values(200 * 32, 1.0f);
  for (const bool shm : {true, false}) {
    auto writer = OpenWarm(shm ? "shm/ring" : "shm/bytes", shm);
    ASSERT_NE(writer, nullptr);
    RecordOptions at;
    at.wall_time = 1700000000.0;
    ASSERT_TRUE(writer->histogram("weights", 1, std::span<const float>(weights), {}, at).ok());
    ASSERT_TRUE(writer
                    ->histogram("weights_exp", 1, std::span<const float>(weights),
                                {.layout = v1::HISTOGRAM_LAYOUT_EXPONENTIAL}, at)
                    .ok());
    ASSERT_TRUE(writer
                    ->image("picture", 1, v1::DTYPE_UINT8, std::as_bytes(std::span(pixels)),
                            {256, 256, 3}, {}, at)
                    .ok());
    ASSERT_TRUE(writer->embedding("points", 1, matrix, 200, 32, {}, {}, at).ok());
    ASSERT_TRUE(writer->close().ok()) << writer->status();
    const WriterStats stats = writer->stats();
    EXPECT_EQ(stats.shm_tensors, shm ? 4u : 0u) << stats.shm_error;
    EXPECT_EQ(stats.errors, 0u);
  }
  const std::vector<tb::Event> ring = RunEvents(daemon_->logdir(), "shm/ring");
  const std::vector<tb::Event> bytes = RunEvents(daemon_->logdir(), "shm/bytes");
  ASSERT_EQ(ring.size(), 4u);  // warm_up and three: the embedding is a side file
  ASSERT_EQ(ring.size(), bytes.size());
  for (size_t i = 1; i < ring.size(); ++i) {
    EXPECT_EQ(ring[i].summary().SerializeAsString(), bytes[i].summary().SerializeAsString())
        << "event " << i << ": " << ring[i].summary().value(0).tag();
  }
  const std::string tsv = "/00001/points/tensors.tsv";
  const std::string ring_tsv = ReadFileBytes(daemon_->logdir() + "/shm/ring" + tsv);
  EXPECT_FALSE(ring_tsv.empty());
  EXPECT_EQ(ring_tsv, ReadFileBytes(daemon_->logdir() + "/shm/bytes" + tsv));
}

TEST_F(ShmE2eTest, ForgedSlicesAreInvalidArgumentNamingTheRecord) {
  StartDaemon();
  auto ring = ShmRing::Create(1 << 20);
  ASSERT_TRUE(ring.ok()) << ring.status();
  auto token = (*ring)->Attach(ShmSocketOf(*daemon_), absl::Seconds(5));
  ASSERT_TRUE(token.ok()) << token.status();
  const std::string run_id = OpenRun("shm/forged");
  std::vector<v1::Record> records;
  records.push_back(SliceHistogram("past_the_end", (1 << 20) - 64, 4096, 1024));
  records.push_back(SliceHistogram("huge_offset", ~uint64_t{0} - 8, 4096, 1024));
  records.push_back(SliceHistogram("length_mismatch", 0, 4096, 2048));
  records.push_back(SliceHistogram("good", 4096, 4096, 1024));
  v1::Record both = SliceHistogram("both", 0, 4096, 1024);
  both.mutable_histogram()->mutable_values()->set_data(std::string(4096, '\0'));
  records.push_back(both);
  v1::Record audio;  // a kind that takes no slices
  audio.set_tag("audio");
  audio.mutable_audio()->set_sample_rate(8000);
  audio.mutable_audio()->mutable_samples()->set_dtype(v1::DTYPE_FLOAT32);
  audio.mutable_audio()->mutable_samples()->add_shape(1024);
  audio.mutable_audio()->mutable_samples()->mutable_shm()->set_length(4096);
  records.push_back(audio);
  std::vector<v1::WriteResponse> acks;
  grpc::Status status = WriteOnce(run_id, "w1", *token, records, &acks);
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::map<std::string, v1::RecordError> errors;
  for (const auto& ack : acks) {
    for (const auto& error : ack.errors()) errors[error.tag()] = error;
  }
  for (const char* tag : {"past_the_end", "huge_offset", "length_mismatch", "both", "audio"}) {
    ASSERT_TRUE(errors.count(tag)) << tag;
    EXPECT_EQ(errors[tag].code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT)) << tag;
    EXPECT_NE(errors[tag].message().find(tag), std::string::npos) << errors[tag].message();
  }
  EXPECT_NE(errors["past_the_end"].message().find("not inside the ring"), std::string::npos)
      << errors["past_the_end"].message();
  EXPECT_EQ(errors.count("good"), 0u);
  // A slice without a ring: a stream that bound none.
  std::vector<v1::WriteResponse> unbound_acks;
  EXPECT_TRUE(WriteOnce(run_id, "w2", "", {SliceHistogram("no_ring", 0, 4096, 1024)},
                        &unbound_acks)
                  .ok());
  ASSERT_FALSE(unbound_acks.empty());
  ASSERT_EQ(unbound_acks[0].errors_size(), 1);
  EXPECT_NE(unbound_acks[0].errors(0).message().find("no shared-memory ring"), std::string::npos)
      << unbound_acks[0].errors(0).message();
  // An unknown token ends the stream with a retryable code; a token bound
  // already (the first stream's, dropped when it ended) too.
  std::vector<v1::WriteResponse> ignored;
  EXPECT_EQ(WriteOnce(run_id, "w3", "00112233445566778899aabbccddeeff", {}, &ignored).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(WriteOnce(run_id, "w4", *token, {}, &ignored).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // WriteBatch takes no ring.
  grpc::ClientContext context;
  v1::WriteRequest unary;
  unary.set_run_id(run_id);
  unary.set_shm_ring(*token);
  v1::WriteResponse response;
  EXPECT_EQ(stub_->WriteBatch(&context, unary, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Healthy());
}

// Float32 values for the range tests: a wave with signed zeros, and `odd`
// (NaN, an infinity, ...) at a few places when given.
std::vector<float> RangeCase(size_t n, float scale, std::optional<float> odd = std::nullopt) {
  std::vector<float> values = Values(n, scale);
  values[n / 3] = -0.0f;
  values[n / 2] = 0.0f;
  if (odd.has_value()) {
    for (size_t i : {size_t{5}, n / 4, n - 1}) values[i] = *odd;
  }
  return values;
}

TEST_F(ShmE2eTest, TheClientSendsTheRangeOfUniformHistogramsItCopies) {
  StartDaemon();
  auto ring = ShmRing::Create(8 << 20);
  ASSERT_TRUE(ring.ok()) << ring.status();
  ASSERT_TRUE((*ring)->Attach(ShmSocketOf(*daemon_), absl::Seconds(5)).ok());
  // Where the ring's bytes are, to check the copies.
  std::optional<ShmRing::Slice> first = (*ring)->Take(ShmRing::kMinSliceBytes, false);
  ASSERT_TRUE(first.has_value());
  const std::byte* const base = first->data - first->offset;
  (*ring)->Free(first->offset);
  // Sizes below and above the streaming copy's threshold, and ones whose
  // tail is not a whole 64-byte block.
  for (const size_t n : {size_t{4096}, size_t{4099}, size_t{1} << 18, (size_t{1} << 18) + 13}) {
    for (const bool with_range : {true, false}) {
      std::vector<float> values = RangeCase(n, 2.0f);
      values[n - 1] = 7.5f;  // the max in the tail
      values[n - 2] = -7.5f;
      v1::Tensor tensor;
      tensor.set_dtype(v1::DTYPE_FLOAT32);
      ASSERT_TRUE((*ring)->CopyIn(std::as_bytes(std::span(values)), &tensor, false, with_range));
      EXPECT_EQ(std::memcmp(base + tensor.shm().offset(), values.data(), n * sizeof(float)), 0)
          << n;
      ASSERT_EQ(tensor.shm().has_range(), with_range) << n;
      if (with_range) {
        EXPECT_EQ(tensor.shm().range().min(), -7.5) << n;
        EXPECT_EQ(tensor.shm().range().max(), 7.5) << n;
      }
      (*ring)->Free(tensor.shm().offset());
    }
    // No range where the daemon could not count from it.
    for (const float odd : {NAN, INFINITY, -INFINITY}) {
      const std::vector<float> values = RangeCase(n, 2.0f, odd);
      v1::Tensor tensor;
      tensor.set_dtype(v1::DTYPE_FLOAT32);
      ASSERT_TRUE((*ring)->CopyIn(std::as_bytes(std::span(values)), &tensor, false, true));
      EXPECT_FALSE(tensor.shm().has_range()) << odd << " n " << n;
      (*ring)->Free(tensor.shm().offset());
    }
    const std::vector<float> equal(n, 3.0f);
    v1::Tensor tensor;
    tensor.set_dtype(v1::DTYPE_FLOAT32);
    ASSERT_TRUE((*ring)->CopyIn(std::as_bytes(std::span(equal)), &tensor, false, true));
    EXPECT_FALSE(tensor.shm().has_range()) << "all equal, n " << n;
    (*ring)->Free(tensor.shm().offset());
    v1::Tensor doubles;
    doubles.set_dtype(v1::DTYPE_FLOAT64);
    const std::vector<double> wide(n / 2 + 1, 1.0);
    ASSERT_TRUE((*ring)->CopyIn(std::as_bytes(std::span(wide)), &doubles, false, true));
    EXPECT_FALSE(doubles.shm().has_range()) << "float64, n " << n;
    (*ring)->Free(doubles.shm().offset());
  }
}

TEST_F(ShmE2eTest, RangeHintsRightOrForgedGiveTheHistogramOfTheBytes) {
  StartDaemon();
  auto ring = ShmRing::Create(8 << 20);
  ASSERT_TRUE(ring.ok()) << ring.status();
  auto token = (*ring)->Attach(ShmSocketOf(*daemon_), absl::Seconds(5));
  ASSERT_TRUE(token.ok()) << token.status();
  const std::string run_id = OpenRun("shm/ranges");
  constexpr size_t kFloats = 100000;  // a few chunks: split across the workers
  struct Case {
    std::string name;
    std::vector<float> values;
  };
  std::vector<Case> cases = {
      {"wave", RangeCase(kFloats, 3.0f)},
      {"nan", RangeCase(kFloats, 3.0f, NAN)},
      {"inf", RangeCase(kFloats, 3.0f, INFINITY)},
      {"minus_inf", RangeCase(kFloats, 3.0f, -INFINITY)},
      {"equal", std::vector<float>(kFloats, 1.25f)},
  };
  // Non-negative, its first zero -0.0: the min's sign is the data's.
  cases.push_back({"relu", RangeCase(kFloats, 3.0f)});
  for (float& v : cases.back().values) v = v > 0 ? v : (v == 0 ? v : 0.0f);
  cases.back().values[0] = -0.0f;
  std::vector<v1::Record> records;
  std::vector<std::string> tags;
  for (const Case& c : cases) {
    std::optional<ShmRing::Slice> slice = (*ring)->Take(kFloats * sizeof(float), false);
    ASSERT_TRUE(slice.has_value()) << c.name;
    std::memcpy(slice->data, c.values.data(), kFloats * sizeof(float));
    float lo = INFINITY, hi = -INFINITY;
    for (float v : c.values) {
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
    const float below = std::nextafter(lo, -INFINITY), above = std::nextafter(hi, INFINITY);
    const std::vector<std::pair<std::string, std::optional<std::pair<double, double>>>> hints = {
        {"none", std::nullopt},
        {"right", std::pair<double, double>{lo, hi}},
        {"right_other_zero_sign", std::pair<double, double>{lo == 0 ? -lo : lo, hi}},
        {"too_wide", std::pair<double, double>{below, above}},
        {"too_wide_below", std::pair<double, double>{lo - 1, hi}},
        {"too_narrow", std::pair<double, double>{std::nextafter(lo, INFINITY), hi}},
        {"too_narrow_above", std::pair<double, double>{lo, std::nextafter(hi, -INFINITY)}},
        {"far_off", std::pair<double, double>{100, 200}},
        {"swapped", std::pair<double, double>{hi, lo}},
        {"equal", std::pair<double, double>{lo, lo}},
        {"nan", std::pair<double, double>{NAN, hi}},
        {"infinite", std::pair<double, double>{-INFINITY, INFINITY}},
        {"not_a_float", std::pair<double, double>{lo + 1e-12, hi}},
    };
    v1::Record bytes = SliceHistogram(c.name + "/bytes", 0, 0, kFloats);
    bytes.mutable_histogram()->mutable_values()->clear_shm();
    bytes.mutable_histogram()->mutable_values()->set_data(c.values.data(),
                                                          kFloats * sizeof(float));
    records.push_back(bytes);
    tags.push_back(c.name + "/bytes");
    for (const auto& [hint_name, hint] : hints) {
      v1::Record record =
          SliceHistogram(c.name + "/" + hint_name, slice->offset, kFloats * sizeof(float), kFloats);
      if (hint.has_value()) {
        v1::ShmSlice::Range* range =
            record.mutable_histogram()->mutable_values()->mutable_shm()->mutable_range();
        range->set_min(hint->first);
        range->set_max(hint->second);
      }
      records.push_back(record);
    }
  }
  // A range on an exponential histogram and on an image: ignored.
  v1::Record exponential = records[1];
  exponential.set_tag("wave/exponential");
  exponential.mutable_histogram()->set_layout(v1::HISTOGRAM_LAYOUT_EXPONENTIAL);
  exponential.mutable_histogram()->mutable_values()->mutable_shm()->mutable_range()->set_min(5);
  exponential.mutable_histogram()->mutable_values()->mutable_shm()->mutable_range()->set_max(6);
  records.push_back(exponential);
  v1::Record exponential_bytes = records[0];
  exponential_bytes.set_tag("wave/exponential_bytes");
  exponential_bytes.mutable_histogram()->set_layout(v1::HISTOGRAM_LAYOUT_EXPONENTIAL);
  records.push_back(exponential_bytes);

  std::vector<v1::WriteResponse> acks;
  grpc::Status status = WriteOnce(run_id, "w1", *token, records, &acks);
  ASSERT_TRUE(status.ok()) << status.error_message();
  for (const v1::WriteResponse& ack : acks) {
    EXPECT_EQ(ack.errors_size(), 0) << ack.errors(0).tag() << ": " << ack.errors(0).message();
  }
  EXPECT_TRUE(Healthy());
  std::map<std::string, tb::Summary::Value> written;
  for (const tb::Event& event : RunEvents(daemon_->logdir(), "shm/ranges")) {
    for (const tb::Summary::Value& value : event.summary().value()) written[value.tag()] = value;
  }
  ASSERT_EQ(written.size(), records.size());
  for (const v1::Record& record : records) {
    const std::string& tag = record.tag();
    const std::string bytes_tag =
        tag.starts_with("wave/exponential") ? "wave/exponential_bytes"
                                            : tag.substr(0, tag.find('/')) + "/bytes";
    ASSERT_TRUE(written.count(tag)) << tag;
    // The whole value but its tag: the tensor, and the metadata.
    tb::Summary::Value value = written[tag], expected = written[bytes_tag];
    value.clear_tag();
    expected.clear_tag();
    EXPECT_TRUE(value.SerializeAsString() == expected.SerializeAsString())
        << tag << " differs from " << bytes_tag;
  }
}

TEST_F(ShmE2eTest, RingsThatAreNotSealedMemfdsOrTooLargeAreRefused) {
  StartDaemon({"--max-inflight-bytes", "8MiB"});
  const std::string socket = ShmSocketOf(*daemon_);
  // Larger than the rings' share (half of the budget).
  auto large = ShmRing::Create(16 << 20);
  ASSERT_TRUE(large.ok());
  auto refused = (*large)->Attach(socket, absl::Seconds(5));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  EXPECT_NE(refused.status().message().find("larger than the rings' share"), std::string::npos)
      << refused.status();
  // Two rings of 3 MiB: the second does not fit next to the first.
  auto first = ShmRing::Create(3 << 20);
  auto second = ShmRing::Create(3 << 20);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_TRUE((*first)->Attach(socket, absl::Seconds(5)).ok());
  EXPECT_EQ((*second)->Attach(socket, absl::Seconds(5)).status().code(),
            absl::StatusCode::kResourceExhausted);
  // A memfd that may shrink, a plain file, no descriptor, a size that lies.
  const int unsealed = ::memfd_create("unsealed", MFD_CLOEXEC);
  ASSERT_EQ(::ftruncate(unsealed, 4096), 0);
  v1::ShmAttachResponse answer = AttachRaw(socket, unsealed, 4096);
  EXPECT_EQ(answer.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(answer.message().find("sealed"), std::string::npos) << answer.message();
  ::close(unsealed);
  FILE* plain = std::tmpfile();
  ASSERT_NE(plain, nullptr);
  ASSERT_EQ(::ftruncate(fileno(plain), 4096), 0);
  EXPECT_EQ(AttachRaw(socket, fileno(plain), 4096).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  std::fclose(plain);
  EXPECT_EQ(AttachRaw(socket, -1, 4096).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  const int lying = ::memfd_create("lying", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_EQ(::ftruncate(lying, 4096), 0);
  ASSERT_EQ(::fcntl(lying, F_ADD_SEALS, F_SEAL_SHRINK), 0);
  answer = AttachRaw(socket, lying, 1 << 20);
  EXPECT_EQ(answer.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(answer.message().find("ring_bytes"), std::string::npos) << answer.message();
  ::close(lying);
  // A writer whose ring is refused sends bytes: its data arrives whole.
  WriterOptions options = OptionsFor(*daemon_, "shm/refused");
  options.shm_ring_bytes = 16 << 20;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  WarmUp(**writer);
  const std::vector<float> values = Values(1 << 18, 1.0f);
  ASSERT_TRUE((*writer)->histogram("h", 1, std::span<const float>(values)).ok());
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
  EXPECT_EQ((*writer)->stats().shm_tensors, 0u);
  EXPECT_NE((*writer)->stats().shm_error.find("larger than the rings' share"), std::string::npos)
      << (*writer)->stats().shm_error;
  EXPECT_EQ(RunEvents(daemon_->logdir(), "shm/refused").size(), 2u);
  EXPECT_TRUE(Healthy());
}

TEST_F(ShmE2eTest, FallsBackToBytesWhenTheRingIsFullOrAbsent) {
  StartDaemon();
  const std::vector<float> values = Values(150000, 2.0f);  // 600 KB: one fits a 1 MiB ring
  WriterOptions options = OptionsFor(*daemon_, "shm/full");
  options.shm_ring_bytes = 1 << 20;
  options.shm_ring_max_bytes = 1 << 20;  // no growth
  options.overflow = OverflowPolicy::kDropNewest;  // a full ring: bytes at once, no wait
  const WriterStats stats = LogEqualHistograms(options, values, 10);
  EXPECT_GE(stats.shm_tensors, 1u) << stats.shm_error;
  EXPECT_LT(stats.shm_tensors, 10u);

  // A daemon without a shm socket: bytes, and the reason in the stats.
  daemon_.reset();
  StartDaemon({"--shm-socket", "off"});
  WriterOptions absent = OptionsFor(*daemon_, "shm/absent");
  auto bytes_writer = Writer::Open(absent);
  ASSERT_TRUE(bytes_writer.ok()) << bytes_writer.status();
  WarmUp(**bytes_writer);
  ASSERT_TRUE((*bytes_writer)->histogram("h", 1, std::span<const float>(values)).ok());
  ASSERT_TRUE((*bytes_writer)->close().ok()) << (*bytes_writer)->status();
  EXPECT_EQ((*bytes_writer)->stats().shm_tensors, 0u);
  EXPECT_NE((*bytes_writer)->stats().shm_error, "");
  EXPECT_EQ(RunEvents(daemon_->logdir(), "shm/absent").size(), 2u);
}

TEST_F(ShmE2eTest, SlicesRewrittenAfterHandoverLogGarbageButNeverCrash) {
  StartDaemon();
  // A ring of the test's own, so that it keeps a writable view of the pages
  // the daemon reads, and scribbles over them while the daemon converts:
  // NaN, infinities, values far outside the range a first pass found.
  constexpr size_t kBytes = 4 << 20;
  const int fd = ::memfd_create("scribbled", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, kBytes), 0);
  ASSERT_EQ(::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
  auto* view = static_cast<float*>(
      ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(view, MAP_FAILED);
  const size_t floats = kBytes / sizeof(float);
  const std::vector<float> seed = Values(floats, 1.0f);
  std::memcpy(view, seed.data(), kBytes);
  std::atomic<bool> stop{false};
  std::thread scribbler([&] {
    std::mt19937 random(7);
    const float specials[] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, 0.0f, -0.0f, 1e-45f};
    while (!stop.load(std::memory_order_relaxed)) {
      for (size_t i = random() % 64; i < floats; i += 1 + random() % 64) {
        view[i] = (random() & 1) ? specials[random() % 8] : static_cast<float>(random()) - 2e9f;
      }
    }
  });
  const std::string run_id = OpenRun("shm/rewritten");
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    // A token binds once and goes with its stream: one attach per stream.
    const v1::ShmAttachResponse attached = AttachRaw(ShmSocketOf(*daemon_), fd, kBytes);
    ASSERT_EQ(attached.code(), 0) << attached.message();
    std::vector<v1::Record> records;
    for (const auto layout : {v1::HISTOGRAM_LAYOUT_UNIFORM, v1::HISTOGRAM_LAYOUT_EXPONENTIAL}) {
      v1::Record record =
          SliceHistogram(absl::StrCat("h", layout), 0, kBytes, static_cast<int64_t>(floats));
      record.mutable_histogram()->set_layout(layout);
      records.push_back(record);
    }
    // With the seed's range as its hint (ShmSlice.range), which the
    // scribbles make wrong while the daemon counts.
    v1::Record hinted = SliceHistogram("hinted", 0, kBytes, static_cast<int64_t>(floats));
    hinted.mutable_histogram()->mutable_values()->mutable_shm()->mutable_range()->set_min(-1);
    hinted.mutable_histogram()->mutable_values()->mutable_shm()->mutable_range()->set_max(1);
    records.push_back(hinted);
    v1::Record image;
    image.set_tag("image");
    v1::Tensor* pixels = image.mutable_image()->mutable_pixels();
    pixels->set_dtype(v1::DTYPE_FLOAT32);
    for (int64_t dim : {512, 512, 4}) pixels->add_shape(dim);
    pixels->mutable_shm()->set_length(kBytes);
    records.push_back(image);  // refused when it catches a NaN, else garbage
    v1::Record bytes_image = image;  // always written: every byte is a pixel
    bytes_image.set_tag("image8");
    bytes_image.mutable_image()->mutable_pixels()->set_dtype(v1::DTYPE_UINT8);
    bytes_image.mutable_image()->mutable_pixels()->mutable_shm()->set_length(kBytes / 4);
    records.push_back(bytes_image);
    v1::Record embedding;
    embedding.set_tag("points");
    embedding.set_step(round);
    v1::Tensor* matrix = embedding.mutable_embedding()->mutable_matrix();
    matrix->set_dtype(v1::DTYPE_FLOAT32);
    for (int64_t dim : {1000, 64}) matrix->add_shape(dim);
    matrix->mutable_shm()->set_length(1000 * 64 * 4);
    records.push_back(embedding);
    std::vector<v1::WriteResponse> acks;
    grpc::Status status =
        WriteOnce(run_id, absl::StrCat("w", round), attached.token(), records, &acks);
    EXPECT_TRUE(status.ok()) << status.error_message();
    ASSERT_TRUE(Healthy()) << "round " << round;
  }
  stop = true;
  scribbler.join();
  ::munmap(view, kBytes);
  ::close(fd);
  EXPECT_TRUE(Healthy());
  // Garbage in, garbage out: every histogram and 8-bit image is written (a
  // float image or embedding that caught a NaN is refused as with bytes).
  EXPECT_GE(RunEvents(daemon_->logdir(), "shm/rewritten").size(), size_t{4} * kRounds);
}

TEST_F(ShmE2eTest, RingGrowsForTensorsThatLeaveNoRoomForASecondAndWaitsWhenFull) {
  StartDaemon();
  // 600 KB tensors in a 1 MiB ring: one at a time until the ring grows.
  const std::vector<float> values = Values(150000, 2.0f);
  WriterOptions options = OptionsFor(*daemon_, "shm/grown");
  options.shm_ring_bytes = 1 << 20;
  const WriterStats stats = LogEqualHistograms(options, values, 20);
  // Every one through the ring: a full ring waited for acknowledgements.
  EXPECT_EQ(stats.shm_tensors, 20u) << stats.shm_error;
  EXPECT_EQ(stats.shm_ring_bytes, size_t{2} << 20);
  EXPECT_TRUE(Healthy());
}

// The rule growth follows, and the first ring's size (record_stream_shm.cc).
TEST(ShmRingSizeTest, DoublesUntilTwoTensorsFitWithinTheMaximum) {
  constexpr size_t kMiB = size_t{1} << 20;
  EXPECT_EQ(ShmRing::SizeFor(100 << 10, 64 * kMiB, 1024 * kMiB), 64 * kMiB);  // fits twice
  EXPECT_EQ(ShmRing::SizeFor(64 * kMiB, 64 * kMiB, 1024 * kMiB), 128 * kMiB);  // 16M floats
  EXPECT_EQ(ShmRing::SizeFor(33 * kMiB, 64 * kMiB, 1024 * kMiB), 128 * kMiB);
  EXPECT_EQ(ShmRing::SizeFor(600 << 10, kMiB, 1024 * kMiB), 2 * kMiB);
  EXPECT_EQ(ShmRing::SizeFor(600 * kMiB, 64 * kMiB, 1024 * kMiB), 1024 * kMiB);  // capped
  EXPECT_EQ(ShmRing::SizeFor(600 * kMiB, 64 * kMiB, 100 * kMiB), 100 * kMiB);
  EXPECT_EQ(ShmRing::SizeFor(kMiB, 64 * kMiB, 32 * kMiB), 64 * kMiB);  // never below the start
}

TEST_F(ShmE2eTest, TheFirstRingIsSizedForTheTensorThatAskedForIt) {
  StartDaemon();
  // 600 KB tensors, shm_ring_bytes 1 MiB: the ring is made at 2 MiB at once.
  const std::vector<float> values = Values(150000, 3.0f);
  WriterOptions options = OptionsFor(*daemon_, "shm/sized");
  options.shm_ring_bytes = 1 << 20;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (int step = 0; step < 6; ++step) {
    ASSERT_TRUE((*writer)->histogram("h", step, std::span<const float>(values)).ok());
    if (step == 0) {
      ASSERT_TRUE((*writer)->flush().ok());  // the first one made the ring
    }
  }
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
  const WriterStats stats = (*writer)->stats();
  EXPECT_EQ(stats.shm_ring_bytes, size_t{2} << 20) << stats.shm_error;
  EXPECT_EQ(stats.shm_tensors, 5u);  // all but the first, sent as bytes before the ring
  EXPECT_EQ(RunEvents(daemon_->logdir(), "shm/sized").size(), 6u);
  EXPECT_TRUE(Healthy());
}

TEST_F(ShmE2eTest, AFirstRingRefusedAtTheTensorsSizeFallsBackToTheDefaultSize) {
  StartDaemon({"--max-inflight-bytes", "8MiB"});  // rings: 4 MiB at most
  // A 2.4 MB tensor first asks for an 8 MiB ring, which the daemon refuses;
  // the writer attaches one of shm_ring_bytes instead, for the smaller ones.
  const WriterStats stats = LogLargeAndSmall("shm/refused", Values(600000, 1.0f), true);
  EXPECT_EQ(stats.shm_error, "");
  EXPECT_EQ(stats.shm_tensors, 3u);  // the small ones; the large ones as bytes
  EXPECT_EQ(stats.shm_ring_bytes, size_t{1} << 20);
  EXPECT_EQ(RunEvents(daemon_->logdir(), "shm/refused").size(), 7u);
  EXPECT_TRUE(Healthy());
}

TEST_F(ShmE2eTest, TensorLargerThanAnyRingGoesAsBytes) {
  StartDaemon({"--max-inflight-bytes", "8MiB"});  // rings: 4 MiB
  // 6 MB: larger than the ring, and than any ring the daemon would accept.
  const WriterStats stats = LogLargeAndSmall("shm/larger", Values(1500000, 1.0f), false);
  EXPECT_EQ(stats.shm_tensors, 3u) << stats.shm_error;  // the small ones
  EXPECT_EQ(stats.shm_ring_bytes, size_t{1} << 20);      // its growth was refused
  EXPECT_EQ(RunEvents(daemon_->logdir(), "shm/larger").size(), 7u);
  EXPECT_TRUE(Healthy());
}

// A tensor larger than a record may carry as bytes (max_record_bytes, here
// 1 MiB instead of 63 so that the tensors stay small) has no way but the
// ring: the call waits for the sender to make the ring, or to grow it, so
// that it holds the tensor, instead of refusing it.
TEST_F(ShmE2eTest, ATensorLargerThanARecordWaitsForARingThatHoldsIt) {
  StartDaemon();
  const std::vector<float> values = Values(400000, 2.0f);  // 1.6 MB
  std::vector<std::string> expected;  // the same histograms sent as bytes
  {
    WriterOptions options = OptionsFor(*daemon_, "shm/oversize_bytes");
    options.shm_ring_bytes = 0;
    auto writer = Writer::Open(options);
    ASSERT_TRUE(writer.ok()) << writer.status();
    for (int step = 0; step < 3; ++step) {
      ASSERT_TRUE((*writer)->histogram("h", step, std::span<const float>(values)).ok());
    }
    ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
    for (const tb::Event& event : RunEvents(daemon_->logdir(), "shm/oversize_bytes")) {
      expected.push_back(event.summary().value(0).SerializeAsString());
    }
    ASSERT_EQ(expected.size(), 3u);
  }
  // "first": the first call makes the ring (4 MiB: room for two). "grown":
  // a warm-up made a 1 MiB ring, which the first call grows.
  for (const std::string run : {"shm/oversize_first", "shm/oversize_grown"}) {
    SCOPED_TRACE(run);
    WriterOptions options = OptionsFor(*daemon_, run);
    options.shm_ring_bytes = 1 << 20;
    options.max_record_bytes = 1 << 20;
    auto writer = Writer::Open(options);
    ASSERT_TRUE(writer.ok()) << writer.status();
    const bool grown = run == "shm/oversize_grown";
    if (grown) WarmUp(**writer);
    for (int step = 0; step < 3; ++step) {
      ASSERT_TRUE((*writer)->histogram("h", step, std::span<const float>(values)).ok())
          << (*writer)->status();
    }
    ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
    const WriterStats stats = (*writer)->stats();
    EXPECT_EQ(stats.shm_tensors, 3u) << stats.shm_error;
    EXPECT_EQ(stats.shm_ring_bytes, size_t{4} << 20);
    std::vector<std::string> logged;
    for (const tb::Event& event : RunEvents(daemon_->logdir(), run)) {
      if (event.summary().value(0).tag() == "h") {
        logged.push_back(event.summary().value(0).SerializeAsString());
      }
    }
    EXPECT_EQ(logged, expected);
  }
  EXPECT_TRUE(Healthy());
}

// When no ring can hold such a tensor, the call refuses it with
// INVALID_ARGUMENT saying why, and the writer goes on.
TEST_F(ShmE2eTest, ATensorLargerThanARecordWithNoRingToHoldItIsRefusedSayingWhy) {
  StartDaemon({"--max-inflight-bytes", "8MiB"});  // rings: 4 MiB at most
  const std::vector<float> values = Values(1500000, 1.0f);  // 6 MB
  const std::vector<std::pair<size_t, std::string>> cases = {
      {size_t{1} << 20, "the shared-memory ring (1048576 bytes"},  // 16, 8 MiB refused
      {0, "no shared memory with the daemon"}};                    // shm off
  for (const auto& [ring_bytes, why] : cases) {
    SCOPED_TRACE(why);
    const std::string run = absl::StrCat("shm/refused_oversize_", ring_bytes);
    WriterOptions options = OptionsFor(*daemon_, run);
    options.shm_ring_bytes = ring_bytes;
    options.max_record_bytes = 1 << 20;
    auto writer = Writer::Open(options);
    ASSERT_TRUE(writer.ok()) << writer.status();
    const absl::Status refused =
        (*writer)->histogram("big", 0, std::span<const float>(values));
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
    const std::string message(refused.message());
    EXPECT_NE(message.find("could not go through shared memory: " + why), std::string::npos)
        << message;
    ASSERT_TRUE((*writer)->scalar("after", 1, 2.0f).ok());
    ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
    const std::vector<tb::Event> events = RunEvents(daemon_->logdir(), run);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].summary().value(0).tag(), "after");
  }
  EXPECT_TRUE(Healthy());
}

TEST_F(ShmE2eTest, GrowthIsCheckedAndChargedToTheBudget) {
  StartDaemon({"--max-inflight-bytes", "8MiB"});  // rings: 4 MiB
  const std::string socket = ShmSocketOf(*daemon_);
  auto first = ShmRing::Create(2 << 20, 64 << 20);
  auto second = ShmRing::Create(1 << 20, 64 << 20);
  ASSERT_TRUE(first.ok() && second.ok());
  auto first_token = (*first)->Attach(socket, absl::Seconds(5));
  auto second_token = (*second)->Attach(socket, absl::Seconds(5));
  ASSERT_TRUE(first_token.ok()) << first_token.status();
  ASSERT_TRUE(second_token.ok()) << second_token.status();
  // A tensor of 700 KB asks for 2 MiB; the daemon maps it: 4 MiB charged.
  ASSERT_TRUE((*second)->Take(700 << 10, false).has_value());
  EXPECT_EQ((*second)->growth_wanted(), size_t{2} << 20);
  ASSERT_TRUE((*second)->Grow(socket, absl::Seconds(5)).ok());
  EXPECT_EQ((*second)->size(), size_t{2} << 20);
  // 1.5 MiB does not fit next to it and asks for 4 MiB: no room for that.
  EXPECT_FALSE((*second)->Take(1536 << 10, false).has_value());
  absl::Status refused = (*second)->Grow(socket, absl::Seconds(5));
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_EQ((*second)->size(), size_t{2} << 20);
  // The growth is charged: no room for even a small third ring.
  auto third = ShmRing::Create(64 << 10);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ((*third)->Attach(socket, absl::Seconds(5)).status().code(),
            absl::StatusCode::kResourceExhausted);
  // A slice in the grown part is read by the daemon.
  const std::string run_id = OpenRun("shm/grow");
  std::vector<v1::WriteResponse> acks;
  EXPECT_TRUE(WriteOnce(run_id, "w1", *second_token,
                        {SliceHistogram("new_part", (1 << 20) + 4096, 4096, 1024)}, &acks)
                  .ok());
  for (const auto& ack : acks) EXPECT_EQ(ack.errors_size(), 0) << ack.DebugString();
  EXPECT_EQ(RunEvents(daemon_->logdir(), "shm/grow").size(), 1u);
  // Its stream ended, so the ring and its charge are gone. Its memfd, grown
  // by the refused request, is larger than the 2 MiB it uses: attaching it
  // again works (the drop is asynchronous: retried).
  absl::StatusOr<std::string> again;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30); absl::Now() < deadline;) {
    again = (*second)->Attach(socket, absl::Seconds(5));
    if (again.ok()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(again.ok()) << again.status();
  // Forged growths: an unknown token, another memfd, no memfd.
  const int other = ::memfd_create("other", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_EQ(::ftruncate(other, 4 << 20), 0);
  ASSERT_EQ(::fcntl(other, F_ADD_SEALS, F_SEAL_SHRINK), 0);
  auto grow_raw = [&](int fd, uint64_t bytes, const std::string& grow_token) {
    auto answer = ShmRing::Exchange(socket, fd, bytes, absl::Seconds(5), grow_token);
    return answer.ok() ? answer->code() : -1;
  };
  EXPECT_EQ(grow_raw(other, 4 << 20, "00112233445566778899aabbccddeeff"),
            static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(grow_raw(other, 3 << 20, *first_token),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(grow_raw(-1, 3 << 20, *first_token),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  ::close(other);
  EXPECT_TRUE(Healthy());
}

TEST_F(ShmE2eTest, HistogramSlotsEqualBytesAndWritesAfterSubmitAreHarmless) {
  StartDaemon();
  const std::vector<float> weights = Values(1 << 20, 3.0f);
  for (const bool shm : {true, false}) {
    auto writer = OpenWarm(shm ? "shm/slot" : "shm/slot_bytes", shm);
    ASSERT_NE(writer, nullptr);
    RecordOptions at;
    at.wall_time = 1700000000.0;
    for (int step = 1; step <= 3; ++step) {
      auto slot = writer->histogram_slot<float>("weights", step, weights.size(), {}, at);
      ASSERT_TRUE(slot.ok()) << slot.status();
      EXPECT_EQ(slot->in_shared_memory(), shm);
      std::span<float> values = slot->values<float>();
      ASSERT_EQ(values.size(), weights.size());
      std::copy(weights.begin(), weights.end(), values.begin());
      ASSERT_TRUE(writer->submit(*std::move(slot)).ok());
      // A slot given up without submit() frees its memory.
      auto dropped = writer->histogram_slot<float>("dropped", step, weights.size());
      ASSERT_TRUE(dropped.ok());
    }
    // A scribbler: the span of a submitted slot, rewritten while the daemon
    // may read it. Garbage in the log at worst.
    auto slot = writer->histogram_slot<float>("scribbled", 9, weights.size(), {}, at);
    ASSERT_TRUE(slot.ok());
    std::span<float> scribbled = slot->values<float>();
    std::copy(weights.begin(), weights.end(), scribbled.begin());
    ASSERT_TRUE(writer->submit(*std::move(slot)).ok());
    if (shm) {
      for (size_t i = 0; i < scribbled.size(); i += 7) scribbled[i] = (i % 2) ? NAN : 3e38f;
    }
    EXPECT_EQ(writer->submit(*std::move(slot)).code(), absl::StatusCode::kFailedPrecondition);
    ASSERT_TRUE(writer->close().ok()) << writer->status();
    EXPECT_EQ(writer->stats().shm_tensors, shm ? 4u : 0u) << writer->stats().shm_error;
    EXPECT_EQ(writer->stats().errors, 0u);
  }
  const std::vector<tb::Event> ring = RunEvents(daemon_->logdir(), "shm/slot");
  const std::vector<tb::Event> bytes = RunEvents(daemon_->logdir(), "shm/slot_bytes");
  ASSERT_EQ(ring.size(), 5u);  // warm_up, three, the scribbled one
  ASSERT_EQ(ring.size(), bytes.size());
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(ring[i].summary().SerializeAsString(), bytes[i].summary().SerializeAsString())
        << "event " << i;
  }
  EXPECT_TRUE(Healthy());
}

TEST_F(ShmE2eTest, ImageAndEmbeddingSlotsEqualBytesAndWritesAfterSubmitAreHarmless) {
  StartDaemon();
  std::vector<uint8_t> pixels(256 * 256 * 3);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7 % 251);
  const std::vector<float> matrix = Values(200 * 32, 1.0f);
  const std::vector<std::string> labels = [] {
    std::vector<std::string> out;
    for (int i = 0; i < 200; ++i) out.push_back(absl::StrCat("row", i));
    return out;
  }();
  RecordOptions at;
  at.wall_time = 1700000000.0;
  // Slots through the ring, slots without a ring (plain buffers), and the
  // same records sent as bytes by image() and embedding().
  enum class Mode { kRingSlots, kBufferSlots, kBytes };
  for (const Mode mode : {Mode::kRingSlots, Mode::kBufferSlots, Mode::kBytes}) {
    const bool shm = mode == Mode::kRingSlots;
    const std::string run = mode == Mode::kRingSlots     ? "shm/media_slot"
                            : mode == Mode::kBufferSlots ? "shm/media_buffer"
                                                         : "shm/media_bytes";
    auto writer = OpenWarm(run, shm);
    ASSERT_NE(writer, nullptr);
    if (mode == Mode::kBytes) {
      ASSERT_TRUE(writer
                      ->image("picture", 1, v1::DTYPE_UINT8, std::as_bytes(std::span(pixels)),
                              {256, 256, 3}, {}, at)
                      .ok());
      ASSERT_TRUE(writer->embedding("points", 1, matrix, 200, 32, labels, {}, at).ok());
      ASSERT_TRUE(writer
                      ->image("scribbled", 2, v1::DTYPE_UINT8, std::as_bytes(std::span(pixels)),
                              {256, 256, 3}, {}, at)
                      .ok());
    } else {
      auto image = writer->image_slot<uint8_t>("picture", 1, {256, 256, 3}, {}, at);
      ASSERT_TRUE(image.ok()) << image.status();
      EXPECT_EQ(image->in_shared_memory(), shm);
      ASSERT_EQ(image->values<uint8_t>().size(), pixels.size());
      std::copy(pixels.begin(), pixels.end(), image->values<uint8_t>().begin());
      ASSERT_TRUE(writer->submit(*std::move(image)).ok());
      auto points = writer->embedding_slot("points", 1, 200, 32, labels, {}, at);
      ASSERT_TRUE(points.ok()) << points.status();
      EXPECT_EQ(points->in_shared_memory(), shm);
      ASSERT_EQ(points->values<float>().size(), matrix.size());
      std::copy(matrix.begin(), matrix.end(), points->values<float>().begin());
      ASSERT_TRUE(writer->submit(*std::move(points)).ok());
      // A slot given up without submit() frees its memory.
      ASSERT_TRUE(writer->image_slot<uint8_t>("dropped", 1, {256, 256, 3}).ok());
      // A scribbler: the pixels of a submitted slot, rewritten while the
      // daemon may encode them. Garbage in the image at worst.
      auto slot = writer->image_slot<uint8_t>("scribbled", 2, {256, 256, 3}, {}, at);
      ASSERT_TRUE(slot.ok());
      std::span<uint8_t> scribbled = slot->values<uint8_t>();
      std::copy(pixels.begin(), pixels.end(), scribbled.begin());
      ASSERT_TRUE(writer->submit(*std::move(slot)).ok());
      if (shm) {
        for (size_t i = 0; i < scribbled.size(); i += 5) scribbled[i] = static_cast<uint8_t>(i);
      }
      EXPECT_EQ(writer->submit(*std::move(slot)).code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_EQ(writer->image_slot<uint8_t>("negative", 1, {256, -1, 3}).status().code(),
                absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(writer->embedding_slot("negative", 1, -2, 32).status().code(),
                absl::StatusCode::kInvalidArgument);
    }
    ASSERT_TRUE(writer->close().ok()) << writer->status();
    EXPECT_EQ(writer->stats().shm_tensors, shm ? 3u : 0u) << writer->stats().shm_error;
    EXPECT_EQ(writer->stats().errors, 0u);
  }
  const std::vector<tb::Event> bytes = RunEvents(daemon_->logdir(), "shm/media_bytes");
  ASSERT_EQ(bytes.size(), 3u);  // warm_up, the picture, the scribbled one: the embedding is a side file
  const std::string tsv = "/00001/points/tensors.tsv";
  const std::string metadata = "/00001/points/metadata.tsv";
  const std::string bytes_tsv = ReadFileBytes(daemon_->logdir() + "/shm/media_bytes" + tsv);
  EXPECT_FALSE(bytes_tsv.empty());
  EXPECT_FALSE(ReadFileBytes(daemon_->logdir() + "/shm/media_bytes" + metadata).empty());
  for (const std::string run : {"shm/media_slot", "shm/media_buffer"}) {
    const std::vector<tb::Event> slots = RunEvents(daemon_->logdir(), run);
    ASSERT_EQ(slots.size(), bytes.size()) << run;
    EXPECT_EQ(slots[1].summary().SerializeAsString(), bytes[1].summary().SerializeAsString())
        << run << ": the picture";
    EXPECT_EQ(slots[2].summary().value(0).tag(), bytes[2].summary().value(0).tag()) << run;
    EXPECT_EQ(ReadFileBytes(daemon_->logdir() + "/" + run + tsv), bytes_tsv) << run;
    EXPECT_EQ(ReadFileBytes(daemon_->logdir() + "/" + run + metadata),
              ReadFileBytes(daemon_->logdir() + "/shm/media_bytes" + metadata))
        << run;
  }
  EXPECT_TRUE(Healthy());
}

// The child of ClientKilledHoldingSlotsLosesItsRing: a writer that logs
// histograms through a ring until it is killed.
TEST(ShmChild, LogsUntilKilled) {
  const char* target = std::getenv(kChildEnv);
  if (target == nullptr) GTEST_SKIP() << "run by ClientKilledHoldingSlotsLosesItsRing";
  WriterOptions options;
  options.target = target;
  options.run_path = "shm/killed";
  options.shm_socket = "";
  options.shm_ring_bytes = 24 << 20;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::vector<float> values = Values(1 << 20, 1.0f);
  bool announced = false;
  for (int64_t step = 0;; ++step) {
    (void)(*writer)->histogram("h", step, std::span<const float>(values));
    if (!announced && (*writer)->stats().shm_tensors > 0) {  // it holds its ring now
      std::printf("logging\n");
      std::fflush(stdout);
      announced = true;
    }
  }
}

TEST_F(ShmE2eTest, ClientKilledHoldingSlotsLosesItsRing) {
  StartDaemon({"--max-inflight-bytes", "64MiB"});  // rings: 32 MiB, one 24 MiB ring at a time
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::setenv(kChildEnv, daemon_->target().c_str(), 1);
    ::execl("/proc/self/exe", "shm_e2e_test", "--gtest_filter=ShmChild.LogsUntilKilled",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string seen;
  char buffer[256];
  while (seen.find("logging") == std::string::npos) {
    const ssize_t n = ::read(out[0], buffer, sizeof(buffer));
    if (n <= 0) break;
    seen.append(buffer, static_cast<size_t>(n));
  }
  ::close(out[0]);
  ASSERT_NE(seen.find("logging"), std::string::npos) << seen;
  // Another writer meanwhile: it cannot have a 24 MiB ring while the child
  // holds one, so it sends bytes, and is unaffected by the kill.
  WriterOptions options = OptionsFor(*daemon_, "shm/bystander");
  options.shm_ring_bytes = 24 << 20;
  auto bystander = Writer::Open(options);
  ASSERT_TRUE(bystander.ok()) << bystander.status();
  WarmUp(**bystander);
  const std::vector<float> values = Values(1 << 18, 1.0f);
  ASSERT_TRUE((*bystander)->histogram("before", 1, std::span<const float>(values)).ok());
  ASSERT_TRUE((*bystander)->flush().ok());
  EXPECT_EQ((*bystander)->stats().shm_tensors, 0u);
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus));
  // Its stream ends, its ring is dropped: a ring of the same size fits again.
  absl::StatusOr<std::string> token;
  auto ring = ShmRing::Create(24 << 20);
  ASSERT_TRUE(ring.ok());
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30); absl::Now() < deadline;) {
    token = (*ring)->Attach(ShmSocketOf(*daemon_), absl::Seconds(5));
    if (token.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(token.ok()) << token.status();
  ASSERT_TRUE((*bystander)->histogram("after", 2, std::span<const float>(values)).ok());
  ASSERT_TRUE((*bystander)->close().ok()) << (*bystander)->status();
  EXPECT_EQ(RunEvents(daemon_->logdir(), "shm/bystander").size(), 3u);
  EXPECT_FALSE(RunEvents(daemon_->logdir(), "shm/killed").empty());
  EXPECT_TRUE(Healthy());
}

}  // namespace
}  // namespace tblog
