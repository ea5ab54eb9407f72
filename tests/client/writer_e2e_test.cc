// The Writer against the real tblogd: every record kind, read back with the
// engine's reader; resends across a daemon restart and a daemon crash.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "support/daemon_process.h"
#include "engine/io/event_reader.h"
#include "golden_util.h"
#include "tblog/client.h"

namespace tblog {
namespace {

using ::tblog::testing::DaemonProcess;

// Events of every run under a logdir, by run name ("exp/run/train"), in file
// order. Fails the test on a corrupt or torn file.
std::map<std::string, std::vector<tb::Event>> ReadLogdir(const std::string& logdir) {
  std::map<std::string, std::vector<tb::Event>> runs;
  auto listed = ListRuns(logdir);
  EXPECT_TRUE(listed.ok()) << listed.status();
  if (!listed.ok()) return runs;
  for (const RunFiles& run : *listed) {
    for (const std::string& file : run.files) {
      std::vector<tb::Event> events = ReadEventFile(file);
      std::move(events.begin(), events.end(), std::back_inserter(runs[run.name]));
    }
  }
  return runs;
}

float ScalarOf(const tb::Summary::Value& value) {
  if (value.has_simple_value()) return value.simple_value();
  if (value.tensor().float_val_size() > 0) return value.tensor().float_val(0);
  float result = 0;
  if (value.tensor().tensor_content().size() == sizeof(float)) {
    std::memcpy(&result, value.tensor().tensor_content().data(), sizeof(float));
  }
  return result;
}

// (step, value) of every point of `tag` in `events`, in file order.
std::vector<std::pair<int64_t, float>> Points(const std::vector<tb::Event>& events,
                                              const std::string& tag) {
  std::vector<std::pair<int64_t, float>> points;
  for (const tb::Event& event : events) {
    for (const tb::Summary::Value& value : event.summary().value()) {
      if (value.tag() == tag) points.emplace_back(event.step(), ScalarOf(value));
    }
  }
  return points;
}

// Number of summary values whose tag starts with `prefix`.
int CountTag(const std::vector<tb::Event>& events, const std::string& prefix) {
  int count = 0;
  for (const tb::Event& event : events) {
    for (const tb::Summary::Value& value : event.summary().value()) {
      if (value.tag().rfind(prefix, 0) == 0) ++count;
    }
  }
  return count;
}

WriterOptions OptionsFor(const DaemonProcess& daemon, std::string run_path) {
  WriterOptions options;
  options.target = daemon.target();
  options.run_path = std::move(run_path);
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  options.batch_delay = absl::Milliseconds(5);
  return options;
}

class WriterE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto daemon = DaemonProcess::Start({});
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = std::move(*daemon);
  }
  // A new daemon on the logdir and socket of one the test stopped, as a
  // supervisor would restart it.
  static absl::StatusOr<std::unique_ptr<DaemonProcess>> StartAgain(const std::string& logdir,
                                                                   const std::string& socket) {
    DaemonProcess::Options again;
    again.logdir = logdir;
    again.socket_path = socket;
    return DaemonProcess::Start(again);
  }

  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(WriterE2eTest, EveryRecordKindIsWrittenAndReadBack) {
  WriterOptions options = OptionsFor(*daemon_, "e2e/all");
  options.hparams.values = {{"lr", 0.01}, {"optimizer", "adam"}, {"shuffle", true}};
  options.hparams.metrics = {"loss"};
  auto opened = Writer::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Writer& writer = **opened;
  EXPECT_EQ(writer.run_path(), "e2e/all");

  for (int64_t step = 0; step < 100; ++step) {
    ASSERT_TRUE(writer.scalar("loss", step, 0.5f * static_cast<float>(step)).ok());
    ASSERT_TRUE(writer.scalar("acc", step, 1.0f, {.subrun = "train"}).ok());
  }
  for (int64_t step = 0; step < 10; ++step) {
    ASSERT_TRUE(writer.scalars("losses", step, {{"a", 1.0f}, {"b", 2.0f}}).ok());
  }
  const std::vector<float> floats = {1.0f, 2.0f, 2.5f, 7.0f};
  const std::vector<double> doubles = {-1.0, 0.0, 1.0};
  const std::vector<int32_t> ints = {1, 2, 3, 4, 5};
  const std::vector<uint16_t> halves = {0x3c00, 0x4000, 0x4200};  // 1, 2, 3 as float16
  ASSERT_TRUE(writer.histogram("hist/float", 1, floats).ok());
  ASSERT_TRUE(writer.histogram("hist/float", 2, floats,
                               {.layout = v1::HISTOGRAM_LAYOUT_EXPONENTIAL}).ok());
  ASSERT_TRUE(writer.histogram("hist/double", 1, doubles).ok());
  ASSERT_TRUE(writer.histogram("hist/int", 1, ints).ok());
  ASSERT_TRUE(
      writer.histogram("hist/half", 1, v1::DTYPE_FLOAT16, std::as_bytes(std::span(halves))).ok());
  std::vector<uint8_t> pixels(4 * 6 * 3, 200);
  ASSERT_TRUE(writer.image("image/rgb", 3, pixels, {4, 6, 3}).ok());
  ASSERT_TRUE(writer.text("notes", 4, "**bold** text").ok());
  std::vector<float> samples(1600, 0.25f);
  ASSERT_TRUE(writer.audio("sound", 5, samples, 16000.0f).ok());
  const std::vector<uint8_t> labels = {0, 1, 1, 0, 1};
  const std::vector<float> predictions = {0.1f, 0.9f, 0.7f, 0.4f, 0.6f};
  ASSERT_TRUE(writer.pr_curve("pr", 6, labels, predictions, 11).ok());
  const std::vector<float> matrix = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(writer.embedding("emb", 7, matrix, 3, 2, {"x", "y", "z"}).ok());
  v1::CustomScalarLayout layout;
  v1::Category* category = layout.add_categories();
  category->set_title("losses");
  v1::Chart* chart = category->add_charts();
  chart->set_title("loss");
  chart->mutable_multiline()->add_tags("loss.*");
  ASSERT_TRUE(writer.custom_scalars(layout).ok());
  v1::NodeList nodes;
  v1::Node* input = nodes.add_node();
  input->set_name("input");
  input->set_op("Placeholder");
  v1::Node* relu = nodes.add_node();
  relu->set_name("relu");
  relu->set_op("Relu");
  relu->add_inputs("input");
  ASSERT_TRUE(writer.graph(nodes).ok());

  EXPECT_TRUE(writer.flush(/*sync=*/true).ok()) << writer.status();
  EXPECT_TRUE(writer.close().ok()) << writer.status();
  const WriterStats stats = writer.stats();
  EXPECT_EQ(stats.dropped, 0u);
  EXPECT_EQ(stats.errors, 0u);
  EXPECT_EQ(stats.sent, stats.enqueued);
  EXPECT_EQ(stats.acknowledged, stats.enqueued);
  EXPECT_EQ(stats.buffered_bytes, 0u);

  const auto runs = ReadLogdir(daemon_->logdir());
  ASSERT_TRUE(runs.count("e2e/all")) << "runs found: " << runs.size();
  const std::vector<tb::Event>& run = runs.at("e2e/all");
  const auto loss = Points(run, "loss");
  ASSERT_EQ(loss.size(), 100u);
  for (int64_t step = 0; step < 100; ++step) {
    EXPECT_EQ(loss[static_cast<size_t>(step)].first, step);
    EXPECT_EQ(loss[static_cast<size_t>(step)].second, 0.5f * static_cast<float>(step));
  }
  ASSERT_TRUE(runs.count("e2e/all/train"));
  EXPECT_EQ(Points(runs.at("e2e/all/train"), "acc").size(), 100u);
  ASSERT_TRUE(runs.count("e2e/all/losses_a"));
  ASSERT_TRUE(runs.count("e2e/all/losses_b"));
  const auto losses_b = Points(runs.at("e2e/all/losses_b"), "losses");
  ASSERT_EQ(losses_b.size(), 10u);
  EXPECT_EQ(losses_b[3].second, 2.0f);

  EXPECT_EQ(CountTag(run, "hist/float"), 2);
  EXPECT_EQ(CountTag(run, "hist/double"), 1);
  EXPECT_EQ(CountTag(run, "hist/int"), 1);
  EXPECT_EQ(CountTag(run, "hist/half"), 1);
  EXPECT_EQ(CountTag(run, "image/rgb"), 1);
  EXPECT_EQ(CountTag(run, "notes"), 1);
  EXPECT_EQ(CountTag(run, "sound"), 1);
  EXPECT_EQ(CountTag(run, "pr"), 1);
  EXPECT_GE(CountTag(run, "_hparams_/"), 1);
  EXPECT_EQ(CountTag(run, "custom_scalars__config__"), 1);
  int graphs = 0;
  for (const tb::Event& event : run) graphs += event.has_graph_def() ? 1 : 0;
  EXPECT_EQ(graphs, 1);
}

TEST_F(WriterE2eTest, FlushIsABarrierBeforeClose) {
  auto opened = Writer::Open(OptionsFor(*daemon_, "e2e/flush"));
  ASSERT_TRUE(opened.ok()) << opened.status();
  for (int64_t step = 0; step < 1000; ++step) {
    ASSERT_TRUE((*opened)->scalar("x", step, 1.0f).ok());
  }
  ASSERT_TRUE((*opened)->flush().ok()) << (*opened)->status();
  // Visible to a reader now, with the writer still open.
  const auto runs = ReadLogdir(daemon_->logdir());
  ASSERT_TRUE(runs.count("e2e/flush"));
  EXPECT_EQ(Points(runs.at("e2e/flush"), "x").size(), 1000u);
  EXPECT_TRUE((*opened)->close().ok());
}

// Sockets this process has open: the Writers' connections to tblogd.
int OpenSockets() {
  int count = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    std::error_code link_error;
    const std::filesystem::path target = std::filesystem::read_symlink(entry.path(), link_error);
    if (!link_error && target.string().rfind("socket:", 0) == 0) ++count;
  }
  return count;
}

