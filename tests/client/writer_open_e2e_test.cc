// Writer::Open's first OpenRun against real tblogd processes
// (WriterOptions::open_timeout): tried again while no daemon listens yet or
// the daemon is killed and restarted (a sidecar starting after its trainer,
// a node daemon restarting while a rank opens); never tried again when the
// daemon answers with a final code; a daemon that never comes fails Open
// after open_timeout with UNAVAILABLE naming the address. Timings are
// asserted only as generous bounds.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/daemon_test_util.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "tblog/client.h"

namespace tblog {
namespace {

using ::tblog::testing::DaemonProcess;
using ::tblog::testing::TempDir;

class WriterOpenE2eTest : public ::testing::Test {
 protected:
  std::string Socket() const { return root_.path() + "/tblogd.sock"; }
  std::string Logdir() const { return root_.path() + "/logs"; }

  absl::StatusOr<std::unique_ptr<DaemonProcess>> StartDaemon() {
    DaemonProcess::Options options;
    options.logdir = Logdir();
    options.socket_path = Socket();
    options.log_path = absl::StrCat(Socket(), ".", ++starts_, ".log");
    return DaemonProcess::Start(options);
  }

  WriterOptions Options(const std::string& writer_id) const {
    WriterOptions options;
    options.target = "unix:" + Socket();
    options.run_path = "open/run";
    options.writer_id = writer_id;
    options.initial_backoff = absl::Milliseconds(20);
    options.max_backoff = absl::Milliseconds(200);
    options.batch_delay = absl::Milliseconds(5);
    return options;
  }

  TempDir root_;
  int starts_ = 0;
};

// Open() starts while nothing listens; the daemon starts a second later:
// Open() returns the writer, which writes.
TEST_F(WriterOpenE2eTest, OpenWaitsForADaemonThatStartsLater) {
  std::unique_ptr<DaemonProcess> daemon;
  absl::Status started;
  std::thread starter([&] {
    absl::SleepFor(absl::Seconds(1));
    auto process = StartDaemon();
    started = process.status();
    if (process.ok()) daemon = *std::move(process);
  });
  const absl::Time begin = absl::Now();
  auto writer = Writer::Open(Options("late"));
  const absl::Duration took = absl::Now() - begin;
  starter.join();
  ASSERT_TRUE(started.ok()) << started;
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_GE(took, absl::Milliseconds(900));  // it did wait for the daemon
  for (int64_t step = 0; step < 10; ++step) ASSERT_TRUE((*writer)->scalar("loss", step, 1.0f).ok());
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
  EXPECT_EQ(daemon::testing::ReadSummaryEvents(std::filesystem::path(Logdir()) / "open/run").size(),
            10u);
  std::printf("Open() returned %s after it started, the daemon 1 s after it\n",
              absl::FormatDuration(took).c_str());
  EXPECT_TRUE(daemon->Stop(SIGTERM).ok());
}

// Nothing ever listens: Open() fails once open_timeout has passed (not
// before), UNAVAILABLE, naming the address and the timeout.
TEST_F(WriterOpenE2eTest, OpenWithoutADaemonFailsAfterTheTimeoutNamingTheAddress) {
  WriterOptions options = Options("alone");
  options.open_timeout = absl::Seconds(1);
  const absl::Time begin = absl::Now();
  auto writer = Writer::Open(options);
  const absl::Duration took = absl::Now() - begin;
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kUnavailable) << writer.status();
  EXPECT_TRUE(absl::StrContains(writer.status().message(), "unix:" + Socket())) << writer.status();
  EXPECT_TRUE(absl::StrContains(writer.status().message(), "open_timeout=1s")) << writer.status();
  EXPECT_GE(took, absl::Seconds(1));
  // Generous: the timeout, plus the try under way (each fails at once here).
  EXPECT_LT(took, absl::Seconds(20));

  options.open_timeout = absl::ZeroDuration();  // one try
  writer = Writer::Open(options);
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kUnavailable) << writer.status();
  EXPECT_TRUE(absl::StrContains(writer.status().message(), "(1 try)")) << writer.status();
}

// The daemon answers with a final code: Open() fails at once with it, however
// long open_timeout is.
TEST_F(WriterOpenE2eTest, AFinalAnswerIsNotTriedAgain) {
  auto daemon = StartDaemon();
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  WriterOptions options = Options("bad");
  options.run_path = "../outside";
  options.open_timeout = absl::Seconds(120);
  const absl::Time begin = absl::Now();
  auto writer = Writer::Open(options);
  const absl::Duration took = absl::Now() - begin;
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kInvalidArgument) << writer.status();
  EXPECT_LT(took, absl::Seconds(60));  // not the 120 s of retries
  EXPECT_TRUE((*daemon)->Stop(SIGTERM).ok());
}

// The daemon is killed (SIGKILL) and restarted while ranks open, again and
// again: every Open() succeeds, and every rank's points are written.
TEST_F(WriterOpenE2eTest, OpensSurviveADaemonKilledWhileTheyOpen) {
  constexpr int kRanks = 6;
  constexpr int kKills = 4;
  auto daemon = StartDaemon();
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  std::atomic<int> opened{0};
  std::vector<absl::Status> results(kRanks);
  std::vector<std::thread> ranks;
  std::atomic<bool> go{false};
  for (int rank = 0; rank < kRanks; ++rank) {
    ranks.emplace_back([&, rank] {
      while (!go.load()) absl::SleepFor(absl::Milliseconds(1));
      // Ranks open one after another across the kills.
      absl::SleepFor(absl::Milliseconds(60 * rank));
      WriterOptions options = Options(absl::StrCat("rank-", rank));
      options.retain_until = AckLevel::kDurable;
      options.close_timeout = absl::Seconds(120);
      auto writer = Writer::Open(options);
      opened.fetch_add(1);
      if (!writer.ok()) {
        results[rank] = writer.status();
        return;
      }
      for (int64_t step = 0; step < 50; ++step) {
        (void)(*writer)->scalar(absl::StrCat("rank", rank, "/loss"), step, 1.0f);
      }
      results[rank] = (*writer)->flush();
      // The close may come after another rank's close closed the run on a
      // restarted daemon that knew only the ranks that came back (the leases'
      // business): flush() above proved the points are there.
      (void)(*writer)->close();
    });
  }
  go.store(true);
  int kills = 0;
  while (kills < kKills) {
    absl::SleepFor(absl::Milliseconds(20 + 40 * kills));
    EXPECT_FALSE((*daemon)->Stop(SIGKILL).ok());
    // The socket stays away a little while: the opens meet no daemon.
    absl::SleepFor(absl::Milliseconds(100));
    daemon = StartDaemon();
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    ++kills;
  }
  for (auto& rank : ranks) rank.join();
  for (int rank = 0; rank < kRanks; ++rank) {
    EXPECT_TRUE(results[rank].ok()) << rank << ": " << results[rank];
  }
  std::map<std::string, int> points;
  for (const auto& event :
       daemon::testing::ReadSummaryEvents(std::filesystem::path(Logdir()) / "open/run")) {
    for (const auto& value : event.summary().value()) ++points[value.tag()];
  }
  for (int rank = 0; rank < kRanks; ++rank) {
    EXPECT_EQ(points[absl::StrCat("rank", rank, "/loss")], 50) << rank;
  }
  EXPECT_TRUE((*daemon)->Stop(SIGTERM).ok());
}

}  // namespace
}  // namespace tblog
