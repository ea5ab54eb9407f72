// Run leases against the real tblogd (tests/support/daemon_process.h): a
// trainer process killed with SIGKILL frees its run after the lease and
// --max-runs room with it; the writers of a shared run keep writing after
// one of them closes. Writers are the C++ client, in this process or in a
// child process (lease_writer_child.cc).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon_test_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "tblog/client.h"
#include "tblog/v1/tblog.grpc.pb.h"

extern char** environ;

namespace tblog {
namespace {

using ::tblog::daemon::testing::ReadSummaryEvents;
using ::tblog::daemon::testing::TagSteps;
using ::tblog::testing::DaemonProcess;

// A lease_writer_child process. The destructor kills it if it still runs.
class ChildWriter {
 public:
  ChildWriter(const std::string& target, const std::string& run_path,
              const std::string& writer_id) {
    int fds[2];
    if (pipe(fds) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::string binary = LEASE_WRITER_CHILD;
    std::vector<char*> argv = {binary.data(), const_cast<char*>(target.c_str()),
                               const_cast<char*>(run_path.c_str()),
                               const_cast<char*>(writer_id.c_str()), nullptr};
    if (posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    out_ = fds[0];
  }
  ~ChildWriter() {
    if (pid_ > 0) Kill();
    if (out_ >= 0) close(out_);
  }

  // True once the child printed "ready" (its points are written); false if
  // it exited or said nothing within `timeout`.
  bool WaitReady(absl::Duration timeout) {
    std::string said;
    const absl::Time deadline = absl::Now() + timeout;
    while (pid_ > 0 && absl::Now() < deadline) {
      pollfd fd{out_, POLLIN, 0};
      if (poll(&fd, 1, 100) <= 0) continue;
      char buffer[64];
      const ssize_t n = read(out_, buffer, sizeof buffer);
      if (n <= 0) return false;
      said.append(buffer, static_cast<size_t>(n));
      if (said.find("ready\n") != std::string::npos) return true;
    }
    return false;
  }

  // SIGKILL: no CloseRun, no end of stream from the client.
  void Kill() {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

class LeasesE2ETest : public ::testing::Test {
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

  WriterOptions Options(const std::string& run_path, const std::string& writer_id) const {
    WriterOptions options;
    options.target = daemon_->target();
    options.run_path = run_path;
    options.writer_id = writer_id;
    return options;
  }

  absl::StatusOr<v1::RunInfo> GetRun(const std::string& run_id) {
    grpc::ClientContext context;
    v1::GetRunRequest request;
    request.set_run_id(run_id);
    v1::RunInfo info;
    const grpc::Status status = stub_->GetRun(&context, request, &info);
    if (!status.ok()) return absl::UnknownError(status.error_message());
    return info;
  }

  grpc::Status OpenRun(const std::string& run_path, const std::string& writer_id) {
    grpc::ClientContext context;
    v1::OpenRunRequest request;
    request.set_run_path(run_path);
    request.set_writer_id(writer_id);
    v1::OpenRunResponse response;
    return stub_->OpenRun(&context, request, &response);
  }

  grpc::Status CloseRun(const std::string& run_id, const std::string& writer_id) {
    grpc::ClientContext context;
    v1::CloseRunRequest request;
    request.set_run_id(run_id);
    request.set_writer_id(writer_id);
    v1::CloseRunResponse response;
    return stub_->CloseRun(&context, request, &response);
  }

  // Polls GetRun until the run is in `state`; false after `bound`.
  bool WaitForState(const std::string& run_id, v1::RunState state, absl::Duration bound) {
    const absl::Time deadline = absl::Now() + bound;
    while (absl::Now() < deadline) {
      auto info = GetRun(run_id);
      if (info.ok() && info->state() == state) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  std::vector<std::string> Steps(const std::string& run_path) const {
    return TagSteps(ReadSummaryEvents(std::filesystem::path(daemon_->logdir()) / run_path));
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<v1::TBLog::Stub> stub_;
};

TEST_F(LeasesE2ETest, AWriterKilledWithoutAWordFreesItsRunAfterTheLease) {
  StartDaemon({"--writer-lease", "1s", "--max-runs", "2"});
  ChildWriter child(daemon_->target(), "jobs/killed", "trainer-1");
  ASSERT_TRUE(child.WaitReady(absl::Seconds(60)));
  const absl::StatusOr<v1::RunInfo> held = GetRun("jobs/killed");
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->state(), v1::RUN_STATE_OPEN);
  ASSERT_EQ(held->holders_size(), 1);
  EXPECT_EQ(held->holders(0).writer_id(), "trainer-1");
  EXPECT_EQ(held->holders(0).streams(), 1u);

  // A live writer that logs nothing: its open stream holds its run.
  auto alive = Writer::Open(Options("jobs/alive", "alive"));
  ASSERT_TRUE(alive.ok()) << alive.status();
  EXPECT_EQ(OpenRun("jobs/third", "third").error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  const absl::Time killed_at = absl::Now();
  child.Kill();
  ASSERT_TRUE(WaitForState("jobs/killed", v1::RUN_STATE_CLOSED, absl::Seconds(60)));
  // Not before the lease ran out (a lower bound: nothing can make it early).
  EXPECT_GE(absl::Now() - killed_at, absl::Milliseconds(900));
  EXPECT_TRUE(GetRun("jobs/killed")->holders().empty());

  const absl::StatusOr<v1::RunInfo> idle = GetRun("jobs/alive");
  ASSERT_TRUE(idle.ok()) << idle.status();
  EXPECT_EQ(idle->state(), v1::RUN_STATE_OPEN);
  ASSERT_EQ(idle->holders_size(), 1);
  EXPECT_EQ(idle->holders(0).streams(), 1u);

  // The closed run's place is free (--max-runs counts open runs only).
  EXPECT_TRUE(OpenRun("jobs/third", "third").ok());
  EXPECT_TRUE(CloseRun("jobs/third", "third").ok());

  // The trainer, rescheduled, resumes its run where it was.
  auto back = Writer::Open(Options("jobs/killed", "trainer-1"));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE((*back)->scalar("loss", 4, 0.25f).ok());
  ASSERT_TRUE((*back)->close().ok());
  EXPECT_EQ(Steps("jobs/killed"), (std::vector<std::string>{"loss@1", "loss@2", "loss@3", "loss@4"}));
  EXPECT_TRUE((*alive)->close().ok());
  EXPECT_EQ(GetRun("jobs/alive")->state(), v1::RUN_STATE_CLOSED);
}

TEST_F(LeasesE2ETest, TheOtherWritersOfASharedRunKeepWritingAfterOneCloses) {
  StartDaemon({});
  auto rank0 = Writer::Open(Options("shared", "rank0"));
  auto rank1 = Writer::Open(Options("shared", "rank1"));
  ASSERT_TRUE(rank0.ok()) << rank0.status();
  ASSERT_TRUE(rank1.ok()) << rank1.status();
  for (int step = 0; step < 10; ++step) {
    ASSERT_TRUE((*rank0)->scalar("rank0/loss", step, 1.0f).ok());
    ASSERT_TRUE((*rank1)->scalar("rank1/loss", step, 1.0f).ok());
  }
  ASSERT_TRUE((*rank0)->close().ok());
  const absl::StatusOr<v1::RunInfo> after_one = GetRun("shared");
  ASSERT_TRUE(after_one.ok()) << after_one.status();
  EXPECT_EQ(after_one->state(), v1::RUN_STATE_OPEN);
  ASSERT_EQ(after_one->holders_size(), 1);
  EXPECT_EQ(after_one->holders(0).writer_id(), "rank1");

  for (int step = 10; step < 20; ++step) {
    ASSERT_TRUE((*rank1)->scalar("rank1/loss", step, 1.0f).ok());
  }
  ASSERT_TRUE((*rank1)->flush(/*sync=*/true).ok());
  ASSERT_TRUE((*rank1)->close().ok());
  EXPECT_EQ(GetRun("shared")->state(), v1::RUN_STATE_CLOSED);

  std::map<std::string, int> points;
  for (const std::string& tag_step : Steps("shared")) {
    ++points[tag_step.substr(0, tag_step.find('@'))];
  }
  EXPECT_EQ(points["rank0/loss"], 10);
  EXPECT_EQ(points["rank1/loss"], 20);
}

}  // namespace
}  // namespace tblog
