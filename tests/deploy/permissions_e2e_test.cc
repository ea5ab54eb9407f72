// The unix socket and the log files as the deployments use them, against the
// real tblogd (issue 10): the daemon gives its socket --unix-socket-mode and
// --unix-socket-group, and what it creates --file-mode and --dir-mode,
// whatever umask it was started under. As root, the three uids of the
// deployment files: tblogd as 10001, a trainer (10003) in the socket's group
// streams through it while one outside the group (10004) is refused, and a
// TensorBoard-like reader (10002) reads every file. Children of other uids are
// forked and setuid before exec; tblogd itself runs under setpriv.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"

namespace tblog::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// The uids of the deployment files (Dockerfile, deploy/).
constexpr uid_t kDaemonUid = 10001;
constexpr uid_t kReaderUid = 10002;
constexpr uid_t kTrainerUid = 10003;
constexpr uid_t kStrangerUid = 10004;

// Who a child process runs as: uid, primary gid and supplementary groups.
struct Identity {
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;
};

// In a forked child: becomes `who`. Only async-signal-safe calls.
void BecomeInChild(const Identity& who) {
  if (::setgroups(who.groups.size(), who.groups.data()) != 0 || ::setgid(who.gid) != 0 ||
      ::setuid(who.uid) != 0) {
    _exit(126);
  }
}

// Runs `argv` (as `who` when set; that needs root) with stdout and stderr in
// `output` (mode 0644, so any uid reads it), waits at most 120 s, and returns
// the exit code (128 + signal when killed).
int RunAs(const std::optional<Identity>& who, std::vector<std::string> argv,
          const std::string& output) {
  const int out = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0 || ::fchmod(out, 0644) != 0) return -1;
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    if (who.has_value()) BecomeInChild(*who);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(out);
  if (pid < 0) return -1;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &wstatus, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}

// The errno of connect() to the unix socket `path` by a child running as
// `who`; 0 when it connects.
int ConnectErrnoAs(const Identity& who, const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  const pid_t pid = ::fork();
  if (pid == 0) {
    BecomeInChild(who);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) _exit(125);
    _exit(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0 ? 0
                                                                                          : errno);
  }
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
}

struct Stat {
  uint32_t mode;
  uid_t uid;
  gid_t gid;
};
Stat StatOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return {static_cast<uint32_t>(st.st_mode & 07777), st.st_uid, st.st_gid};
}

// Every directory under `root` (itself included) has `dir_mode`, every
// regular file `file_mode`; returns how many files there are.
int ExpectModes(const std::string& root, uint32_t file_mode, uint32_t dir_mode) {
  EXPECT_EQ(StatOf(root).mode, dir_mode) << root;
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    const std::string path = entry.path().string();
    if (entry.is_symlink()) {
      ADD_FAILURE() << "a symlink in the logdir: " << path;
    } else if (entry.is_directory()) {
      EXPECT_EQ(StatOf(path).mode, dir_mode) << std::oct << path;
    } else if (entry.is_regular_file()) {
      EXPECT_EQ(StatOf(path).mode, file_mode) << std::oct << path;
      ++files;
    }
  }
  return files;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

class PermissionsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(temp_.path().empty());
    root_ = temp_.path();
    // mkdtemp made it 0700: others must reach the socket and the logs.
    ASSERT_EQ(::chmod(root_.c_str(), 0755), 0);
    fs::create_directories(root_ + "/sock");
    fs::create_directories(root_ + "/out");
    logdir_ = root_ + "/logs";  // made by tblogd, with --dir-mode
    socket_ = root_ + "/sock/tblogd.sock";
  }

  // Starts tblogd (`binary`, "" = this build's) on logdir_ and socket_ under
  // `umask`, as every child it forks would inherit it.
  absl::StatusOr<std::unique_ptr<DaemonProcess>> StartDaemon(mode_t umask,
                                                            std::vector<std::string> args,
                                                            std::string binary = "") {
    const mode_t previous = ::umask(umask);
    auto daemon = DaemonProcess::Start({.binary = std::move(binary),
                                        .logdir = logdir_,
                                        .socket_path = socket_,
                                        .extra_args = std::move(args),
                                        .log_path = root_ + "/out/tblogd.log"});
    ::umask(previous);
    return daemon;
  }

  // Streams every record kind into run `run` through the socket, as `who`
  // (this process's identity when unset); returns the streamer's exit code.
  int Stream(const std::optional<Identity>& who, const std::string& streamer,
             const std::string& run) {
    return RunAs(who, {streamer, "--target", "unix:" + socket_, "--run-path", run, "--steps", "20"},
                 root_ + "/out/sent-" + run + ".json");
  }

  TempDir temp_;
  std::string root_;
  std::string logdir_;
  std::string socket_;
};