// A trainer keeps its closed Writer until it exits. The Writer must not keep
// its connection meanwhile: tblogd's shutdown waits for its clients'
// connections to close, and an idle one was noticed only at gRPC's 5 s
// backup poll, so SIGTERM took seconds instead of milliseconds.
// A lone record goes out at once when nothing is in flight, and the daemon
// hands it to the OS as its queue drains: it is in the file with no flush(),
// although batch_delay (an hour here) would hold a batch that long. Then,
// while records follow each other, every one still arrives, in order.
TEST_F(WriterE2eTest, ALoneScalarReachesTheFileWithoutAFlush) {
  WriterOptions options = OptionsFor(*daemon_, "e2e/lone");
  options.batch_delay = absl::Hours(1);
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  auto points_in_file = [&] {
    auto runs = ReadLogdir(daemon_->logdir());
    return Points(runs["e2e/lone"], "lone").size();
  };
  for (size_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE((*writer)->scalar("lone", static_cast<int64_t>(n), 1.0f).ok());
    // Generous: milliseconds on an idle machine; the bound only catches a
    // record held for batch_delay.
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (points_in_file() < n && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(2));
    ASSERT_EQ(points_in_file(), n) << "scalar " << n << " not in the file without a flush";
  }
  for (int64_t step = 4; step <= 2000; ++step) {
    ASSERT_TRUE((*writer)->scalar("lone", step, 2.0f).ok());
  }
  ASSERT_TRUE((*writer)->close().ok());
  auto runs = ReadLogdir(daemon_->logdir());
  const auto points = Points(runs["e2e/lone"], "lone");
  ASSERT_EQ(points.size(), 2000u);
  for (size_t i = 0; i < points.size(); ++i) EXPECT_EQ(points[i].first, static_cast<int64_t>(i + 1));
}

