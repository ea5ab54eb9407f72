// Upstream mode (issue 11, README "Upstream mode") with real processes: node
// tblogds started with --upstream forward everything their clients send to
// an upstream tblogd, which writes the run. Ranks spread over two nodes
// write one run; node daemons and the upstream are killed with SIGKILL and
// restarted while they write; the upstream goes away for a while. Read back
// with the project's reader: every point once, in order, nothing written by
// the nodes themselves.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon_test_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "request_builders.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "support/upstream_fixture.h"
#include "tblog/client.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog {
namespace {

namespace fs = std::filesystem;
using ::tblog::testing::DaemonProcess;
using ::tblog::testing::ExpectEachStepOnce;
using ::tblog::testing::RssBytes;
using ::tblog::testing::ReadPoints;
using ::tblog::testing::ScalarBatch;
using ::tblog::testing::StepsByTag;

constexpr char kRun[] = "job/run";

class UpstreamE2eTest : public ::tblog::testing::UpstreamFixture {
 public:
  WriterOptions Options(const std::string& node, const std::string& writer_id) const {
    return DurableOptions(node, kRun, writer_id);
  }

  fs::path RunDir() const { return RunDirOf("upstream", kRun); }

  // One thread per rank (results.size() of them, alternating between node-a
  // and node-b), each logging "loss" = rank + step for `steps` steps with
  // reduce MEAN over a group of all ranks, then flushing and, once every rank
  // has flushed, closing: its status goes to results[rank], and `writing`
  // counts down as ranks finish logging. Once per test.
  std::vector<std::thread> StartReducingRanks(int64_t steps, std::vector<absl::Status>& results,
                                              std::atomic<int>& writing) {
    std::vector<std::thread> ranks;
    for (size_t rank = 0; rank < results.size(); ++rank) {
      ranks.emplace_back([this, rank, steps, &results, &writing] {
        WriterOptions options =
            Options(rank % 2 == 0 ? "node-a" : "node-b", absl::StrCat("rank-", rank));
        options.reduce_group_size = static_cast<uint32_t>(results.size());
        auto writer = Writer::Open(options);
        if (!writer.ok()) {
          results[rank] = writer.status();
          writing.fetch_sub(1);
          flushed_.fetch_add(1);
          return;
        }
        for (int64_t step = 0; step < steps; ++step) {
          (void)(*writer)->scalar("loss", step, static_cast<float>(rank) + static_cast<float>(step),
                                  ReduceOptions{.op = v1::REDUCE_OP_MEAN});
          absl::SleepFor(absl::Milliseconds(3));
        }
        writing.fetch_sub(1);
        // Every rank's contributions in the upstream's files before any rank
        // leaves: a restarted upstream knows only the writers that came back,
        // so a rank's close could close the run, writing its pending points
        // from what arrived, before a slower rank had reconnected (seen under
        // load: 13 of 600 means without one rank). reduce_durability_e2e_test
        // does the same.
        results[rank] = (*writer)->flush();
        flushed_.fetch_add(1);
        while (flushed_.load() < static_cast<int>(results.size())) {
          absl::SleepFor(absl::Milliseconds(5));
        }
        if (results[rank].ok()) results[rank] = (*writer)->close();
      });
    }
    return ranks;
  }

