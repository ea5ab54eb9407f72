#include "support/daemon_process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace tblog::testing {
namespace {

// The last `max_bytes` of a file, or "" when it cannot be read.
std::string FileTail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  const std::string all = text.str();
  return all.size() > max_bytes ? all.substr(all.size() - max_bytes) : all;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DaemonProcess>> DaemonProcess::Start(Options options) {
  if (options.binary.empty()) options.binary = TBLOG_DEFAULT_TBLOGD;
  if (access(options.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("tblogd binary not executable: ", options.binary));
  }
  auto daemon = std::unique_ptr<DaemonProcess>(new DaemonProcess());
  if (options.logdir.empty() || options.socket_path.empty()) {
    daemon->temp_ = std::make_unique<TempDir>();
    if (daemon->temp_->path().empty()) return absl::InternalError("mkdtemp failed");
    if (options.logdir.empty()) options.logdir = daemon->temp_->path() + "/logs";
    if (options.socket_path.empty()) options.socket_path = daemon->temp_->path() + "/tblogd.sock";
  }
  daemon->logdir_ = options.logdir;
  daemon->socket_path_ = options.socket_path;
  daemon->log_path_ = options.log_path;
  std::error_code ignored;  // a stale socket from a killed daemon; tblogd refuses other files
  std::filesystem::remove(options.socket_path, ignored);

  std::vector<std::string> args = {options.binary, "--logdir", options.logdir,
                                   "--unix-socket", options.socket_path};
  // No TCP unless extra_args asks for it (a benchmark's loopback port).
  if (std::find(options.extra_args.begin(), options.extra_args.end(), "--listen") ==
      options.extra_args.end()) {
    args.insert(args.end(), {"--listen", ""});
  }
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const char* log_path = options.log_path.empty() ? nullptr : options.log_path.c_str();

  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {  // only async-signal-safe calls between fork and exec
    if (log_path != nullptr) {
      const int fd = ::open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
      }
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  daemon->pid_ = pid;

  const absl::Time deadline = absl::Now() + options.start_timeout;
  while (!daemon->Serving()) {
    int wstatus = 0;
    if (waitpid(pid, &wstatus, WNOHANG) == pid) {
      daemon->pid_ = -1;
      return absl::InternalError(
          absl::StrCat("tblogd exited during start-up: ", daemon->DescribeExit(wstatus)));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "tblogd not SERVING on ", daemon->target(), " within ",
          absl::FormatDuration(options.start_timeout)));
    }  // the destructor kills the child
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return daemon;
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) (void)Stop();
}

absl::Status DaemonProcess::Stop(int signal, absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("tblogd is not running");
  kill(pid_, signal);
  const absl::Time deadline = absl::Now() + timeout;
  int wstatus = 0;
  while (waitpid(pid_, &wstatus, WNOHANG) != pid_) {
    if (absl::Now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &wstatus, 0);
      pid_ = -1;
      return absl::DeadlineExceededError(
          absl::StrCat("tblogd did not exit within ", absl::FormatDuration(timeout), "; killed"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("tblogd ", DescribeExit(wstatus)));
}

bool DaemonProcess::Serving() const {
  std::error_code ignored;
  if (!std::filesystem::exists(socket_path_, ignored)) return false;  // not bound yet
  // A fresh channel with its own subchannel each try: a failed connect would
  // otherwise leave gRPC's reconnect backoff (seconds) on the subchannel that
  // the caller's own channel to the same target then shares.
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateCustomChannel(target(), grpc::InsecureChannelCredentials(), channel_args));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = health->Check(&context, {}, &response);
  return status.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

std::string DaemonProcess::DescribeExit(int wstatus) const {
  std::string how = WIFEXITED(wstatus)     ? absl::StrCat("exited with status ", WEXITSTATUS(wstatus))
                    : WIFSIGNALED(wstatus) ? absl::StrCat("killed by signal ", WTERMSIG(wstatus))
                                           : std::string("stopped");
  if (!log_path_.empty()) absl::StrAppend(&how, "; its log ends:\n", FileTail(log_path_, 4000));
  return how;
}

}  // namespace tblog::testing