TEST_F(WriterE2eTest, ClosedWriterDropsItsConnectionSoSigtermIsQuick) {
  const int sockets_before = OpenSockets();
  auto opened = Writer::Open(OptionsFor(*daemon_, "e2e/closed"));
  ASSERT_TRUE(opened.ok()) << opened.status();
  // The run is open, so the connection is up: the count sees it.
  EXPECT_GT(OpenSockets(), sockets_before);
  for (int64_t step = 0; step < 100; ++step) {
    ASSERT_TRUE((*opened)->scalar("x", step, 1.0f).ok());
  }
  ASSERT_TRUE((*opened)->close().ok()) << (*opened)->status();
  // The socket closes within moments; the generous bound is for a loaded box.
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  int sockets = OpenSockets();
  while (sockets > sockets_before && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
    sockets = OpenSockets();
  }
  EXPECT_LE(sockets, sockets_before) << "the closed Writer still holds a connection";

  const absl::Time sigterm = absl::Now();
  EXPECT_TRUE(daemon_->Stop().ok());  // exit status 0: drained cleanly
  const absl::Duration took = absl::Now() - sigterm;
  RecordProperty("sigterm_to_exit_ms", static_cast<int>(absl::ToInt64Milliseconds(took)));
  std::printf("tblogd exited %s after SIGTERM, a closed Writer still alive\n",
              absl::FormatDuration(took).c_str());
}