  std::atomic<int> flushed_{0};  // ranks of StartReducingRanks that have flushed
};

// Four ranks on two nodes write one run: the upstream's files hold every
// point of every rank once, in order; the nodes write nothing themselves;
// GetRun through a node is the upstream's answer.
TEST_F(UpstreamE2eTest, RanksOnTwoNodesWriteOneRunUpstream) {
  constexpr int64_t kSteps = 3000;
  Daemons daemons;
  ASSERT_NO_FATAL_FAILURE(StartUpstreamAndNodes(daemons));

  std::vector<std::thread> ranks;
  std::vector<absl::Status> results(4);
  for (int rank = 0; rank < 4; ++rank) {
    ranks.emplace_back([&, rank] {
      const std::string node = rank % 2 == 0 ? "node-a" : "node-b";
      auto writer = Writer::Open(Options(node, absl::StrCat("rank-", rank)));
      if (!writer.ok()) {
        results[rank] = writer.status();
        return;
      }
      for (int64_t step = 0; step < kSteps; ++step) {
        (void)(*writer)->scalar(absl::StrCat("rank", rank, "/loss"), step, 1.0f / (1 + step));
      }
      results[rank] = (*writer)->close();
    });
  }
  for (auto& rank : ranks) rank.join();
  for (int rank = 0; rank < 4; ++rank) EXPECT_TRUE(results[rank].ok()) << rank << ": " << results[rank];

  const auto by_tag = StepsByTag(RunDir());
  for (int rank = 0; rank < 4; ++rank) ExpectEachStepOnce(by_tag, absl::StrCat("rank", rank, "/loss"), kSteps);
  // The nodes forward: no run directory of their own.
  for (const char* node : {"node-a", "node-b"}) {
    EXPECT_FALSE(fs::exists(fs::path(LogdirOf(node)) / kRun)) << node;
  }
  StopAll(daemons);
}

// Every RPC through a node daemon is answered as the upstream answers it:
// results, error codes and messages, the WriteBatch trailer, acks on the
// Write stream; a node draining on SIGTERM ends its streams UNAVAILABLE.
TEST_F(UpstreamE2eTest, EveryCallIsAnsweredAsTheUpstreamAnswersIt) {
  auto upstream = StartUpstream();
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  auto node = StartNode("node-a");
  ASSERT_TRUE(node.ok()) << node.status();
  auto stub = v1::TBLog::NewStub(
      grpc::CreateChannel("unix:" + SocketOf("node-a"), grpc::InsecureChannelCredentials()));
  auto deadline = [](grpc::ClientContext& context) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  };

  v1::OpenRunRequest open;
  open.set_run_path("api/run");
  open.set_writer_id("w");
  v1::OpenRunResponse opened;
  {
    grpc::ClientContext context;
    deadline(context);
    ASSERT_TRUE(stub->OpenRun(&context, open, &opened).ok());
  }
  EXPECT_EQ(opened.run_id(), "api/run");
  EXPECT_EQ(opened.directory(), (fs::path(LogdirOf("upstream")) / "api/run").string());

