// RunRegistry (server/daemon/run_registry.h) on a temporary log directory,
// with the daemon's real parts: timestamped and explicit runs, resume,
// --max-runs, closing, and the run list.
#include "daemon/run_registry.h"

#include <filesystem>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/sync.h"
#include "daemon/byte_budget.h"
#include "daemon/metrics.h"
#include "daemon/names.h"
#include "daemon/record_converter.h"
#include "daemon/worker_pool.h"
#include "daemon_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::FreshTempDir;
using testing::ReadSummaryEvents;
using testing::TagSteps;

// Counts the batches acknowledged to it.
class CountingSink : public AckSink {
 public:
  void OnAck(v1::WriteResponse /*ack*/, int completed_batches) override {
    MutexLock lock(&mu_);
    completed_ += completed_batches;
  }
  void WaitForBatches(int n) {
    MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return completed_ >= n; };
    mu_.Await(Condition(&done));
  }

 private:
  Mutex mu_;
  int completed_ ABSL_GUARDED_BY(mu_) = 0;
};

v1::WriteRequest ScalarBatch(const std::string& writer, uint64_t sequence, int64_t step) {
  v1::WriteRequest request;
  request.set_writer_id(writer);
  request.set_sequence(sequence);
  v1::Record* record = request.add_records();
  record->set_tag("loss");
  record->set_step(step);
  record->set_wall_time(1700000000.0 + static_cast<double>(step));
  record->mutable_scalar()->set_value(0.5f);
  return request;
}

v1::OpenRunRequest Named(const std::string& name) {
  v1::OpenRunRequest request;
  request.set_name(name);
  return request;
}

v1::OpenRunRequest AtPath(const std::string& run_path,
                          v1::OpenMode mode = v1::OPEN_MODE_DEFAULT) {
  v1::OpenRunRequest request;
  request.set_run_path(run_path);
  request.set_mode(mode);
  return request;
}

class RunRegistryTest : public ::testing::Test {
 protected:
  RunRegistryTest()
      : logdir_(FreshTempDir("run_registry_test")),
        workers_(2),
        budget_(1 << 30),
        converter_(options_.limits, &workers_) {}

  // Runs left open are closed as the daemon's shutdown would close them.
  void TearDown() override {
    if (registry_) {
      EXPECT_TRUE(registry_->CloseAllForShutdown(absl::Now() + absl::Seconds(30)).ok());
    }
  }

  // The registry under test; built on first use, so a test may set options_.
  RunRegistry& registry() {
    if (!registry_) {
      const RunContext context{&options_, &converter_, &workers_, &budget_, &metrics_};
      registry_ = std::make_unique<RunRegistry>(context, logdir_.string());
    }
    return *registry_;
  }

