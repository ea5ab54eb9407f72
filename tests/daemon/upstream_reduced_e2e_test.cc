// `--upstream-forward reduced` (issue 11, README "Upstream mode") with real
// processes: two node tblogds write their runs themselves and send only the
// reduced records upstream, combined per step into partials under their own
// writer ids; the upstream tblogd writes the global point of each step.
// Ranks spread over the two nodes reduce MEAN, SUM, MIN, MAX and MERGE
// exponential histograms, and log records of their own. Node daemons and the
// upstream are killed with SIGKILL while they write: every step's point
// counts every rank exactly once, and every non-reduced point is in its
// node's files once.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "daemon_test_util.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "support/upstream_fixture.h"
#include "tblog/client.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog {
namespace {

namespace fs = std::filesystem;
using ::tblog::testing::DaemonProcess;
using ::tblog::testing::RssBytes;
using ::tblog::testing::ReadPoints;

constexpr char kRun[] = "job/reduced";
constexpr int kRanks = 4;

using Points = ::tblog::testing::WrittenPoints;

// Each step 0..steps-1 of `tag` once with `expected(step)`; else how not.
template <typename Expected>
void ExpectEachStep(const Points& points, const std::string& tag, int64_t steps,
                    Expected expected) {
  auto it = points.find(tag);
  ASSERT_NE(it, points.end()) << "no points of " << tag;
  int64_t missing = 0, doubled = 0, wrong = 0;
  std::string first_wrong;
  for (int64_t step = 0; step < steps; ++step) {
    auto at = it->second.find(step);
    if (at == it->second.end()) {
      ++missing;
      continue;
    }
    if (at->second.size() > 1) ++doubled;
    if (std::abs(at->second[0].value - expected(step)) > 1e-3) {
      if (wrong++ == 0) {
        first_wrong =
            absl::StrCat("step ", step, ": ", at->second[0].value, " for ", expected(step));
      }
    }
  }
  EXPECT_TRUE(missing == 0 && doubled == 0 && wrong == 0)
      << tag << ": " << steps << " steps: " << missing << " missing, " << doubled << " doubled, "
      << wrong << " wrong (" << first_wrong << ")";
}

class UpstreamReducedE2eTest : public ::tblog::testing::UpstreamFixture {
 public:
  UpstreamReducedE2eTest() {
    node_args_ = {"--upstream-forward", "reduced", "--flush-interval", "50ms", "--fsync", "flush",
                  "--reduce-timeout", "600s"};  // as the upstream's (upstream_fixture.h)
  }
  fs::path RunDirOf(const std::string& name) const { return UpstreamFixture::RunDirOf(name, kRun); }
  static std::string NodeOf(int rank) { return rank % 2 == 0 ? "node-a" : "node-b"; }

  WriterOptions Options(int rank) const {
    WriterOptions options = DurableOptions(NodeOf(rank), kRun, absl::StrCat("rank-", rank));
    options.reduce_group_size = kRanks;
    return options;
  }

  // One step of rank `rank`: reduced loss (MEAN of rank + step), count (SUM
  // of 1: the number of ranks counted), low (MIN), high (MAX), grad (MERGE of
  // rank + 1 values), and its own point "rank<r>/own" (not reduced).
  static void LogStep(Writer& writer, int rank, int64_t step) {
    const float value = static_cast<float>(rank + step);
    (void)writer.scalar("loss", step, value, ReduceOptions{.op = v1::REDUCE_OP_MEAN});
    (void)writer.scalar("count", step, 1.0f, ReduceOptions{.op = v1::REDUCE_OP_SUM});
    (void)writer.scalar("low", step, value, ReduceOptions{.op = v1::REDUCE_OP_MIN});
    (void)writer.scalar("high", step, value, ReduceOptions{.op = v1::REDUCE_OP_MAX});
    std::vector<float> grad(static_cast<size_t>(rank + 1), 0.25f * static_cast<float>(step + 1));
    (void)writer.histogram("grad", step, grad,
                           {.layout = v1::HISTOGRAM_LAYOUT_EXPONENTIAL,
                            .reduce = {.op = v1::REDUCE_OP_MERGE}});
    (void)writer.scalar(absl::StrCat("rank", rank, "/own"), step, value);
  }

  // Each rank, a thread of its own, opens its writer, logs `steps` steps
  // (LogStep) and closes: every Open and close must succeed.
  void WriteAndClose(int64_t steps) {
    std::vector<absl::Status> results(kRanks);
    std::vector<std::thread> ranks;
    for (int rank = 0; rank < kRanks; ++rank) {
      ranks.emplace_back([&, rank] {
        auto writer = Writer::Open(Options(rank));
        if (!writer.ok()) {
          results[rank] = writer.status();
          return;
        }
        for (int64_t step = 0; step < steps; ++step) LogStep(**writer, rank, step);
        results[rank] = (*writer)->close();
      });
    }
    for (auto& rank : ranks) rank.join();
    for (int rank = 0; rank < kRanks; ++rank) {
      EXPECT_TRUE(results[rank].ok()) << rank << ": " << results[rank];
    }
  }