  v1::WriteResponse ack;
  {
    grpc::ClientContext context;
    deadline(context);
    ASSERT_TRUE(stub->WriteBatch(&context, ScalarBatch(opened.run_id(), "w", 1), &ack).ok());
    EXPECT_EQ(ack.written_sequence(), 1u);
  }
  {  // a gap: the upstream's OUT_OF_RANGE, its message naming the sequences
    grpc::ClientContext context;
    deadline(context);
    const grpc::Status status = stub->WriteBatch(&context, ScalarBatch(opened.run_id(), "w", 3), &ack);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << status.error_message();
  }
  {  // a bad record: INVALID_ARGUMENT, and the full response in the trailer
    v1::WriteRequest bad = ScalarBatch(opened.run_id(), "w", 2);
    bad.add_records()->set_tag("no-kind");  // a record of no kind
    grpc::ClientContext context;
    deadline(context);
    const grpc::Status status = stub->WriteBatch(&context, bad, &ack);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    const auto& trailers = context.GetServerTrailingMetadata();
    auto trailer = trailers.find("tblog-write-response-bin");
    ASSERT_NE(trailer, trailers.end());
    v1::WriteResponse full;
    ASSERT_TRUE(full.ParseFromArray(trailer->second.data(), static_cast<int>(trailer->second.size())));
    ASSERT_EQ(full.errors_size(), 1);
    EXPECT_EQ(full.errors(0).index(), 1u);
  }
  {  // the Write stream: batch 3 acknowledged with the upstream's sequence
    grpc::ClientContext context;
    auto stream = stub->Write(&context);
    ASSERT_TRUE(stream->Write(ScalarBatch(opened.run_id(), "w", 3)));
    v1::WriteResponse response;
    while (response.written_sequence() < 3 && stream->Read(&response)) {
    }
    EXPECT_EQ(response.written_sequence(), 3u);
    // SIGTERM drains the node: the stream ends UNAVAILABLE, the node exits 0.
    EXPECT_TRUE((*node)->Stop(SIGTERM).ok());
    while (stream->Read(&response)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  node = StartNode("node-a");
  ASSERT_TRUE(node.ok()) << node.status();
  stub = v1::TBLog::NewStub(
      grpc::CreateChannel("unix:" + SocketOf("node-a"), grpc::InsecureChannelCredentials()));
  {
    v1::FlushRequest flush;
    flush.set_run_id(opened.run_id());
    flush.set_writer_id("w");
    flush.set_through_sequence(3);
    flush.set_sync(true);
    v1::FlushResponse flushed;
    grpc::ClientContext context;
    deadline(context);
    EXPECT_TRUE(stub->Flush(&context, flush, &flushed).ok());
  }
  {
    v1::GetRunRequest get;
    get.set_run_id(opened.run_id());
    v1::RunInfo info;
    grpc::ClientContext context;
    deadline(context);
    ASSERT_TRUE(stub->GetRun(&context, get, &info).ok());
    EXPECT_EQ(info.records_written(), 3u);  // batches 1, 2 (its good record) and 3
    EXPECT_EQ(info.records_rejected(), 1u);
    get.set_run_id("no/such-run");
    grpc::ClientContext missing;
    deadline(missing);
    EXPECT_EQ(stub->GetRun(&missing, get, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    v1::ListRunsResponse runs;
    grpc::ClientContext context;
    deadline(context);
    ASSERT_TRUE(stub->ListRuns(&context, v1::ListRunsRequest(), &runs).ok());
    ASSERT_EQ(runs.runs_size(), 1);
    EXPECT_EQ(runs.runs(0).run_id(), "api/run");
  }
  {
    v1::CloseRunRequest close;
    close.set_run_id(opened.run_id());
    close.set_writer_id("w");
    v1::CloseRunResponse closed;
    grpc::ClientContext context;
    deadline(context);
    ASSERT_TRUE(stub->CloseRun(&context, close, &closed).ok());
    EXPECT_EQ(closed.run().state(), v1::RUN_STATE_CLOSED);
  }
  EXPECT_TRUE((*node)->Stop(SIGTERM).ok());
  EXPECT_TRUE((*upstream)->Stop(SIGTERM).ok());
}

// kill -9 of a node daemon and of the upstream, at random points, while four
// ranks on two nodes write (each until the kills are over): every point once,
// in order (no loss, no double), after every writer's close succeeded.
TEST_F(UpstreamE2eTest, KillNineOfNodesAndUpstreamLosesAndDoublesNothing) {
  constexpr int kKills = 8;
  Daemons daemons;
  ASSERT_NO_FATAL_FAILURE(StartUpstreamAndNodes(daemons));

  std::atomic<bool> kills_over{false};
  std::vector<std::thread> ranks;
  std::vector<absl::Status> results(4);
  std::vector<int64_t> steps(4, 0);
  std::vector<std::unique_ptr<Writer>> writers(4);
  for (int rank = 0; rank < 4; ++rank) {
    ranks.emplace_back([&, rank] {
      const std::string node = rank % 2 == 0 ? "node-a" : "node-b";
      auto writer = Writer::Open(Options(node, absl::StrCat("rank-", rank)));
      if (!writer.ok()) {
        results[rank] = writer.status();
        return;
      }
      int64_t step = 0;
      for (int64_t after = 0; after < 1000; after += kills_over.load() ? 1 : 0, ++step) {
        (void)(*writer)->scalar(absl::StrCat("rank", rank, "/loss"), step, 0.5f);
        if (step % 20 == 0) absl::SleepFor(absl::Milliseconds(2));  // spread over the kills
      }
      steps[rank] = step;
      writers[rank] = *std::move(writer);
    });
  }
  std::mt19937 random(20261130);
  const std::vector<std::string> victims = {"upstream", "node-a", "node-b"};
  std::map<std::string, int> killed;
  for (int kill = 0; kill < kKills; ++kill) {
    absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(100, 500)(random)));
    const std::string& victim = victims[std::uniform_int_distribution<size_t>(0, 2)(random)];
    EXPECT_FALSE(daemons[victim]->Stop(SIGKILL).ok());  // killed by signal 9
    ++killed[victim];
    auto restarted = victim == "upstream" ? StartUpstream() : StartNode(victim);
    ASSERT_TRUE(restarted.ok()) << victim << ": " << restarted.status();
    daemons[victim] = *std::move(restarted);
  }
  kills_over.store(true);
  for (auto& rank : ranks) rank.join();
  for (int rank = 0; rank < 4; ++rank) {
    ASSERT_TRUE(results[rank].ok()) << rank << ": " << results[rank];
    ASSERT_NE(writers[rank], nullptr);
    EXPECT_TRUE(writers[rank]->close().ok()) << rank << ": " << writers[rank]->status();
    EXPECT_GE(writers[rank]->stats().reconnects, 1u) << rank;
  }
  EXPECT_GE(killed["upstream"], 1);
  const auto by_tag = StepsByTag(RunDir());
  for (int rank = 0; rank < 4; ++rank) {
    ExpectEachStepOnce(by_tag, absl::StrCat("rank", rank, "/loss"), steps[rank]);
  }
  std::printf("kills: upstream %d, node-a %d, node-b %d; steps per rank %lld\n", killed["upstream"],
              killed["node-a"], killed["node-b"], static_cast<long long>(steps[0]));
  StopAll(daemons);
}

// Four ranks on two nodes log their loss with reduce MEAN (the records go
// upstream unchanged, and the upstream reduces across all ranks of all
// nodes), while the node daemons are killed with SIGKILL and restarted: the
// upstream run holds one point per step, the mean of the four ranks' values,
// and no contribution counted twice or missing.
TEST_F(UpstreamE2eTest, ReducedMeanOfRanksOnTwoNodesSurvivesNodeKills) {
  constexpr int64_t kSteps = 600;
  constexpr int kRanks = 4;
  Daemons daemons;
  ASSERT_NO_FATAL_FAILURE(StartUpstreamAndNodes(daemons));
  std::vector<absl::Status> results(kRanks);
  std::atomic<int> writing{kRanks};
  std::vector<std::thread> ranks = StartReducingRanks(kSteps, results, writing);
  std::mt19937 random(11);
  int kills = 0;
  while (writing.load() == kRanks && kills < 6) {
    absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(150, 400)(random)));
    const std::string victim = std::uniform_int_distribution<int>(0, 1)(random) == 0 ? "node-a" : "node-b";
    EXPECT_FALSE(daemons[victim]->Stop(SIGKILL).ok());
    auto restarted = StartNode(victim);
    ASSERT_TRUE(restarted.ok()) << restarted.status();
    daemons[victim] = *std::move(restarted);
    ++kills;
  }
  for (auto& rank : ranks) rank.join();
  for (int rank = 0; rank < kRanks; ++rank) EXPECT_TRUE(results[rank].ok()) << rank << ": " << results[rank];
  EXPECT_GE(kills, 2);
  const auto values = ReadPoints(RunDir());
  ASSERT_TRUE(values.count("loss"));
  int64_t wrong = 0;
  for (int64_t step = 0; step < kSteps; ++step) {
    auto it = values.at("loss").find(step);
    const bool once = it != values.at("loss").end() && it->second.size() == 1;
    // The mean of rank + step over ranks 0..3.
    if (!once || std::abs(it->second[0].value - (static_cast<double>(step) + 1.5)) > 1e-3) ++wrong;
  }
  EXPECT_EQ(wrong, 0) << "of " << kSteps << " steps, after " << kills << " node kills";
  EXPECT_EQ(values.at("loss").size(), static_cast<size_t>(kSteps));
  StopAll(daemons);
}