TEST_F(WriterE2eTest, RejectedRecordIsReportedAndItsNeighboursWritten) {
  auto opened = Writer::Open(OptionsFor(*daemon_, "e2e/rejected"));
  ASSERT_TRUE(opened.ok()) << opened.status();
  Writer& writer = **opened;
  ASSERT_TRUE(writer.scalar("good", 1, 1.0f).ok());
  ASSERT_TRUE(writer.text("bad\x01tag", 1, "control characters are not allowed in tags").ok());
  ASSERT_TRUE(writer.scalar("good", 2, 2.0f).ok());
  const absl::Status flushed = writer.flush();
  EXPECT_TRUE(absl::IsInvalidArgument(flushed)) << flushed;
  EXPECT_EQ(writer.status(), flushed);
  EXPECT_EQ(writer.stats().errors, 1u);
  // The writer goes on after a rejected record.
  ASSERT_TRUE(writer.scalar("good", 3, 3.0f).ok());
  EXPECT_EQ(writer.close(), flushed);
  const auto runs = ReadLogdir(daemon_->logdir());
  ASSERT_TRUE(runs.count("e2e/rejected"));
  EXPECT_EQ(Points(runs.at("e2e/rejected"), "good").size(), 3u);
}

// A record no request to the daemon could carry (above its default
// --max-message-size, 64 MiB) is refused when it is logged, naming it: the
// daemon would refuse it with RESOURCE_EXHAUSTED at every resend (before:
// the stream retried it forever and flush() never returned). The writer goes
// on, and its stream with it.
TEST_F(WriterE2eTest, ARecordTooLargeForARequestIsRefusedWhenLogged) {
  WriterOptions options = OptionsFor(*daemon_, "e2e/too_large");
  options.shm_socket = "off";  // the values travel in the message
  auto opened = Writer::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Writer& writer = **opened;
  ASSERT_TRUE(writer.scalar("good", 1, 1.0f).ok());
  const std::vector<float> values((size_t{64} << 20) / sizeof(float) + 1, 0.5f);
  const absl::Status refused = writer.histogram("huge", 1, values);
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_NE(refused.message().find("\"huge\""), std::string::npos) << refused;
  EXPECT_NE(refused.message().find("smaller pieces"), std::string::npos) << refused;
  // Just below the limit goes through.
  const std::vector<float> fits((size_t{62} << 20) / sizeof(float), 0.25f);
  ASSERT_TRUE(writer.histogram("large", 1, fits).ok());
  ASSERT_TRUE(writer.scalar("good", 2, 2.0f).ok());
  EXPECT_TRUE(writer.flush().ok());
  EXPECT_TRUE(writer.status().ok()) << writer.status();
  EXPECT_EQ(writer.stats().reconnects, 0u);
  EXPECT_TRUE(writer.close().ok());
  const auto runs = ReadLogdir(daemon_->logdir());
  ASSERT_TRUE(runs.count("e2e/too_large"));
  EXPECT_EQ(Points(runs.at("e2e/too_large"), "good").size(), 2u);
  EXPECT_EQ(CountTag(runs.at("e2e/too_large"), "large"), 1);
  EXPECT_EQ(CountTag(runs.at("e2e/too_large"), "huge"), 0);
}

