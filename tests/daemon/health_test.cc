// gRPC health (grpc.health.v1.Health) follows the daemon's start: NOT_SERVING
// until Daemon::Start has finished (its listeners answer from the moment gRPC
// starts them, before the shared-memory socket and the rest are ready),
// SERVING then (Shutdown says NOT_SERVING first thing). A real Daemon in this
// process; its Start is held part way through by a FileSystem whose Stat of
// the shared-memory socket path waits for the test, and `tblogd health`'s own
// CheckHealth asks.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/synchronization/notification.h"
#include "daemon/daemon.h"
#include "daemon/health_probe.h"
#include "daemon_test_util.h"
#include "gtest/gtest.h"
#include "support/fault_file_system.h"

namespace tblog::daemon {
namespace {

constexpr char kServiceName[] = "tblog.v1.TBLog";

// Stat of a path ending in `suffix` waits until Release(); the rest passes.
class HoldingFileSystem : public FaultFileSystem {
 public:
  explicit HoldingFileSystem(std::string suffix) : suffix_(std::move(suffix)) {}
  absl::StatusOr<FileInfo> Stat(const std::string& path) override {
    if (path.size() >= suffix_.size() &&
        path.compare(path.size() - suffix_.size(), suffix_.size(), suffix_) == 0 &&
        !held_.HasBeenNotified()) {
      held_.Notify();
      release_.WaitForNotification();
    }
    return FaultFileSystem::Stat(path);
  }
  void WaitUntilHeld() { held_.WaitForNotification(); }
  void Release() { release_.Notify(); }

 private:
  const std::string suffix_;
  absl::Notification held_;
  absl::Notification release_;
};

TEST(HealthTest, NotServingUntilStartFinishes) {
  const std::filesystem::path logdir = testing::FreshTempDir("health_test");
  const std::string socket =
      (logdir.parent_path() / ("health_" + std::to_string(::getpid()) + ".sock")).string();
  HoldingFileSystem file_system(".shm");
  DaemonOptions options;
  options.logdir = logdir.string();
  options.listen = "";
  options.unix_socket = socket;
  options.workers = 1;
  options.file.file_system = &file_system;
  absl::StatusOr<std::unique_ptr<Daemon>> started = absl::UnknownError("not started");
  std::thread start([&] { started = Daemon::Start(options); });
  file_system.WaitUntilHeld();  // gRPC listens; Start is not done (before: SERVING)
  const std::string address = "unix:" + socket;
  const absl::Status early = CheckHealth(address, "", absl::Seconds(10));
  const absl::Status early_service = CheckHealth(address, kServiceName, absl::Seconds(10));
  file_system.Release();
  start.join();
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(early.code(), absl::StatusCode::kUnavailable) << early;
  EXPECT_NE(early.message().find("NOT_SERVING"), std::string::npos) << early;
  EXPECT_FALSE(early_service.ok()) << early_service;

  EXPECT_TRUE(CheckHealth(address, "", absl::Seconds(10)).ok());
  EXPECT_TRUE(CheckHealth(address, kServiceName, absl::Seconds(10)).ok());
  EXPECT_TRUE((*started)->Shutdown(absl::Seconds(10)).ok());
}

}  // namespace
}  // namespace tblog::daemon