// A group this process may give files to: any as root, else its own.
gid_t GivableGroup() { return ::geteuid() == 0 ? 4242 : ::getegid(); }

// Polls until the socket at `path` has `mode` and `gid` (a socket that must
// change group is private for a moment after tblogd serves), at most 10 s.
Stat WaitForSocketAccess(const std::string& path, uint32_t mode, gid_t gid) {
  Stat now = StatOf(path);
  for (int i = 0; i < 1000 && (now.mode != mode || now.gid != gid); ++i) {
    EXPECT_EQ(now.mode & ~mode, 0u) << "more open than asked, meanwhile";
    absl::SleepFor(absl::Milliseconds(10));
    now = StatOf(path);
  }
  return now;
}

TEST_F(PermissionsE2eTest, SocketAndFilesGetTheDefaultModesUnderUmask077) {
  // The socket's directory is setgid to the group (as a Kubernetes fsGroup
  // volume is): the socket is created with its group, mode 0660 at once.
  const gid_t group = GivableGroup();
  const std::string sock_dir = root_ + "/sock";
  ASSERT_EQ(::chown(sock_dir.c_str(), static_cast<uid_t>(-1), group), 0);
  ASSERT_EQ(::chmod(sock_dir.c_str(), 02755), 0);
  auto daemon = StartDaemon(077, {"--unix-socket-group", std::to_string(group)});
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  const Stat socket = StatOf(socket_);
  EXPECT_EQ(socket.mode, 0660u);
  EXPECT_EQ(socket.gid, group);

  ASSERT_EQ(Stream(std::nullopt, TBLOG_STREAMER, "run"), 0) << ReadFile(root_ + "/out/sent-run.json");
  EXPECT_GE(ExpectModes(logdir_, 0644, 0755), 5);  // event files, projector files, checkpoint
  EXPECT_TRUE((*daemon)->Stop().ok());
}

TEST_F(PermissionsE2eTest, ConfiguredModesAreApplied) {
  auto daemon = StartDaemon(
      022, {"--unix-socket-mode", "0600", "--file-mode", "0640", "--dir-mode", "0750"});
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  const Stat socket = StatOf(socket_);
  EXPECT_EQ(socket.mode, 0600u);
  EXPECT_EQ(socket.gid, ::getegid());  // no --unix-socket-group: as created
  ASSERT_EQ(Stream(std::nullopt, TBLOG_STREAMER, "run"), 0) << ReadFile(root_ + "/out/sent-run.json");
  EXPECT_GE(ExpectModes(logdir_, 0640, 0750), 5);
  EXPECT_TRUE((*daemon)->Stop().ok());
}

TEST_F(PermissionsE2eTest, ASocketGivenToAnotherGroupGetsItAndItsMode) {
  const gid_t group = GivableGroup();
  if (group == ::getegid()) GTEST_SKIP() << "needs root to give the socket to another group";
  auto daemon = StartDaemon(077, {"--unix-socket-group", std::to_string(group),
                                  "--unix-socket-mode", "0660"});
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  const Stat socket = WaitForSocketAccess(socket_, 0660, group);
  EXPECT_EQ(socket.mode, 0660u);
  EXPECT_EQ(socket.gid, group);
  EXPECT_TRUE((*daemon)->Stop().ok());
}

TEST_F(PermissionsE2eTest, AnUnknownGroupStopsTheStartNamingIt) {
  auto daemon = StartDaemon(022, {"--unix-socket-group", "no-such-tblog-group"});
  ASSERT_FALSE(daemon.ok());
  EXPECT_THAT(daemon.status().message(), HasSubstr("no group named 'no-such-tblog-group'"));
}