// WriterOptions::max_record_bytes is the limit checked (set to fit a daemon
// started with another --max-message-size): here 1 MiB.
TEST_F(WriterE2eTest, TheRecordLimitIsTheWritersOption) {
  WriterOptions options = OptionsFor(*daemon_, "e2e/record_limit");
  options.shm_socket = "off";
  options.max_record_bytes = size_t{1} << 20;
  auto opened = Writer::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Writer& writer = **opened;
  const std::vector<float> over((size_t{2} << 20) / sizeof(float), 0.5f);
  const absl::Status refused = writer.histogram("over", 1, over);
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_NE(refused.message().find("1048576"), std::string::npos) << refused;
  const std::vector<float> under((size_t{1} << 18) / sizeof(float), 0.25f);
  ASSERT_TRUE(writer.histogram("under", 1, under).ok());
  EXPECT_TRUE(writer.close().ok());
  const auto runs = ReadLogdir(daemon_->logdir());
  ASSERT_TRUE(runs.count("e2e/record_limit"));
  EXPECT_EQ(CountTag(runs.at("e2e/record_limit"), "under"), 1);
  EXPECT_EQ(CountTag(runs.at("e2e/record_limit"), "over"), 0);
}

// A daemon started with a smaller --max-message-size (here 4 MiB) tells the
// writer at OpenRun (OpenRunResponse.max_message_bytes): a record that no
// request could carry is refused when it is logged, naming the limit, and a
// large record that fits alone goes in a batch of its own. Before, the
// writer sent them, the daemon refused the request with RESOURCE_EXHAUSTED
// at every resend, and flush() never returned.
TEST_F(WriterE2eTest, TheWriterLearnsTheDaemonsMessageLimit) {
  ASSERT_TRUE(daemon_->Stop(SIGTERM).ok());
  DaemonProcess::Options small;
  small.extra_args = {"--max-message-size", "4MiB"};
  auto daemon = DaemonProcess::Start(small);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  daemon_ = std::move(*daemon);
  WriterOptions options = OptionsFor(*daemon_, "e2e/learnt_limit");
  options.shm_socket = "off";  // the values travel in the message
  options.max_batch_bytes = size_t{2} << 20;
  auto opened = Writer::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Writer& writer = **opened;
  ASSERT_TRUE(writer.scalar("good", 1, 1.0f).ok());
  const std::vector<float> over((size_t{3} << 20) / sizeof(float) + 1024, 0.5f);
  const absl::Status refused = writer.histogram("over", 1, over);
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_NE(refused.message().find("3145728"), std::string::npos) << refused;  // 4 MiB - 1 MiB
  // 1.9 MB, then 2.9 MB: together more than a request holds, each alone not.
  const std::vector<float> first((size_t{19} << 20) / 10 / sizeof(float), 0.25f);
  const std::vector<float> second((size_t{29} << 20) / 10 / sizeof(float), 0.75f);
  ASSERT_TRUE(writer.histogram("fits", 1, first).ok());
  ASSERT_TRUE(writer.histogram("fits", 2, second).ok());
  ASSERT_TRUE(writer.scalar("good", 2, 2.0f).ok());
  EXPECT_TRUE(writer.flush().ok()) << writer.status();
  EXPECT_TRUE(writer.status().ok()) << writer.status();
  EXPECT_EQ(writer.stats().reconnects, 0u);
  EXPECT_TRUE(writer.close().ok());
  const auto runs = ReadLogdir(daemon_->logdir());
  ASSERT_TRUE(runs.count("e2e/learnt_limit"));
  EXPECT_EQ(Points(runs.at("e2e/learnt_limit"), "good").size(), 2u);
  EXPECT_EQ(CountTag(runs.at("e2e/learnt_limit"), "fits"), 2);
  EXPECT_EQ(CountTag(runs.at("e2e/learnt_limit"), "over"), 0);
}