// The same with the upstream killed: the contributions it acknowledged to
// points it had not written yet come back from its files (contribution
// records, daemon/contribution_record.h), so every step's point is written
// once, in order, with all four ranks: no point missing, none twice.
// Without the resume scan's last steps (RunReductions::NoteWritten) this
// wrote 605-613 points for 600 steps: resent contributions of batches whose
// point was written before the crash made their point again.
TEST_F(UpstreamE2eTest, ReducedPointsAreNeverWrittenTwiceAcrossUpstreamKills) {
  constexpr int64_t kSteps = 600;
  constexpr int kRanks = 4;
  Daemons daemons;
  ASSERT_NO_FATAL_FAILURE(StartUpstreamAndNodes(daemons));
  std::vector<absl::Status> results(kRanks);
  std::atomic<int> writing{kRanks};
  std::vector<std::thread> ranks = StartReducingRanks(kSteps, results, writing);
  std::mt19937 random(12);
  int kills = 0;
  while (writing.load() == kRanks && kills < 3) {
    absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(200, 500)(random)));
    EXPECT_FALSE(daemons["upstream"]->Stop(SIGKILL).ok());
    auto upstream = StartUpstream();
    ASSERT_TRUE(upstream.ok()) << upstream.status();
    daemons["upstream"] = *std::move(upstream);
    ++kills;
  }
  for (auto& rank : ranks) rank.join();
  for (int rank = 0; rank < kRanks; ++rank) {
    // A rank with nothing left to resend after the last restart never
    // reopened the run there, so the others' closes may have closed it (the
    // leases' business: the restarted upstream knows only the writers that
    // came back).
    const bool closed_by_others = absl::IsFailedPrecondition(results[rank]) &&
                                  absl::StrContains(results[rank].message(), "is closed");
    EXPECT_TRUE(results[rank].ok() || closed_by_others) << rank << ": " << results[rank];
  }
  const auto by_tag = StepsByTag(RunDir());
  ExpectEachStepOnce(by_tag, "loss", kSteps);
  // Each the mean of the four ranks' rank + step: no contributor missing.
  const auto values = ReadPoints(RunDir());
  int64_t wrong = 0;
  std::string first_wrong;  // what the first few wrong steps hold
  for (const auto& [step, written] : values.at("loss")) {
    if (written.size() != 1 ||
        std::abs(written[0].value - (static_cast<double>(step) + 1.5)) > 1e-3) {
      if (++wrong <= 5) {
        absl::StrAppend(&first_wrong, " step ", step, ": ", written.size(), " points, ",
                        written[0].value, " for ", static_cast<double>(step) + 1.5, ";");
      }
    }
  }
  EXPECT_EQ(wrong, 0) << "of " << kSteps << " steps, after " << kills << " upstream kills:"
                      << first_wrong;
  std::printf("upstream kills: %d; reduced points written: %zu of %lld steps\n", kills,
              by_tag.at("loss").size(), static_cast<long long>(kSteps));
  StopAll(daemons);
}