  v1::OpenRunResponse Open(const v1::OpenRunRequest& request) {
    auto response = registry().OpenRun(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::OpenRunResponse();
  }

  absl::StatusOr<v1::RunInfo> Close(const std::string& run_id,
                                    v1::SessionStatus status = v1::SESSION_STATUS_SUCCESS) {
    Notification closed;
    absl::StatusOr<v1::RunInfo> result = absl::UnknownError("not called");
    registry().CloseRun(run_id, status, [&](absl::StatusOr<v1::RunInfo> info) {
      result = std::move(info);
      closed.Notify();
    });
    closed.WaitForNotification();
    return result;
  }

  // Writes batches 1..n of writer "w" into the run and waits for their acks.
  void WriteBatches(const std::string& run_id, int n) {
    std::shared_ptr<daemon::Run> run = registry().Find(run_id);
    ASSERT_NE(run, nullptr);
    auto sink = std::make_shared<CountingSink>();
    for (int seq = 1; seq <= n; ++seq) {
      ASSERT_TRUE(run->Submit(ScalarBatch("w", seq, seq), sink, 0).ok());
    }
    sink->WaitForBatches(n);
  }

  const fs::path logdir_;
  DaemonOptions options_;
  WorkerPool workers_;
  ByteBudget budget_;
  Metrics metrics_;
  RecordConverter converter_;
  std::unique_ptr<RunRegistry> registry_;  // destroyed first: its runs use the parts above
};

TEST_F(RunRegistryTest, RunWithoutPathGetsATimestampedDirectory) {
  const v1::OpenRunResponse response = Open(Named("baseline"));
  EXPECT_TRUE(std::regex_match(response.run_path(), std::regex(R"(\d{8}-\d{6}-baseline)")))
      << response.run_path();
  EXPECT_EQ(response.run_id(), response.run_path());
  EXPECT_EQ(response.directory(), (logdir_ / response.run_path()).string());
  EXPECT_TRUE(fs::is_directory(response.directory()));
  EXPECT_FALSE(response.resumed());
}

TEST_F(RunRegistryTest, RunsOpenedInTheSameSecondGetDistinctDirectories) {
  std::set<std::string> paths;
  std::vector<std::string> ordered;
  for (int i = 0; i < 3; ++i) {
    const v1::OpenRunResponse response = Open(Named("same"));
    paths.insert(response.run_path());
    ordered.push_back(response.run_path());
    EXPECT_TRUE(fs::is_directory(response.directory()));
  }
  EXPECT_EQ(paths.size(), 3u);
  // Within one second the second and third run take the suffixes -2 and -3.
  if (ordered[0] == ordered[1].substr(0, ordered[0].size())) {
    EXPECT_EQ(ordered[1], ordered[0] + "-2");
  }
}

TEST_F(RunRegistryTest, AnExistingDirectoryIsNeverReused) {
  // Another run (or another daemon) took this name in each of the next seconds.
  const absl::Time now = absl::Now();
  for (int s = 0; s < 5; ++s) {
    fs::create_directories(logdir_ / TimestampedRunName(now + absl::Seconds(s), "taken"));
  }
  const v1::OpenRunResponse response = Open(Named("taken"));
  EXPECT_TRUE(std::regex_match(response.run_path(), std::regex(R"(\d{8}-\d{6}-taken-2)")))
      << response.run_path();
  EXPECT_TRUE(fs::is_empty(logdir_ / TimestampedRunName(now, "taken")));  // left alone
}

TEST_F(RunRegistryTest, ExperimentPrefixesTheTimestampedName) {
  v1::OpenRunRequest request = Named("a");
  request.set_experiment("exp/sweep");
  const v1::OpenRunResponse response = Open(request);
  EXPECT_TRUE(std::regex_match(response.run_path(), std::regex(R"(exp/sweep/\d{8}-\d{6}-a)")))
      << response.run_path();
  EXPECT_TRUE(fs::is_directory(response.directory()));
}

TEST_F(RunRegistryTest, ReopeningAnOpenRunJoinsIt) {
  const v1::OpenRunResponse first = Open(AtPath("team/run1"));
  EXPECT_FALSE(first.resumed());
  WriteBatches(first.run_id(), 2);
  const v1::OpenRunResponse second = Open(AtPath("team/run1"));
  EXPECT_EQ(second.run_id(), first.run_id());
  EXPECT_EQ(second.directory(), first.directory());
  EXPECT_TRUE(second.resumed());
  EXPECT_EQ(second.writer_sequences().at("w"), 2u);
  EXPECT_EQ(registry().OpenRuns().size(), 1u);

  auto created = registry().OpenRun(AtPath("team/run1", v1::OPEN_MODE_CREATE));
  EXPECT_EQ(created.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(RunRegistryTest, ClosedRunIsResumedWithItsWritersSequences) {
  const v1::OpenRunResponse opened = Open(AtPath("resume/me"));
  WriteBatches(opened.run_id(), 3);
  ASSERT_TRUE(Close(opened.run_id()).ok());

  const v1::OpenRunResponse resumed = Open(AtPath("resume/me", v1::OPEN_MODE_RESUME));
  EXPECT_TRUE(resumed.resumed());
  EXPECT_EQ(resumed.run_id(), "resume/me");
  EXPECT_EQ(resumed.writer_sequences().at("w"), 3u);
  ASSERT_NE(registry().Find("resume/me"), nullptr);
  EXPECT_TRUE(registry().Find("resume/me")->open());
  ASSERT_TRUE(Close(resumed.run_id()).ok());
  EXPECT_EQ(TagSteps(ReadSummaryEvents(logdir_ / "resume/me")),
            (std::vector<std::string>{"loss@1", "loss@2", "loss@3"}));
}

TEST_F(RunRegistryTest, ModesCheckWhetherTheRunExists) {
  auto missing = registry().OpenRun(AtPath("not/there", v1::OPEN_MODE_RESUME));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(logdir_ / "not/there"));

  fs::create_directories(logdir_ / "left/over");
  auto exists = registry().OpenRun(AtPath("left/over", v1::OPEN_MODE_CREATE));
  EXPECT_EQ(exists.status().code(), absl::StatusCode::kAlreadyExists);

  auto needs_path = registry().OpenRun(AtPath("", v1::OPEN_MODE_CREATE));
  EXPECT_EQ(needs_path.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RunRegistryTest, PathsThatLeaveTheLogdirAreRefused) {
  for (const char* path : {"../escape", "/abs/path", "a/../../b"}) {
    auto response = registry().OpenRun(AtPath(path));
    EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument) << path;
  }
}

TEST_F(RunRegistryTest, MaxRunsIsAnsweredWithResourceExhausted) {
  options_.limits.max_runs = 2;
  const v1::OpenRunResponse a = Open(AtPath("a"));
  Open(AtPath("b"));
  auto third = registry().OpenRun(AtPath("c"));
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(third.status().message()), HasSubstr("--max-runs"));
  EXPECT_FALSE(fs::exists(logdir_ / "c"));
  // Joining an open run is not a new run.
  EXPECT_TRUE(registry().OpenRun(AtPath("a")).ok());

  ASSERT_TRUE(Close(a.run_id()).ok());  // a closed run frees its place
  EXPECT_TRUE(registry().OpenRun(AtPath("c")).ok());
}

TEST_F(RunRegistryTest, CloseRunAnswersOnceWithTheRunsInfo) {
  const v1::OpenRunResponse opened = Open(AtPath("closing"));
  WriteBatches(opened.run_id(), 2);
  const absl::StatusOr<v1::RunInfo> info = Close(opened.run_id());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->run_id(), "closing");
  EXPECT_FALSE(info->open());
  EXPECT_EQ(info->records_written(), 2u);
  EXPECT_EQ(info->writers(), 1u);

