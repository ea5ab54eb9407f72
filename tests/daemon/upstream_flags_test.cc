// The flags of upstream mode (upstream_flags.h): parsed into
// DaemonOptions::upstream from flags and the environment, and checked, with
// an error naming the flag that is wrong.
#include "daemon/upstream_flags.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "daemon/upstream_channel.h"
#include "daemon_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

using ::testing::HasSubstr;

struct Parsed {
  Command command;
  std::string err;
};

Parsed Parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"tblogd"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  std::ostringstream out, err;
  Parsed parsed{ParseCommandLine(static_cast<int>(argv.size()), argv.data(), out, err), ""};
  parsed.err = err.str() + out.str();
  return parsed;
}

TEST(UpstreamFlagsTest, OffByDefault) {
  const Parsed parsed = Parse({});
  ASSERT_EQ(parsed.command.kind, Command::Kind::kServe) << parsed.err;
  EXPECT_FALSE(parsed.command.options.upstream.enabled());
  EXPECT_EQ(parsed.command.options.upstream.forward, "all");
  EXPECT_EQ(parsed.command.options.upstream.call_timeout, UpstreamOptions{}.call_timeout);
}

TEST(UpstreamFlagsTest, ForwardsReducedRecordsOnlyWhenAsked) {
  const Parsed parsed = Parse({"--upstream", "central:6066", "--upstream-forward", "reduced"});
  ASSERT_EQ(parsed.command.kind, Command::Kind::kServe) << parsed.err;
  EXPECT_EQ(parsed.command.options.upstream.forward, "reduced");
}

// A node forwarding everything writes nothing, so it serves no shared
// memory: a ring attached to it would be refused upstream (the upstream has
// no mapping of it), and the clients would retry and fill its ring budget.
TEST(UpstreamFlagsTest, ANodeForwardingEverythingServesNoSharedMemory) {
  const Parsed all = Parse({"--upstream", "central:6066", "--unix-socket", "/run/tblog/s"});
  ASSERT_EQ(all.command.kind, Command::Kind::kServe) << all.err;
  EXPECT_EQ(all.command.options.ShmSocketPath(), "");
  const Parsed reduced = Parse({"--upstream", "central:6066", "--upstream-forward", "reduced",
                                "--unix-socket", "/run/tblog/s"});
  ASSERT_EQ(reduced.command.kind, Command::Kind::kServe) << reduced.err;
  EXPECT_EQ(reduced.command.options.ShmSocketPath(), "/run/tblog/s.shm");
  const Parsed asked = Parse({"--upstream", "central:6066", "--shm-socket", "/run/tblog/shm"});
  EXPECT_NE(asked.command.kind, Command::Kind::kServe);
  EXPECT_THAT(asked.err, HasSubstr("--shm-socket"));
  EXPECT_THAT(asked.err, HasSubstr("--upstream-forward all"));
  const Parsed off = Parse({"--upstream", "central:6066", "--shm-socket", "off"});
  EXPECT_EQ(off.command.kind, Command::Kind::kServe) << off.err;
}

TEST(UpstreamFlagsTest, TakesTheAddressTheTokenAndTheTimeout) {
  const std::string token = (testing::FreshTempDir("upstream_flags_test") / "token").string();
  std::ofstream(token) << "  0123456789abcdef0123456789abcdef  \n# comment\n";
  const Parsed parsed = Parse({"--upstream", "central:6066", "--upstream-token-file", token,
                               "--upstream-tls-ca", "/etc/ca.crt", "--upstream-timeout", "5s"});
  ASSERT_EQ(parsed.command.kind, Command::Kind::kServe) << parsed.err;
  const UpstreamOptions& upstream = parsed.command.options.upstream;
  EXPECT_EQ(upstream.address, "central:6066");
  EXPECT_EQ(upstream.tls_ca_file, "/etc/ca.crt");
  EXPECT_EQ(upstream.call_timeout, absl::Seconds(5));
  auto connection = UpstreamConnection(upstream);
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(connection->token, "0123456789abcdef0123456789abcdef");  // trimmed first line
  EXPECT_TRUE(connection->uses_tls());
}

TEST(UpstreamFlagsTest, TheEnvironmentSetsThem) {
  ::setenv("TBLOG_UPSTREAM", "unix:/run/central.sock", 1);
  const Parsed parsed = Parse({});
  ::unsetenv("TBLOG_UPSTREAM");
  ASSERT_EQ(parsed.command.kind, Command::Kind::kServe) << parsed.err;
  EXPECT_EQ(parsed.command.options.upstream.address, "unix:/run/central.sock");
}

TEST(UpstreamFlagsTest, WrongSettingsNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string named;
  };
  const std::vector<Case> cases = {
      {{"--upstream", "central:6066", "--upstream-timeout", "soon"}, "--upstream-timeout"},
      {{"--upstream", "central:6066", "--upstream-timeout", "0s"}, "--upstream-timeout"},
      {{"--upstream", "central:6066", "--upstream-forward", "some"}, "--upstream-forward"},
      {{"--upstream", "central:6066", "--upstream-tls-cert", "c.pem"}, "--upstream-tls-key"},
      {{"--upstream", "central:6066", "--upstream-token-file", "/nonexistent/token"},
       "--upstream-token-file"},
      {{"--upstream-token-file", "/etc/token"}, "--upstream is not"},
  };
  for (const Case& c : cases) {
    const Parsed parsed = Parse(c.args);
    EXPECT_EQ(parsed.command.kind, Command::Kind::kExit) << c.named;
    EXPECT_NE(parsed.command.exit_code, 0) << c.named;
    EXPECT_THAT(parsed.err, HasSubstr(c.named));
  }
}

TEST(UpstreamFlagsTest, AnEmptyTokenFileIsRefused) {
  const std::string token = (testing::FreshTempDir("upstream_flags_empty") / "token").string();
  std::ofstream(token) << "\n";
  const Parsed parsed = Parse({"--upstream", "central:6066", "--upstream-token-file", token});
  EXPECT_EQ(parsed.command.kind, Command::Kind::kExit);
  EXPECT_THAT(parsed.err, HasSubstr("has no token"));
}

TEST(UpstreamFlagsTest, TheKeepaliveIsADurationOfAtLeastASecond) {
  EXPECT_EQ(Parse({}).command.options.upstream.keepalive, absl::Seconds(10));
  const Parsed parsed = Parse({"--upstream", "central:6066", "--upstream-keepalive", "2s"});
  ASSERT_EQ(parsed.command.kind, Command::Kind::kServe) << parsed.err;
  EXPECT_EQ(parsed.command.options.upstream.keepalive, absl::Seconds(2));
  for (const char* wrong : {"100ms", "often", "-1s"}) {
    const Parsed refused = Parse({"--upstream", "central:6066", "--upstream-keepalive", wrong});
    EXPECT_EQ(refused.command.kind, Command::Kind::kExit) << wrong;
    EXPECT_THAT(refused.err, HasSubstr("--upstream-keepalive")) << wrong;
  }
}

TEST(UpstreamFlagsTest, HelpListsThem) {
  const Parsed parsed = Parse({"--help"});
  EXPECT_THAT(parsed.err, HasSubstr("--upstream-token-file"));
  EXPECT_THAT(parsed.err, HasSubstr("--upstream-keepalive"));
  EXPECT_THAT(parsed.err, HasSubstr("TBLOG_UPSTREAM"));
}

}  // namespace
}  // namespace tblog::daemon