  // The upstream run holds the global value of each of `steps` steps, once;
  // each node holds its ranks' own points once and no reduced point.
  void ExpectRuns(int64_t steps) {
    const Points upstream = ReadPoints(RunDirOf("upstream"));
    ExpectEachStep(upstream, "loss", steps, [](int64_t s) { return s + 1.5; });
    ExpectEachStep(upstream, "count", steps, [](int64_t) { return kRanks; });
    ExpectEachStep(upstream, "low", steps, [](int64_t s) { return s; });
    ExpectEachStep(upstream, "high", steps, [](int64_t s) { return s + kRanks - 1; });
    ExpectEachStep(upstream, "grad", steps, [](int64_t) { return 1 + 2 + 3 + 4; });
    for (int rank = 0; rank < kRanks; ++rank) {
      EXPECT_EQ(upstream.count(absl::StrCat("rank", rank, "/own")), 0u) << "rank " << rank;
    }
    for (const char* node : {"node-a", "node-b"}) {
      const Points local = ReadPoints(RunDirOf(node));
      for (const char* reduced : {"loss", "count", "low", "high", "grad"}) {
        EXPECT_EQ(local.count(reduced), 0u) << node << " wrote " << reduced;
      }
      for (int rank = 0; rank < kRanks; ++rank) {
        const std::string own = absl::StrCat("rank", rank, "/own");
        if (NodeOf(rank) != node) {
          EXPECT_EQ(local.count(own), 0u) << node << ": " << own;
          continue;
        }
        ExpectEachStep(local, own, steps, [rank](int64_t s) { return rank + s; });
      }
    }
  }
};

TEST_F(UpstreamReducedE2eTest, NodesWriteTheirRecordsAndTheUpstreamTheGlobalPoints) {
  constexpr int64_t kSteps = 300;
  Daemons daemons;
  ASSERT_NO_FATAL_FAILURE(StartUpstreamAndNodes(daemons));

  WriteAndClose(kSteps);
  // The writers closed: every batch was acknowledged, so every partial was.
  // The upstream writes a point once its group is complete.
  EXPECT_TRUE(daemons["upstream"]->Stop(SIGTERM).ok());
  ExpectRuns(kSteps);
  StopAll(daemons);
}

// The upstream is not there while the ranks write: the nodes write the ranks'
// own points, hold the reduced ones (no ack to the clients meanwhile) within
// a bounded memory, and send them once the upstream starts.
TEST_F(UpstreamReducedE2eTest, HoldsReducedPointsUntilTheUpstreamComes) {
  constexpr int64_t kSteps = 200;
  auto node_a = StartNode("node-a");
  ASSERT_TRUE(node_a.ok()) << node_a.status();
  auto node_b = StartNode("node-b");
  ASSERT_TRUE(node_b.ok()) << node_b.status();
  const int64_t rss_before = RssBytes((*node_a)->pid());
  std::vector<std::unique_ptr<Writer>> writers(kRanks);
  for (int rank = 0; rank < kRanks; ++rank) {
    auto writer = Writer::Open(Options(rank));
    ASSERT_TRUE(writer.ok()) << writer.status();
    writers[rank] = *std::move(writer);
  }
  for (int64_t step = 0; step < kSteps; ++step) {
    for (int rank = 0; rank < kRanks; ++rank) LogStep(*writers[rank], rank, step);
  }
  absl::SleepFor(absl::Seconds(1));
  // The nodes wrote the ranks' own points, and acknowledged nothing.
  const Points local = ReadPoints(RunDirOf("node-a"));
  ASSERT_TRUE(local.count("rank0/own"));
  EXPECT_EQ(local.at("rank0/own").size(), static_cast<size_t>(kSteps));
  EXPECT_FALSE(fs::exists(RunDirOf("upstream")));
  const int64_t rss_held = RssBytes((*node_a)->pid());
  EXPECT_LT(rss_held - rss_before, int64_t{64} << 20) << rss_before << " -> " << rss_held;
  std::printf("node-a RSS %lld -> %lld bytes while the upstream was away\n",
              static_cast<long long>(rss_before), static_cast<long long>(rss_held));

  auto upstream = StartUpstream();
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  for (int rank = 0; rank < kRanks; ++rank) {
    EXPECT_TRUE(writers[rank]->close().ok()) << rank << ": " << writers[rank]->status();
  }
  EXPECT_TRUE((*upstream)->Stop(SIGTERM).ok());
  ExpectRuns(kSteps);
  EXPECT_TRUE((*node_a)->Stop(SIGTERM).ok());
  EXPECT_TRUE((*node_b)->Stop(SIGTERM).ok());
}

// kill -9 of the victims at random points while the ranks write (each until
// the kills are over): after every writer's close succeeded, every step's
// point counts every rank once, and every rank's own point is in its node's
// files once.
void KillWhileWriting(UpstreamReducedE2eTest& test, const std::vector<std::string>& victims,
                      int kills, uint32_t seed) {
  UpstreamReducedE2eTest::Daemons daemons;
  ASSERT_NO_FATAL_FAILURE(test.StartUpstreamAndNodes(daemons));
  std::atomic<bool> kills_over{false};
  std::vector<absl::Status> results(kRanks);
  std::vector<int64_t> steps(kRanks, 0);
  std::vector<std::unique_ptr<Writer>> writers(kRanks);
  std::atomic<int64_t> shared_steps{0};  // every rank logs the same steps
  std::vector<std::thread> ranks;
  // Once the kills are over, every rank writes through the same last step
  // (kAfter past the furthest one), so every point gets its whole group.
  constexpr int64_t kAfter = 200;
  std::atomic<int64_t> stop_at{-1};
  for (int rank = 0; rank < kRanks; ++rank) {
    ranks.emplace_back([&, rank] {
      auto writer = Writer::Open(test.Options(rank));
      if (!writer.ok()) {
        results[rank] = writer.status();
        return;
      }
      int64_t step = 0;
      for (;; ++step) {
        if (stop_at.load() < 0 && kills_over.load()) {
          int64_t expected = -1;
          stop_at.compare_exchange_strong(expected, shared_steps.load() + kAfter);
        }
        if (stop_at.load() >= 0 && step >= stop_at.load()) break;
        UpstreamReducedE2eTest::LogStep(**writer, rank, step);
        int64_t seen = shared_steps.load();
        while (seen < step + 1 && !shared_steps.compare_exchange_weak(seen, step + 1)) {
        }
        if (step % 10 == 0) absl::SleepFor(absl::Milliseconds(5));
      }
      steps[rank] = step;
      writers[rank] = *std::move(writer);
    });
  }
  std::mt19937 random(seed);
  std::map<std::string, int> killed;
  for (int kill = 0; kill < kills; ++kill) {
    absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(150, 600)(random)));
    const std::string& victim =
        victims[std::uniform_int_distribution<size_t>(0, victims.size() - 1)(random)];
    EXPECT_FALSE(daemons[victim]->Stop(SIGKILL).ok());  // killed by signal 9
    ++killed[victim];
    auto restarted = victim == "upstream" ? test.StartUpstream() : test.StartNode(victim);
    ASSERT_TRUE(restarted.ok()) << victim << ": " << restarted.status();
    daemons[victim] = *std::move(restarted);
  }
  kills_over.store(true);
  for (auto& rank : ranks) rank.join();
  for (int rank = 0; rank < kRanks; ++rank) {
    ASSERT_TRUE(results[rank].ok()) << rank << ": " << results[rank];
    ASSERT_NE(writers[rank], nullptr);
    EXPECT_TRUE(writers[rank]->close().ok()) << rank << ": " << writers[rank]->status();
    EXPECT_EQ(steps[rank], steps[0]) << rank;
  }
  std::printf("kills:");
  for (const auto& [name, n] : killed) std::printf(" %s %d", name.c_str(), n);
  std::printf("; steps per rank %lld\n", static_cast<long long>(steps[0]));
  // Stopping the upstream writes its pending points (their groups are whole).
  EXPECT_TRUE(daemons["upstream"]->Stop(SIGTERM).ok());
  test.ExpectRuns(steps[0]);
  UpstreamReducedE2eTest::StopAll(daemons);
}

// Two kills of one node close together once lost a rank's contributions
// over hundreds of steps: the restarted node acknowledged the resent batches
// from its resumed sequences before taking them again, and the next kill
// took their partials with it (NodeReduce::WriterView::reached).
TEST_F(UpstreamReducedE2eTest, KillNineOfNodesCountsEveryRankOnce) {
  KillWhileWriting(*this, {"node-a", "node-b"}, 6, 20261201);
}

// The full guarantee, with the upstream killed too: it restores the
// contributions it acknowledged for pending points from its files
// (contribution_record.h, RunReductions::Restore).
TEST_F(UpstreamReducedE2eTest, KillNineOfNodesAndUpstreamCountsEveryRankOnce) {
  KillWhileWriting(*this, {"upstream", "node-a", "node-b"}, 8, 20261202);
}

}  // namespace
}  // namespace tblog