// Steps 0..n-1 of `tag` exactly once each, in order.
void ExpectEachStepOnce(const std::vector<tb::Event>& events, const std::string& tag, int64_t n) {
  const auto points = Points(events, tag);
  ASSERT_EQ(points.size(), static_cast<size_t>(n));
  for (int64_t step = 0; step < n; ++step) {
    ASSERT_EQ(points[static_cast<size_t>(step)].first, step);
  }
}

// Two processes' worth of writers (two Writers, two streams, two writer ids)
// into one run at once: one run directory, each writer's points all there,
// once, in the order that writer sent them; the histograms interleaved with
// the scalars of the same writer keep their place too. Each writer's close()
// releases its hold; the run ends with the last one (tblog.proto, "Leases").
TEST_F(WriterE2eTest, TwoWritersIntoOneRunKeepEachWritersOrder) {
  constexpr int64_t kSteps = 3000;
  auto first = Writer::Open(OptionsFor(*daemon_, "e2e/shared"));
  auto second = Writer::Open(OptionsFor(*daemon_, "e2e/shared"));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_NE((*first)->writer_id(), (*second)->writer_id());
  auto stream = [&](Writer& writer, const std::string& rank) {
    const std::vector<float> weights(1000, 0.5f);
    for (int64_t step = 0; step < kSteps; ++step) {
      ASSERT_TRUE(writer.scalar("loss/" + rank, step, static_cast<float>(step)).ok());
      if (step % 500 == 0) {
        ASSERT_TRUE(writer.histogram("weights/" + rank, step, std::span<const float>(weights)).ok());
      }
    }
    ASSERT_TRUE(writer.flush().ok()) << writer.status();
  };
  std::thread a([&] { stream(**first, "rank0"); });
  std::thread b([&] { stream(**second, "rank1"); });
  a.join();
  b.join();
  ASSERT_TRUE((*second)->close().ok()) << (*second)->status();
  ASSERT_TRUE((*first)->close().ok()) << (*first)->status();

  const auto runs = ReadLogdir(daemon_->logdir());
  ASSERT_EQ(runs.count("e2e/shared"), 1u);
  for (const auto& [name, events] : runs) {
    EXPECT_TRUE(name == "e2e/shared") << "unexpected run " << name;
  }
  const auto& events = runs.at("e2e/shared");
  for (const std::string rank : {"rank0", "rank1"}) {
    ExpectEachStepOnce(events, "loss/" + rank, kSteps);
    const auto points = Points(events, "loss/" + rank);
    for (int64_t step = 0; step < kSteps; ++step) {
      EXPECT_EQ(points[static_cast<size_t>(step)].second, static_cast<float>(step));
    }
    EXPECT_EQ(CountTag(events, "weights/" + rank), kSteps / 500);
  }
}

