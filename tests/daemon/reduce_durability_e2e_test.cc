// Crash durability of reductions against the real tblogd (README
// "Reductions", daemon/contribution_record.h): ranks (C++ client writers)
// log a MEAN scalar, a COUNT scalar and a MERGE exponential histogram per
// step into one run while the daemon that writes the run is killed with
// SIGKILL at random points and restarted on the same logdir. Every step's
// point is written once, in order, with all its contributors: the mean of
// every rank's value, a count equal to the ranks, the histogram of every
// rank's values. The acknowledged contributions of the points pending at a
// kill come back from the files (never counted twice when resent).
#include <signal.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "support/upstream_fixture.h"
#include "tblog/client.h"

namespace tblog {
namespace {

namespace fs = std::filesystem;
using ::tblog::testing::DaemonProcess;

constexpr char kRun[] = "job/durable";
constexpr int kValuesPerHistogram = 32;

// Rank `rank`'s histogram values at `step`: small integers, so that sums are
// exact in any order.
std::vector<float> HistogramValues(int rank, int64_t step) {
  std::vector<float> values;
  for (int i = 0; i < kValuesPerHistogram; ++i) {
    values.push_back(static_cast<float>((rank * 7 + step + i) % 13) - 6.0f);
  }
  return values;
}

using Point = ::tblog::testing::WrittenPoint;

class ReduceDurabilityE2eTest : public ::tblog::testing::UpstreamFixture {
 protected:
  absl::StatusOr<std::unique_ptr<DaemonProcess>> StartWriter() {
    return StartDaemon("writer", {"--flush-interval", "50ms", "--fsync", "flush"});
  }

