// Exclusive addresses against the real binary (issue 9): a second tblogd on a
// TCP port or a unix socket that is in use exits non-zero with a message
// naming the address, and the first daemon keeps serving.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"

namespace tblog {
namespace {

using ::testing::HasSubstr;

struct Outcome {
  int wait_status = -1;
  std::string output;  // stdout and stderr
};

// Runs the tblogd of this build tree with `args` (under `timeout`, so a
// daemon that did not refuse cannot hang the test) and collects its output.
Outcome RunTblogd(const std::vector<std::string>& args) {
  std::string command = absl::StrCat("timeout 60 '", TBLOGD_BINARY, "'");
  for (const std::string& arg : args) absl::StrAppend(&command, " '", arg, "'");
  absl::StrAppend(&command, " 2>&1");
  Outcome outcome;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return outcome;
  char buffer[4096];
  size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) outcome.output.append(buffer, got);
  outcome.wait_status = ::pclose(pipe);
  return outcome;
}

bool ExitedWithFailure(const Outcome& outcome) {
  return outcome.wait_status != -1 && WIFEXITED(outcome.wait_status) &&
         WEXITSTATUS(outcome.wait_status) != 0 && WEXITSTATUS(outcome.wait_status) != 124;
}

TEST(AddressE2eTest, ASecondTblogdOnAPortInUseExitsNamingIt) {
  // Whatever holds the port: here a plain listening socket.
  const int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(holder, 4), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::getsockname(holder, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string listen = absl::StrCat("127.0.0.1:", ntohs(address.sin_port));

  testing::TempDir dir;
  const Outcome outcome = RunTblogd({"--logdir", dir.path() + "/logs", "--listen", listen});
  EXPECT_TRUE(ExitedWithFailure(outcome)) << outcome.wait_status << "\n" << outcome.output;
  EXPECT_THAT(outcome.output, HasSubstr(listen + ": the port is in use"));
  ::close(holder);
}

TEST(AddressE2eTest, ASecondTblogdOnALiveSocketExitsAndTheFirstKeepsServing) {
  auto first = testing::DaemonProcess::Start({});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string socket = (*first)->socket_path();

  testing::TempDir dir;
  const Outcome outcome = RunTblogd(
      {"--logdir", dir.path() + "/logs", "--listen", "", "--unix-socket", socket});
  EXPECT_TRUE(ExitedWithFailure(outcome)) << outcome.wait_status << "\n" << outcome.output;
  EXPECT_THAT(outcome.output, HasSubstr("unix socket " + socket + " is in use"));

  // The first daemon still answers on its socket.
  const Outcome health = RunTblogd({"health", "--address", "unix:" + socket});
  EXPECT_TRUE(WIFEXITED(health.wait_status) && WEXITSTATUS(health.wait_status) == 0)
      << health.output;
  EXPECT_TRUE((*first)->Stop(SIGTERM).ok());
}

}  // namespace
}  // namespace tblog
