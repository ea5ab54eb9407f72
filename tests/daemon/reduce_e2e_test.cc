// Reductions across writers against the real tblogd (tblog.proto,
// "Reductions across writers"): 8 rank processes (reduce_rank_child.cc, the
// C++ client) logging their own loss into one run get one point per step,
// the mean (weighted mean, sum, min, max, count); a rank killed with SIGKILL
// mid-run leaves points written at the timeout from the others, counted as
// missing in GetRun; exponential histograms of 4 writers merge into the
// histogram of their concatenated values. Validation, late, duplicate and
// partial contributions through raw WriteBatch calls.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon_test_util.h"
#include "engine/histogram/histogram.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "tblog/v1/tblog.grpc.pb.h"

extern char** environ;

namespace tblog {
namespace {

using ::tblog::daemon::testing::ReadSummaryEvents;
using ::tblog::testing::DaemonProcess;

constexpr int kRanks = 8;

// reduce_rank_child with WORLD_SIZE=kRanks (the first of the environment
// wins); its stdout goes to `out_path`.
pid_t SpawnRank(const std::string& target, const std::string& run_path, int rank, int steps,
                int die_after, const std::string& out_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  std::vector<std::string> args = {REDUCE_RANK_CHILD, target, run_path, std::to_string(rank),
                                   std::to_string(steps)};
  if (die_after > 0) args.push_back(std::to_string(die_after));
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // The ranks' start barrier: a directory beside the outputs.
  const std::filesystem::path barrier = std::filesystem::path(out_path).parent_path() / "barrier";
  std::filesystem::create_directories(barrier);
  std::vector<std::string> env_strings = {absl::StrCat("WORLD_SIZE=", kRanks),
                                          absl::StrCat("BARRIER_DIR=", barrier.string())};
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0].c_str(), &actions, nullptr, argv.data(), envp.data()) != 0) {
    pid = -1;
  }
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool FileSays(const std::string& path, const std::string& word, absl::Duration bound) {
  const absl::Time deadline = absl::Now() + bound;
  while (absl::Now() < deadline) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().find(word) != std::string::npos) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

// The scalar value of a summary value in either style.
double ValueOf(const tensorboard::Summary::Value& value) {
  if (value.has_tensor() && value.tensor().float_val_size() > 0) return value.tensor().float_val(0);
  return value.simple_value();
}

class ReduceE2ETest : public ::testing::Test {
 protected:
  void StartDaemon(std::vector<std::string> args) {
    DaemonProcess::Options options;
    options.extra_args = std::move(args);
    auto started = DaemonProcess::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    daemon_ = *std::move(started);
    stub_ = v1::TBLog::NewStub(
        grpc::CreateChannel(daemon_->target(), grpc::InsecureChannelCredentials()));
  }

  grpc::Status OpenRun(const std::string& run_path, const std::string& writer,
                       uint32_t group_size = 0) {
    grpc::ClientContext context;
    v1::OpenRunRequest request;
    request.set_run_path(run_path);
    request.set_writer_id(writer);
    request.set_reduce_group_size(group_size);
    v1::OpenRunResponse response;
    return stub_->OpenRun(&context, request, &response);
  }

  grpc::Status Write(const v1::WriteRequest& request) {
    grpc::ClientContext context;
    v1::WriteResponse response;
    return stub_->WriteBatch(&context, request, &response);
  }

  v1::RunInfo GetRun(const std::string& run_id) {
    grpc::ClientContext context;
    v1::GetRunRequest request;
    request.set_run_id(run_id);
    v1::RunInfo info;
    EXPECT_TRUE(stub_->GetRun(&context, request, &info).ok());
    return info;
  }

  bool CloseRun(const std::string& run_id) {
    grpc::ClientContext context;
    v1::CloseRunRequest request;
    request.set_run_id(run_id);
    v1::CloseRunResponse response;
    return stub_->CloseRun(&context, request, &response).ok();
  }