  // tag -> step -> the points written there, in file order; each tag's
  // steps must go forward.
  ::tblog::testing::WrittenPoints PointsByTag() const {
    const fs::path run = RunDirOf("writer", kRun);
    for (const auto& [tag, steps] : ::tblog::testing::StepsByTag(run)) {
      for (size_t i = 1; i < steps.size(); ++i) {
        EXPECT_GT(steps[i], steps[i - 1]) << tag << ": a step back";
      }
    }
    return ::tblog::testing::ReadPoints(run);
  }
};

TEST_F(ReduceDurabilityE2eTest, KillNineOfTheWritingDaemonLosesNoReducedPoint) {
  constexpr int kRanks = 6;
  constexpr int64_t kSteps = 400;
  auto daemon = StartWriter();
  ASSERT_TRUE(daemon.ok()) << daemon.status();

  std::vector<absl::Status> results(kRanks);
  std::atomic<int> writing{kRanks};
  std::atomic<int> flushed{0};
  std::atomic<int> opened{0};  // ranks whose Writer::Open has returned
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < kRanks; ++rank) {
    ranks.emplace_back([&, rank] {
      WriterOptions options = DurableOptions("writer", kRun, absl::StrCat("rank-", rank));
      options.reduce_group_size = kRanks;
      auto writer = Writer::Open(options);
      opened.fetch_add(1);
      if (!writer.ok()) {
        results[rank] = writer.status();
        writing.fetch_sub(1);
        flushed.fetch_add(1);
        return;
      }
      // All ranks write together, so the kills below come while all of them
      // write, however long one rank's open took (its retries after the
      // first kill; on a loaded machine under TSan, seconds).
      while (opened.load() < kRanks) absl::SleepFor(absl::Milliseconds(1));
      for (int64_t step = 0; step < kSteps; ++step) {
        const float value = static_cast<float>(rank) + static_cast<float>(step);
        (void)(*writer)->scalar("loss", step, value, ReduceOptions{.op = v1::REDUCE_OP_MEAN});
        (void)(*writer)->scalar("ranks", step, 1.0f, ReduceOptions{.op = v1::REDUCE_OP_COUNT});
        (void)(*writer)->histogram(
            "grad", step, HistogramValues(rank, step),
            HistogramOptions{.layout = v1::HISTOGRAM_LAYOUT_EXPONENTIAL,
                             .reduce = {.op = v1::REDUCE_OP_MERGE}});
        absl::SleepFor(absl::Milliseconds(3));
      }
      writing.fetch_sub(1);
      // Every rank's points in the files before any rank leaves: after a
      // restart the daemon knows only the writers that came back, so a rank
      // that closes first could close the run (writing its pending points
      // from what arrived) before a slower rank has reconnected.
      results[rank] = (*writer)->flush();
      flushed.fetch_add(1);
      while (flushed.load() < kRanks) absl::SleepFor(absl::Milliseconds(5));
      if (results[rank].ok()) results[rank] = (*writer)->close();
      // A rank that had nothing left to resend after the last restart never
      // reopened the run there, so the others' closes closed it (noted in the
      // report; the leases' business, not the reductions').
      if (absl::IsFailedPrecondition(results[rank]) &&
          absl::StrContains(results[rank].message(), "is closed")) {
        results[rank] = absl::OkStatus();
      }
    });
  }
  // The first kill comes while the ranks open: Writer::Open tries its
  // OpenRun again until the daemon is back (open_timeout). The others hit
  // the run being written, however slow the opens (TSan, a loaded machine).
  std::mt19937 random(2026);
  absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(0, 20)(random)));
  EXPECT_FALSE((*daemon)->Stop(SIGKILL).ok());  // killed by signal 9
  daemon = StartWriter();
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  int kills = 1;
  while (opened.load() < kRanks) absl::SleepFor(absl::Milliseconds(5));
  while (writing.load() == kRanks && kills < 6) {
    absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(100, 400)(random)));
    EXPECT_FALSE((*daemon)->Stop(SIGKILL).ok());  // killed by signal 9
    daemon = StartWriter();
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    ++kills;
  }
  for (auto& rank : ranks) rank.join();
  for (int rank = 0; rank < kRanks; ++rank) {
    EXPECT_TRUE(results[rank].ok()) << rank << ": " << results[rank];
  }
  EXPECT_GE(kills, 2);

  const auto points = PointsByTag();
  int64_t wrong = 0;
  for (int64_t step = 0; step < kSteps; ++step) {
    double grad_sum = 0;
    for (int rank = 0; rank < kRanks; ++rank) {
      for (float v : HistogramValues(rank, step)) grad_sum += v;
    }
    const auto at = [&](const char* tag) -> const std::vector<Point>* {
      auto it = points.find(tag);
      if (it == points.end()) return nullptr;
      auto step_it = it->second.find(step);
      return step_it == it->second.end() ? nullptr : &step_it->second;
    };
    const auto* loss = at("loss");
    const auto* count = at("ranks");
    const auto* grad = at("grad");
    const bool ok = loss != nullptr && loss->size() == 1 && count != nullptr &&
                    count->size() == 1 && grad != nullptr && grad->size() == 1 &&
                    std::abs((*loss)[0].value - (static_cast<double>(step) + (kRanks - 1) / 2.0)) <
                        1e-3 &&
                    (*count)[0].value == kRanks &&
                    (*grad)[0].num == int64_t{kRanks} * kValuesPerHistogram &&
                    (*grad)[0].sum == grad_sum;
    if (!ok) {
      ++wrong;
      ADD_FAILURE_AT(__FILE__, __LINE__)
          << "step " << step << ": loss " << (loss ? loss->size() : 0) << " points"
          << (loss && !loss->empty() ? absl::StrCat(" (", (*loss)[0].value, ")") : "")
          << ", ranks " << (count && !count->empty() ? (*count)[0].value : -1) << ", grad num "
          << (grad && !grad->empty() ? (*grad)[0].num : -1);
      if (wrong > 10) break;
    }
  }
  EXPECT_EQ(wrong, 0) << "of " << kSteps << " steps, after " << kills << " kills";
  for (const char* tag : {"loss", "ranks", "grad"}) {
    EXPECT_EQ(points.count(tag) ? points.at(tag).size() : 0u, static_cast<size_t>(kSteps)) << tag;
  }
  std::printf("kills: %d; %d ranks x %lld steps\n", kills, kRanks,
              static_cast<long long>(kSteps));
  EXPECT_TRUE((*daemon)->Stop(SIGTERM).ok());
}

}  // namespace
}  // namespace tblog
