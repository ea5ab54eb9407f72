// Starts a real tblogd as a child process, waits until it is healthy, and
// stops it: the one copy of that code, for the end-to-end tests
// (tests/client/writer_e2e_test.cc and others) and the load generator's
// --spawn-daemon (bench/tblog_loadgen.cc). CMake target tblog_daemon_process.
// POSIX only (fork/exec, waitpid).
//
//   auto daemon = tblog::testing::DaemonProcess::Start({});
//   ASSERT_TRUE(daemon.ok()) << daemon.status();
//   writer_options.target = (*daemon)->target();
//   ... (*daemon)->logdir() holds the runs ...
#ifndef TBLOG_TESTS_SUPPORT_DAEMON_PROCESS_H_
#define TBLOG_TESTS_SUPPORT_DAEMON_PROCESS_H_

#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace tblog::testing {

// A fresh directory under $TEST_TMPDIR or /tmp, removed with its contents by
// the destructor. Header-only: tests that need nothing else use it without
// linking tblog_daemon_process.
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

// One tblogd child process, serving on a unix socket only. Not thread-safe;
// one owner. The destructor stops a daemon still running (SIGTERM, then
// SIGKILL after 60 s) and removes the temporary directory it made.
class DaemonProcess {
 public:
  struct Options {
    // The binary; "" = the tblogd built in this build tree.
    std::string binary;
    // "" = a temporary directory owned by the DaemonProcess. Pass the same
    // logdir and socket to a second Start() to restart "the same" daemon.
    std::string logdir;
    std::string socket_path;  // "" = <temp dir>/tblogd.sock
    std::vector<std::string> extra_args;
    // The child's stdout and stderr go to this file (truncated), whose tail
    // is quoted in Start's and Stop's errors; "" = they are this process's.
    std::string log_path;
    // How long to wait for the daemon's health service to answer SERVING.
    absl::Duration start_timeout = absl::Seconds(60);
  };

  // Starts `binary --logdir L --unix-socket S --listen '' <extra_args>`
  // (without --listen '' when extra_args has a --listen) and
  // waits until its gRPC health service on S answers SERVING. Errors: the
  // binary is missing, the child exited early (how), or the timeout passed
  // (the child is then killed).
  static absl::StatusOr<std::unique_ptr<DaemonProcess>> Start(Options options);

  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Sends `signal` and waits for the exit, sending SIGKILL after `timeout`.
  // OK when it exited with status 0 (SIGTERM: drained cleanly); otherwise an
  // error describing the exit. SIGKILL simulates a crash (the status then
  // reports the signal). FAILED_PRECONDITION when it is not running.
  absl::Status Stop(int signal = SIGTERM, absl::Duration timeout = absl::Seconds(60));

  // gRPC target for clients: "unix:<socket>".
  std::string target() const { return "unix:" + socket_path_; }
  const std::string& logdir() const { return logdir_; }
  const std::string& socket_path() const { return socket_path_; }
  // The child's pid while it runs, -1 once it has exited.
  pid_t pid() const { return pid_; }

 private:
  DaemonProcess() = default;

  // Whether the health service answers SERVING now.
  bool Serving() const;
  // How the child ended, with the tail of its log when there is one.
  std::string DescribeExit(int wstatus) const;

  std::unique_ptr<TempDir> temp_;  // owns logdir/socket when not given
  std::string logdir_;
  std::string socket_path_;
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace tblog::testing

#endif  // TBLOG_TESTS_SUPPORT_DAEMON_PROCESS_H_