  // tag -> step -> values of every summary value of the run, in file order.
  std::map<std::string, std::map<int64_t, std::vector<tensorboard::Summary::Value>>> Points(
      const std::string& run_path) const {
    std::map<std::string, std::map<int64_t, std::vector<tensorboard::Summary::Value>>> out;
    for (const auto& event : ReadSummaryEvents(std::filesystem::path(daemon_->logdir()) / run_path)) {
      for (const auto& value : event.summary().value()) out[value.tag()][event.step()].push_back(value);
    }
    return out;
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<v1::TBLog::Stub> stub_;
};

// One contribution of `writer` to tag at step, as its batch `sequence`.
v1::WriteRequest Contribution(const std::string& run, const std::string& writer,
                              uint64_t sequence, const std::string& tag, int64_t step,
                              float value, v1::ReduceOp op = v1::REDUCE_OP_MEAN) {
  v1::WriteRequest request;
  request.set_run_id(run);
  request.set_writer_id(writer);
  request.set_sequence(sequence);
  v1::Record* record = request.add_records();
  record->set_tag(tag);
  record->set_step(step);
  record->mutable_scalar()->set_value(value);
  record->mutable_reduce()->set_op(op);
  return request;
}

TEST_F(ReduceE2ETest, EightRanksGetOnePointPerStep) {
  StartDaemon({"--flush-interval", "100ms"});
  const std::string run = "job/eight";
  constexpr int kSteps = 5;
  const std::filesystem::path dir(daemon_->logdir());
  std::vector<pid_t> ranks;
  for (int rank = 0; rank < kRanks; ++rank) {
    ranks.push_back(SpawnRank(daemon_->target(), run, rank, kSteps, 0,
                              (dir / absl::StrCat("rank", rank, ".out")).string()));
    ASSERT_GT(ranks.back(), 0);
  }
  for (pid_t pid : ranks) EXPECT_EQ(WaitExit(pid), 0);

  const auto points = Points(run);
  for (int step = 1; step <= kSteps; ++step) {
    // Rank r logs step + r/8: exact in float, and so are these.
    const std::map<std::string, double> want = {
        {"loss", step + 3.5 / 8},
        {"loss_weighted", step + (140.0 + 28.0) / 36.0 / 8},  // weights r + 1
        {"loss_sum", 8.0 * step + 28.0 / 8},
        {"loss_min", step},
        {"loss_max", step + 7.0 / 8},
        {"ranks", kRanks}};
    for (const auto& [tag, value] : want) {
      ASSERT_TRUE(points.contains(tag)) << tag;
      ASSERT_TRUE(points.at(tag).contains(step)) << tag << "@" << step;
      const auto& written = points.at(tag).at(step);
      ASSERT_EQ(written.size(), 1u) << tag << "@" << step << ": one point, not one per rank";
      EXPECT_NEAR(ValueOf(written[0]), value, 1e-5 * std::abs(value)) << tag << "@" << step;
    }
  }
  EXPECT_EQ(points.size(), 6u) << "no per-rank tags without keep_contributions";
  const v1::RunInfo info = GetRun(run);
  EXPECT_EQ(info.reduce_points(), 6u * kSteps);
  EXPECT_EQ(info.reduce_contributions_late(), 0u);
  EXPECT_EQ(info.reduce_contributions_missing(), 0u);
  EXPECT_EQ(info.reduce_contributions_duplicate(), 0u);
}

TEST_F(ReduceE2ETest, ARankKilledMidRunLeavesPointsWrittenAtTheTimeout) {
  StartDaemon({"--flush-interval", "100ms", "--reduce-timeout", "1s"});
  const std::string run = "job/killed";
  constexpr int kSteps = 5;
  constexpr int kDieAfter = 2;
  const std::filesystem::path dir(daemon_->logdir());
  const std::string victim_out = (dir / "victim.out").string();
  const pid_t victim = SpawnRank(daemon_->target(), run, kRanks - 1, kSteps, kDieAfter, victim_out);
  ASSERT_GT(victim, 0);
  ASSERT_TRUE(FileSays(victim_out, "ready", absl::Seconds(60)));
  kill(victim, SIGKILL);
  WaitExit(victim);
  std::vector<pid_t> ranks;
  for (int rank = 0; rank < kRanks - 1; ++rank) {
    ranks.push_back(SpawnRank(daemon_->target(), run, rank, kSteps, 0,
                              (dir / absl::StrCat("rank", rank, ".out")).string()));
    ASSERT_GT(ranks.back(), 0);
  }
  for (pid_t pid : ranks) EXPECT_EQ(WaitExit(pid), 0);

  // The killed rank's lease holds the run open: the points of steps 3..5
  // wait for it until the timeout, then are written from the 7 others.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  v1::RunInfo info = GetRun(run);
  while (info.reduce_points() < 6u * kSteps && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    info = GetRun(run);
  }
  EXPECT_EQ(info.reduce_points(), 6u * kSteps);
  // 6 tags x 3 steps x 1 missing rank.
  EXPECT_EQ(info.reduce_contributions_missing(), 6u * (kSteps - kDieAfter));
  EXPECT_EQ(info.reduce_contributions_late(), 0u);
  ASSERT_TRUE(CloseRun(run));

  const auto points = Points(run);
  for (int step = 1; step <= kSteps; ++step) {
    const auto& loss = points.at("loss").at(step);
    ASSERT_EQ(loss.size(), 1u) << "step " << step;
    // Through step 2 every rank reported; after, ranks 0..6.
    const double mean = step + (step <= kDieAfter ? 3.5 : 3.0) / 8;
    EXPECT_NEAR(ValueOf(loss[0]), mean, 1e-5 * mean) << "step " << step;
    EXPECT_EQ(ValueOf(points.at("ranks").at(step)[0]), step <= kDieAfter ? 8 : 7);
  }
}

TEST_F(ReduceE2ETest, ExponentialHistogramsOfFourWritersMergeExactly) {
  StartDaemon({});
  const std::string run = "job/histograms";
  ASSERT_TRUE(OpenRun(run, "w0", 4).ok());
  std::vector<float> all;
  for (int writer = 0; writer < 4; ++writer) {
    std::vector<float> values;
    uint32_t state = 12345u + static_cast<uint32_t>(writer);
    for (int i = 0; i < 5000; ++i) {
      state = state * 1664525u + 1013904223u;  // a small LCG: the same data every run
      const double unit = static_cast<double>(state >> 8) / (1u << 24);
      values.push_back(static_cast<float>((unit - 0.3) * std::pow(10.0, writer - 1)));
    }
    all.insert(all.end(), values.begin(), values.end());
    v1::WriteRequest request;
    request.set_run_id(run);
    request.set_writer_id(absl::StrCat("w", writer));
    request.set_sequence(1);
    v1::Record* record = request.add_records();
    record->set_tag("grad");
    record->set_step(7);
    record->mutable_reduce()->set_op(v1::REDUCE_OP_MERGE);
    v1::Histogram* histogram = record->mutable_histogram();
    histogram->set_layout(v1::HISTOGRAM_LAYOUT_EXPONENTIAL);
    histogram->mutable_values()->set_dtype(v1::DTYPE_FLOAT32);
    histogram->mutable_values()->add_shape(static_cast<int64_t>(values.size()));
    histogram->mutable_values()->set_data(values.data(), values.size() * sizeof(float));
    ASSERT_TRUE(Write(request).ok()) << writer;
  }
  const auto points = Points(run);
  ASSERT_EQ(points.at("grad").at(7).size(), 1u);
  const tensorboard::HistogramProto& merged = points.at("grad").at(7)[0].histo();

  const int64_t shape[] = {static_cast<int64_t>(all.size())};
  const TensorView view{DType::kFloat32, shape,
                        std::string_view(reinterpret_cast<const char*>(all.data()), all.size() * 4)};
  auto expected = HistogramBuilder().Exponential("grad", view);
  ASSERT_TRUE(expected.ok()) << expected.status();
  const tensorboard::HistogramProto& want = expected->value.histo();
  ASSERT_EQ(merged.bucket_size(), want.bucket_size());
  for (int i = 0; i < want.bucket_size(); ++i) {
    EXPECT_EQ(merged.bucket_limit(i), want.bucket_limit(i)) << "bucket " << i;
    EXPECT_EQ(merged.bucket(i), want.bucket(i)) << "bucket " << i;
  }
  EXPECT_EQ(merged.num(), want.num());
  EXPECT_EQ(merged.min(), want.min());
  EXPECT_EQ(merged.max(), want.max());
  EXPECT_NEAR(merged.sum(), want.sum(), 1e-9 * std::abs(want.sum_squares()));
  EXPECT_NEAR(merged.sum_squares(), want.sum_squares(), 1e-9 * want.sum_squares());
}

TEST_F(ReduceE2ETest, EveryFieldIsValidated) {
  StartDaemon({});
  const std::string run = "job/validation";
  ASSERT_TRUE(OpenRun(run, "a", 2).ok());
  // A joining writer with another group size.
  const grpc::Status other_size = OpenRun(run, "b", 3);
  EXPECT_EQ(other_size.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(other_size.error_message().find("reduce_group_size: 3 differs from the run's 2"),
            std::string::npos)
      << other_size.error_message();
  ASSERT_TRUE(OpenRun(run, "b", 2).ok());

  auto expect_refused = [&](v1::WriteRequest request, const std::string& says) {
    const grpc::Status status = Write(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << says;
    EXPECT_NE(status.error_message().find(says), std::string::npos) << status.error_message();
  };
  uint64_t sequence = 0;
  v1::WriteRequest bad = Contribution(run, "a", ++sequence, "t", 1, 1.0f);
  bad.mutable_records(0)->mutable_reduce()->set_op(v1::REDUCE_OP_UNSPECIFIED);
  expect_refused(bad, "reduce.op: not set");
  bad = Contribution(run, "a", ++sequence, "t", 1, 1.0f);
  bad.mutable_records(0)->mutable_reduce()->set_weight(-1);
  expect_refused(bad, "reduce.weight: -1 is negative or not finite");
  bad = Contribution(run, "a", ++sequence, "t", 1, 1.0f);
  bad.mutable_records(0)->mutable_reduce()->set_weight(std::nan(""));
  expect_refused(bad, "reduce.weight: nan");
  bad = Contribution(run, "a", ++sequence, "t", 1, 1.0f, v1::REDUCE_OP_SUM);
  bad.mutable_records(0)->mutable_reduce()->set_weight(2);
  expect_refused(bad, "reduce.weight: applies to MEAN only");
  bad = Contribution(run, "a", ++sequence, "t", 1, 1.0f, v1::REDUCE_OP_MERGE);
  expect_refused(bad, "MERGE applies to histograms");
  bad = Contribution(run, "a", ++sequence, "t", 1, 1.0f);
  bad.mutable_records(0)->mutable_text()->set_markdown("hi");
  expect_refused(bad, "applies to `scalar` and `histogram` records only");
  bad = Contribution(run, "a", ++sequence, "h", 1, 1.0f, v1::REDUCE_OP_MERGE);
  bad.mutable_records(0)->mutable_histogram()->mutable_values()->set_dtype(v1::DTYPE_FLOAT32);
  expect_refused(bad, "MERGE needs histogram.layout HISTOGRAM_LAYOUT_EXPONENTIAL");
  bad = Contribution(run, "a", ++sequence, "t", 1, 1.0f);
  bad.mutable_records(0)->mutable_reduce()->set_group_size(3);
  EXPECT_TRUE(Write(bad).ok());  // the point's first contribution: group of 3
  // Writer b disagrees about the point's group (the run's 2).
  expect_refused(Contribution(run, "b", 1, "t", 1, 1.0f), "reduce.group_size: 2 differs from 3");
  expect_refused(Contribution(run, "b", 2, "t", 1, 1.0f, v1::REDUCE_OP_SUM),
                 "differs from 3");  // the group size is checked first
  // Without any group size.
  ASSERT_TRUE(OpenRun("job/nogroup", "a").ok());
  expect_refused(Contribution("job/nogroup", "a", 1, "t", 1, 1.0f),
                 "the run has no reduce_group_size");
  // The daemon is still up and the run takes good records.
  EXPECT_TRUE(Write(Contribution(run, "a", ++sequence, "u", 1, 1.0f)).ok());
  {
    grpc::ClientContext context;
    v1::OpenRunRequest request;
    request.set_run_path("job/badtimeout");
    request.set_reduce_timeout_seconds(-1);
    v1::OpenRunResponse response;
    const grpc::Status status = stub_->OpenRun(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("reduce_timeout_seconds"), std::string::npos);
  }
}

TEST_F(ReduceE2ETest, LateDuplicatePartialAndKeptContributions) {
  StartDaemon({});
  const std::string run = "job/counts";
  ASSERT_TRUE(OpenRun(run, "a", 3).ok());
  // a twice (a duplicate), then a partial of b and c completes the group.
  ASSERT_TRUE(Write(Contribution(run, "a", 1, "loss", 1, 1.0f)).ok());
  ASSERT_TRUE(Write(Contribution(run, "a", 2, "loss", 1, 5.0f)).ok());
  v1::WriteRequest partial = Contribution(run, "fwd", 1, "loss", 1, 0.0f);
  v1::ReducePartial* state = partial.mutable_records(0)->mutable_reduce()->mutable_partial();
  state->add_contributors("b");
  state->add_contributors("c");
  state->mutable_scalar()->set_sum(2.0 + 6.0);
  state->mutable_scalar()->set_weight(2);
  state->mutable_scalar()->set_min(2.0);
  state->mutable_scalar()->set_max(6.0);
  ASSERT_TRUE(Write(partial).ok());
  // d after the point was written: late; b again: late too.
  ASSERT_TRUE(Write(Contribution(run, "d", 1, "loss", 1, 100.0f)).ok());
  ASSERT_TRUE(Write(Contribution(run, "b", 1, "loss", 1, 100.0f)).ok());
  // keep_contributions: each writer's own value under its tag too.
  for (const std::string writer : {"a", "b", "c"}) {
    v1::WriteRequest kept = Contribution(run, writer, writer == "a" ? 3 : writer == "b" ? 2 : 1, "acc", 1,
                                         writer == "a" ? 0.5f : 1.0f);
    kept.mutable_records(0)->mutable_reduce()->set_keep_contributions(true);
    ASSERT_TRUE(Write(kept).ok()) << writer;
  }
  const v1::RunInfo info = GetRun(run);
  EXPECT_EQ(info.reduce_points(), 2u);
  EXPECT_EQ(info.reduce_contributions_late(), 2u);
  EXPECT_EQ(info.reduce_contributions_duplicate(), 1u);
  EXPECT_EQ(info.reduce_contributions_missing(), 0u);

  const auto points = Points(run);
  ASSERT_EQ(points.at("loss").at(1).size(), 1u);
  EXPECT_FLOAT_EQ(ValueOf(points.at("loss").at(1)[0]), 3.0f);  // (1 + 2 + 6) / 3
  EXPECT_NEAR(ValueOf(points.at("acc").at(1)[0]), 2.5 / 3, 1e-6);
  EXPECT_FLOAT_EQ(ValueOf(points.at("acc/by_writer/a").at(1)[0]), 0.5f);
  EXPECT_FLOAT_EQ(ValueOf(points.at("acc/by_writer/c").at(1)[0]), 1.0f);
}

// A run closed and opened again (a fresh RunReductions) knows the points its
// files hold from the checkpoint, which the resume scan reads no further
// than: a contribution to a point already written is late, never a second
// point, and the series goes on.
TEST_F(ReduceE2ETest, AReopenedRunNeverWritesAReducedPointAgain) {
  StartDaemon({});
  const std::string run = "job/reopened";
  ASSERT_TRUE(OpenRun(run, "a", 2).ok());
  for (int64_t step : {1, 2}) {
    const auto sequence = static_cast<uint64_t>(step);
    ASSERT_TRUE(Write(Contribution(run, "a", sequence, "loss", step, 1.0f)).ok());
    ASSERT_TRUE(Write(Contribution(run, "b", sequence, "loss", step, 3.0f)).ok());
  }
  ASSERT_TRUE(CloseRun(run));

  ASSERT_TRUE(OpenRun(run, "c", 2).ok());
  for (int64_t step : {1, 2}) {
    const auto sequence = static_cast<uint64_t>(step);
    ASSERT_TRUE(Write(Contribution(run, "c", sequence, "loss", step, 9.0f)).ok());
  }
  ASSERT_TRUE(Write(Contribution(run, "a", 3, "loss", 3, 1.0f)).ok());
  ASSERT_TRUE(Write(Contribution(run, "c", 3, "loss", 3, 5.0f)).ok());
  const v1::RunInfo info = GetRun(run);
  EXPECT_EQ(info.reduce_points(), 1u);
  EXPECT_EQ(info.reduce_contributions_late(), 2u);
  ASSERT_TRUE(CloseRun(run));

  const auto points = Points(run);
  ASSERT_EQ(points.at("loss").size(), 3u);
  for (const auto& [step, values] : points.at("loss")) {
    ASSERT_EQ(values.size(), 1u) << "step " << step;
    EXPECT_FLOAT_EQ(ValueOf(values[0]), step == 3 ? 3.0f : 2.0f) << "step " << step;
  }
}

}  // namespace
}  // namespace tblog