// The upstream goes away while a rank writes: the node's memory stays
// bounded, the rank blocks once its own buffer is full, and when the
// upstream is back everything arrives once.
TEST_F(UpstreamE2eTest, UpstreamDownBlocksClientsWithBoundedNodeMemory) {
  constexpr int64_t kSteps = 200000;
  auto upstream = StartUpstream();
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  auto node = StartNode("node-a", {"--max-inflight-bytes", "8MiB"});
  ASSERT_TRUE(node.ok()) << node.status();
  WriterOptions options = Options("node-a", "rank-0");
  options.max_buffer_bytes = 1 << 20;
  options.max_batch_bytes = 64 << 10;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->scalar("loss", 0, 1.0f).ok());
  ASSERT_TRUE((*writer)->flush().ok()) << (*writer)->status();
  const int64_t rss_before = RssBytes((*node)->pid());

  EXPECT_FALSE((*upstream)->Stop(SIGKILL).ok());
  std::atomic<int64_t> logged{1};
  std::thread rank([&] {
    for (int64_t step = 1; step < kSteps; ++step) {
      (void)(*writer)->scalar("loss", step, 1.0f);
      logged.store(step + 1);
    }
  });
  // Blocked: the count stops moving well before the end.
  int64_t seen = -1;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    absl::SleepFor(absl::Seconds(1));
    const int64_t now = logged.load();
    if (now == seen) break;
    seen = now;
  }
  EXPECT_EQ(logged.load(), seen) << "the rank never blocked";
  EXPECT_LT(seen, kSteps);
  int64_t rss_down = 0;
  for (int i = 0; i < 3; ++i) {
    rss_down = std::max(rss_down, RssBytes((*node)->pid()));
    absl::SleepFor(absl::Milliseconds(500));
  }
  // Generous: the node holds nothing for a down upstream; its RSS is its
  // base plus the budget at most.
  EXPECT_LT(rss_down, rss_before + (64 << 20)) << "before " << rss_before << ", down " << rss_down;

  upstream = StartUpstream();
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  rank.join();
  EXPECT_EQ(logged.load(), kSteps);
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
  ExpectEachStepOnce(StepsByTag(RunDir()), "loss", kSteps);
  std::printf("node RSS: %lld bytes with the upstream up, at most %lld while it was down\n",
              static_cast<long long>(rss_before), static_cast<long long>(rss_down));
  EXPECT_TRUE((*node)->Stop(SIGTERM).ok());
  EXPECT_TRUE((*upstream)->Stop(SIGTERM).ok());
}