TEST_F(WriterE2eTest, NothingLostOrDuplicatedAcrossADaemonRestart) {
  auto opened = Writer::Open(OptionsFor(*daemon_, "e2e/restart"));
  ASSERT_TRUE(opened.ok()) << opened.status();
  Writer& writer = **opened;
  for (int64_t step = 0; step < 500; ++step) ASSERT_TRUE(writer.scalar("x", step, 1.0f).ok());
  ASSERT_TRUE(writer.flush().ok()) << writer.status();
  for (int64_t step = 500; step < 700; ++step) ASSERT_TRUE(writer.scalar("x", step, 1.0f).ok());

  const std::string logdir = daemon_->logdir();
  const std::string socket = daemon_->socket_path();
  ASSERT_TRUE(daemon_->Stop(SIGTERM).ok());
  // Buffered while the daemon is down.
  for (int64_t step = 700; step < 1000; ++step) ASSERT_TRUE(writer.scalar("x", step, 1.0f).ok());
  auto restarted = StartAgain(logdir, socket);
  ASSERT_TRUE(restarted.ok()) << restarted.status();

  EXPECT_TRUE(writer.flush().ok()) << writer.status();
  EXPECT_TRUE(writer.close().ok()) << writer.status();
  EXPECT_GE(writer.stats().reconnects, 1u);
  const auto runs = ReadLogdir(logdir);
  ASSERT_TRUE(runs.count("e2e/restart"));
  ExpectEachStepOnce(runs.at("e2e/restart"), "x", 1000);
  daemon_ = std::move(*restarted);
}

TEST_F(WriterE2eTest, DurableAcksSurviveADaemonCrash) {
  WriterOptions options = OptionsFor(*daemon_, "e2e/crash");
  options.retain_until = AckLevel::kDurable;
  auto opened = Writer::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Writer& writer = **opened;
  for (int64_t step = 0; step < 300; ++step) ASSERT_TRUE(writer.scalar("x", step, 1.0f).ok());
  ASSERT_TRUE(writer.flush(/*sync=*/true).ok()) << writer.status();
  for (int64_t step = 300; step < 600; ++step) ASSERT_TRUE(writer.scalar("x", step, 1.0f).ok());

  const std::string logdir = daemon_->logdir();
  const std::string socket = daemon_->socket_path();
  EXPECT_FALSE(daemon_->Stop(SIGKILL).ok());  // a crash: killed by signal 9
  for (int64_t step = 600; step < 800; ++step) ASSERT_TRUE(writer.scalar("x", step, 1.0f).ok());
  auto restarted = StartAgain(logdir, socket);
  ASSERT_TRUE(restarted.ok()) << restarted.status();

  EXPECT_TRUE(writer.flush(/*sync=*/true).ok()) << writer.status();
  EXPECT_TRUE(writer.close().ok()) << writer.status();
  const auto runs = ReadLogdir(logdir);
  ASSERT_TRUE(runs.count("e2e/crash"));
  ExpectEachStepOnce(runs.at("e2e/crash"), "x", 800);
  daemon_ = std::move(*restarted);
}

TEST_F(WriterE2eTest, TheExampleTrainerLogsARun) {
  const std::string command = std::string(TBLOG_BINARY_DIR "/client/tblog_train_example ") +
                              daemon_->target() + " 2>&1";
  std::FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[256];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  ASSERT_EQ(pclose(pipe), 0) << output;
  const size_t at = output.find("run: ");
  ASSERT_NE(at, std::string::npos) << output;
  const std::string run_path = output.substr(at + 5, output.find('\n', at) - at - 5);
  EXPECT_EQ(run_path.rfind("example/", 0), 0u) << run_path;

  const auto runs = ReadLogdir(daemon_->logdir());
  ASSERT_TRUE(runs.count(run_path)) << output;
  ASSERT_TRUE(runs.count(run_path + "/train")) << output;
  ASSERT_TRUE(runs.count(run_path + "/validation")) << output;
  EXPECT_EQ(Points(runs.at(run_path + "/train"), "loss").size(), 200u);
  EXPECT_EQ(Points(runs.at(run_path + "/validation"), "accuracy").size(), 10u);
  EXPECT_EQ(CountTag(runs.at(run_path), "weights/layer1"), 10);
  EXPECT_EQ(CountTag(runs.at(run_path), "samples/gradient"), 1);
  EXPECT_EQ(CountTag(runs.at(run_path), "notes"), 1);
  EXPECT_GE(CountTag(runs.at(run_path), "_hparams_/"), 1);
}

}  // namespace
}  // namespace tblog