  EXPECT_EQ(Close(opened.run_id()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Close("never/opened").status().code(), absl::StatusCode::kNotFound);
  // A closed run is still known (its id answers Find) but no longer open.
  ASSERT_NE(registry().Find("closing"), nullptr);
  EXPECT_FALSE(registry().Find("closing")->open());
  EXPECT_TRUE(registry().OpenRuns().empty());
}

TEST_F(RunRegistryTest, ListHoldsOpenAndClosedRuns) {
  v1::OpenRunRequest labelled = AtPath("listed/open");
  (*labelled.mutable_labels())["lr"] = "0.1";
  Open(labelled);
  const v1::OpenRunResponse closed = Open(AtPath("listed/closed"));
  ASSERT_TRUE(Close(closed.run_id()).ok());

  std::map<std::string, v1::RunInfo> by_id;
  for (const v1::RunInfo& info : registry().List()) by_id[info.run_id()] = info;
  ASSERT_EQ(by_id.size(), 2u);
  EXPECT_TRUE(by_id.at("listed/open").open());
  EXPECT_EQ(by_id.at("listed/open").run_path(), "listed/open");
  EXPECT_EQ(by_id.at("listed/open").labels().at("lr"), "0.1");
  EXPECT_FALSE(by_id.at("listed/closed").open());
  EXPECT_EQ(registry().Find("listed/none"), nullptr);
}

TEST_F(RunRegistryTest, ShutdownClosesEveryOpenRun) {
  Open(AtPath("s/1"));
  Open(AtPath("s/2"));
  EXPECT_TRUE(registry().CloseAllForShutdown(absl::Now() + absl::Seconds(30)).ok());
  EXPECT_TRUE(registry().OpenRuns().empty());
  EXPECT_EQ(registry().List().size(), 2u);
  EXPECT_EQ(registry().OpenRunCount(), 0);
  // A run closed by shutdown can be resumed later.
  EXPECT_TRUE(Open(AtPath("s/1", v1::OPEN_MODE_RESUME)).resumed());
}

}  // namespace
}  // namespace tblog::daemon