// As root: puts tblogd, the streamer and the checker in bin_, where every uid
// reaches them (the build tree may sit under a 0700 home), with
// bin_/tblogd-as-10001 starting tblogd as 10001:10001 (setpriv), and gives the
// daemon its volume and socket directory, as a pod's fsGroup or a compose
// volume owned by the image's user does.
class ThreeUidsTest : public PermissionsE2eTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run processes of other uids";
    PermissionsE2eTest::SetUp();
    bin_ = root_ + "/bin";
    fs::create_directories(bin_);
    ASSERT_EQ(::chmod(bin_.c_str(), 0755), 0);
    for (const std::string from : {TBLOG_TBLOGD, TBLOG_STREAMER, TBLOG_CHECK_LOGDIR}) {
      const std::string to = bin_ + "/" + fs::path(from).filename().string();
      fs::copy_file(from, to);
      ASSERT_EQ(::chmod(to.c_str(), 0755), 0);
    }
    tblogd_ = bin_ + "/tblogd";
    as_daemon_ = bin_ + "/tblogd-as-10001";
    std::ofstream(as_daemon_) << "#!/bin/sh\nexec setpriv --reuid=10001 --regid=10001 "
                              << "--clear-groups " << tblogd_ << " \"$@\"\n";
    ASSERT_EQ(::chmod(as_daemon_.c_str(), 0755), 0);
    ASSERT_EQ(::chown(root_.c_str(), kDaemonUid, kDaemonUid), 0);
    ASSERT_EQ(::chown((root_ + "/sock").c_str(), kDaemonUid, kDaemonUid), 0);
  }

  std::string bin_;
  std::string tblogd_;
  std::string as_daemon_;
};

TEST_F(ThreeUidsTest, ADaemonCannotGiveItsSocketToAGroupItIsNotIn) {
  auto daemon = StartDaemon(022, {"--unix-socket-group", "4242"}, as_daemon_);
  ASSERT_FALSE(daemon.ok());
  EXPECT_THAT(daemon.status().message(), HasSubstr("must be a member of that group"));
}

TEST_F(ThreeUidsTest, TrainerReaderAndDaemonOfThreeUids) {
  const std::string& bin = bin_;
  const std::string& tblogd = tblogd_;
  // Default mode and group: 0660, the daemon's group.
  auto daemon = StartDaemon(077, {}, as_daemon_);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  const Stat socket = StatOf(socket_);
  EXPECT_EQ(socket.mode, 0660u);
  EXPECT_EQ(socket.uid, kDaemonUid);
  EXPECT_EQ(socket.gid, kDaemonUid);

  // Outside the group: refused by the kernel, and a health check fails.
  const Identity stranger{kStrangerUid, kStrangerUid, {}};
  EXPECT_EQ(ConnectErrnoAs(stranger, socket_), EACCES);
  EXPECT_EQ(RunAs(stranger, {tblogd, "health", "--address", "unix:" + socket_, "--timeout", "3s"},
                  root_ + "/out/stranger-health.txt"),
            1);

  // In the group (a supplementary one, as a pod's fsGroup or compose's
  // group_add gives it): connects and streams every kind.
  const Identity trainer{kTrainerUid, kTrainerUid, {kDaemonUid}};
  EXPECT_EQ(ConnectErrnoAs(trainer, socket_), 0);
  ASSERT_EQ(Stream(trainer, bin + "/tblog-stream-every-kind", "shared-run"), 0)
      << ReadFile(root_ + "/out/sent-shared-run.json");

  // Owned by the daemon, readable by all under umask 077.
  EXPECT_EQ(StatOf(logdir_).uid, kDaemonUid);
  EXPECT_GE(ExpectModes(logdir_, 0644, 0755), 5);

  // A reader of a third uid, in no group of the daemon's, reads every file:
  // the event files with the project's reader, the projector files with the
  // container test's checker, against what the trainer sent.
  const Identity reader{kReaderUid, kReaderUid, {}};
  ASSERT_EQ(RunAs(reader, {tblogd, "inspect", "--json", logdir_}, root_ + "/out/inspect.json"), 0)
      << ReadFile(root_ + "/out/inspect.json");
  EXPECT_EQ(RunAs(reader,
                  {"/usr/bin/python3", bin + "/check_logdir.py", root_ + "/out/inspect.json",
                   logdir_, root_ + "/out/sent-shared-run.json"},
                  root_ + "/out/check.txt"),
            0)
      << ReadFile(root_ + "/out/check.txt");
  EXPECT_TRUE((*daemon)->Stop().ok()) << ReadFile(root_ + "/out/tblogd.log");
}

}  // namespace
}  // namespace tblog::testing
