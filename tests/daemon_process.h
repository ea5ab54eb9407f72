// For end-to-end tests: runs the real tblogd binary as a child process on a
// temporary log directory and unix socket, and stops it at teardown.
//
//   auto daemon = tblog::testing::DaemonProcess::Start({});
//   ASSERT_TRUE(daemon.ok()) << daemon.status();
//   writer_options.target = (*daemon)->target();
//   ... (*daemon)->logdir() holds the runs ...
//
// Header-only so that any test target can use it; POSIX (fork/exec).
#ifndef TBLOG_TESTS_DAEMON_PROCESS_H_
#define TBLOG_TESTS_DAEMON_PROCESS_H_

#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tblog::testing {

// A fresh directory under $TEST_TMPDIR or /tmp, removed by its destructor.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/tblog-test-XXXXXX");
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;  // best effort: a leftover temp dir is harmless
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Empty when the directory could not be created.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One tblogd child process. Not thread-safe; one owner.
class DaemonProcess {
 public:
  struct Options {
    // The binary; the default is the one built alongside the tests.
    std::string binary = TBLOG_BINARY_DIR "/server/daemon/tblogd";
    // "" = a temporary directory owned by the DaemonProcess. Pass the same
    // logdir and socket to a second Start() to restart "the same" daemon.
    std::string logdir;
    std::string socket_path;  // "" = <temp dir>/tblogd.sock
    std::vector<std::string> extra_args;
    // How long to wait for the socket to accept connections.
    absl::Duration start_timeout = absl::Seconds(60);
  };

  // Starts tblogd --logdir L --unix-socket S --listen '' <extra_args> and
  // waits until S accepts a connection. Errors: the binary is missing, the
  // child exited early (its exit status), or the timeout passed.
  static absl::StatusOr<std::unique_ptr<DaemonProcess>> Start(Options options) {
    if (access(options.binary.c_str(), X_OK) != 0) {
      return absl::NotFoundError(absl::StrCat("tblogd binary not found: ", options.binary));
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
    std::filesystem::remove(options.socket_path);  // a stale socket from a killed daemon

    std::vector<std::string> args = {options.binary, "--logdir", options.logdir,
                                     "--unix-socket", options.socket_path, "--listen", ""};
    args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);

    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
    if (pid == 0) {
      execv(argv[0], argv.data());
      _exit(127);  // exec failed; only async-signal-safe calls after fork
    }
    daemon->pid_ = pid;

    const absl::Time deadline = absl::Now() + options.start_timeout;
    while (!daemon->Accepting()) {
      int wstatus = 0;
      if (waitpid(pid, &wstatus, WNOHANG) == pid) {
        daemon->pid_ = -1;
        return absl::InternalError(absl::StrCat("tblogd exited during start-up: ",
                                                DescribeExit(wstatus)));
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "tblogd did not accept connections on ", options.socket_path, " within ",
            absl::FormatDuration(options.start_timeout)));
      }  // the destructor kills the child
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return daemon;
  }

  // Stops the daemon (SIGTERM, then SIGKILL after 60 s) if it still runs.
  ~DaemonProcess() {
    if (pid_ > 0) (void)Stop();
  }
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Sends `signal` and waits for the exit. OK when it exited with status 0
  // (SIGTERM: drained cleanly); otherwise an error describing the exit.
  // SIGKILL simulates a crash (the status then reports the signal).
  absl::Status Stop(int signal = SIGTERM, absl::Duration timeout = absl::Seconds(60)) {
    if (pid_ <= 0) return absl::FailedPreconditionError("tblogd is not running");
    kill(pid_, signal);
    const absl::Time deadline = absl::Now() + timeout;
    int wstatus = 0;
    while (waitpid(pid_, &wstatus, WNOHANG) != pid_) {
      if (absl::Now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &wstatus, 0);
        pid_ = -1;
        return absl::DeadlineExceededError("tblogd did not exit in time; killed");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("tblogd ", DescribeExit(wstatus)));
  }

  // gRPC target for clients: "unix:<socket>".
  std::string target() const { return "unix:" + socket_path_; }
  const std::string& logdir() const { return logdir_; }
  const std::string& socket_path() const { return socket_path_; }
  pid_t pid() const { return pid_; }

 private:
  DaemonProcess() = default;

  bool Accepting() const {
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_path_.c_str(), sizeof(address.sun_path) - 1);
    const bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
    close(fd);
    return ok;
  }

  static std::string DescribeExit(int wstatus) {
    if (WIFEXITED(wstatus)) return absl::StrCat("exited with status ", WEXITSTATUS(wstatus));
    if (WIFSIGNALED(wstatus)) return absl::StrCat("killed by signal ", WTERMSIG(wstatus));
    return "stopped";
  }

  std::unique_ptr<TempDir> temp_;  // owns logdir/socket when not given
  std::string logdir_;
  std::string socket_path_;
  pid_t pid_ = -1;
};

}  // namespace tblog::testing

#endif  // TBLOG_TESTS_DAEMON_PROCESS_H_