// The upstream is frozen (SIGSTOP: connected, reading nothing) while a rank
// sends far more than the node's budget in histograms: the node's memory
// stays within its budget and the transports' buffers, the rank's own buffer
// takes the rest, and once the upstream runs again every record arrives once.
TEST_F(UpstreamE2eTest, AFrozenUpstreamHoldsTheNodeWithinItsBudget) {
  constexpr int64_t kSteps = 3000;  // 64 KiB of values each: ~190 MiB in all
  auto upstream = StartUpstream();
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  auto node = StartNode("node-a", {"--max-inflight-bytes", "8MiB"});
  ASSERT_TRUE(node.ok()) << node.status();
  WriterOptions options = Options("node-a", "rank-0");
  options.max_buffer_bytes = size_t{256} << 20;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->flush().ok()) << (*writer)->status();
  const int64_t rss_before = RssBytes((*node)->pid());

  ASSERT_EQ(kill((*upstream)->pid(), SIGSTOP), 0);
  std::vector<float> values(16384);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 97);
  for (int64_t step = 0; step < kSteps; ++step) {
    ASSERT_TRUE((*writer)->histogram("weights", step, std::span<const float>(values)).ok());
  }
  int64_t rss_frozen = 0;
  for (int i = 0; i < 6; ++i) {
    absl::SleepFor(absl::Milliseconds(500));
    rss_frozen = std::max(rss_frozen, RssBytes((*node)->pid()));
  }
  ASSERT_EQ(kill((*upstream)->pid(), SIGCONT), 0);
  EXPECT_LT(rss_frozen, rss_before + (48 << 20)) << "before " << rss_before << ", frozen " << rss_frozen;
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
  ExpectEachStepOnce(StepsByTag(RunDir()), "weights", kSteps);
  std::printf("node RSS: %lld bytes before, at most %lld with the upstream frozen and ~190 MiB sent\n",
              static_cast<long long>(rss_before), static_cast<long long>(rss_frozen));
  EXPECT_TRUE((*node)->Stop(SIGTERM).ok());
  EXPECT_TRUE((*upstream)->Stop(SIGTERM).ok());
}

// The node presents its own token to an upstream that requires one: without
// it, the upstream's UNAUTHENTICATED reaches the client (final); with it,
// the rank writes. A token file that cannot be read fails the node's start.
TEST_F(UpstreamE2eTest, TheNodeAuthenticatesToTheUpstreamWithItsOwnToken) {
  const std::string tokens = absl::StrCat(root_.path(), "/tokens");
  const std::string node_token = absl::StrCat(root_.path(), "/node-token");
  std::ofstream(tokens) << "node:0123456789abcdef0123456789abcdef\n";
  std::ofstream(node_token) << "0123456789abcdef0123456789abcdef\n";
  auto upstream = StartUpstream({"--auth-token-file", tokens});
  ASSERT_TRUE(upstream.ok()) << upstream.status();

  auto anonymous = StartNode("node-a");
  ASSERT_TRUE(anonymous.ok()) << anonymous.status();
  auto refused = Writer::Open(Options("node-a", "rank-0"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << refused.status();

  auto node = StartNode("node-b", {"--upstream-token-file", node_token});
  ASSERT_TRUE(node.ok()) << node.status();
  auto writer = Writer::Open(Options("node-b", "rank-1"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (int64_t step = 0; step < 10; ++step) ASSERT_TRUE((*writer)->scalar("loss", step, 1.0f).ok());
  ASSERT_TRUE((*writer)->close().ok()) << (*writer)->status();
  ExpectEachStepOnce(StepsByTag(RunDir()), "loss", 10);

  auto missing = StartNode("node-c", {"--upstream-token-file", root_.path() + "/nonexistent"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--upstream-token-file"), std::string::npos)
      << missing.status();
  EXPECT_TRUE((*anonymous)->Stop(SIGTERM).ok());
  EXPECT_TRUE((*node)->Stop(SIGTERM).ok());
  EXPECT_TRUE((*upstream)->Stop(SIGTERM).ok());
}

}  // namespace
}  // namespace tblog
