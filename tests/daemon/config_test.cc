// The daemon's command line (server/daemon/config.h): defaults taken from
// DaemonOptions{}, the precedence flag > environment > config file, and
// errors that name the flag or key at fault.
#include "daemon/config.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "daemon_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace tblog::daemon {
namespace {

using ::testing::HasSubstr;

// Removes every TBLOG_* variable for the test and puts them back afterwards,
// so the developer's or CI's environment cannot change what is parsed.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string text = *entry;
      if (!absl::StartsWith(text, "TBLOG_")) continue;
      const size_t equals = text.find('=');
      saved_[text.substr(0, equals)] = text.substr(equals + 1);
    }
    for (const auto& [name, value] : saved_) ::unsetenv(name.c_str());
  }
  void TearDown() override {
    for (const std::string& name : set_) ::unsetenv(name.c_str());
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
  }

  void SetEnv(const std::string& name, const std::string& value) {
    ::setenv(name.c_str(), value.c_str(), 1);
    set_.push_back(name);
  }

  // Writes `text` to a config file and returns its path.
  std::string WriteConfig(const std::string& text) {
    const std::string path =
        (testing::FreshTempDir("config_test") / "tblogd.toml").string();
    std::ofstream(path) << text;
    return path;
  }

  // Parses "tblogd <args>", keeping what it printed.
  Command Parse(const std::vector<std::string>& args) {
    std::vector<const char*> argv = {"tblogd"};
    for (const std::string& arg : args) argv.push_back(arg.c_str());
    out_.str("");
    err_.str("");
    return ParseCommandLine(static_cast<int>(argv.size()), argv.data(), out_, err_);
  }

  // `cmd` is a refusal whose message names `what` (a flag, key or path).
  void ExpectRefused(const Command& cmd, const std::string& what) {
    EXPECT_EQ(cmd.kind, Command::Kind::kExit) << what;
    EXPECT_NE(cmd.exit_code, 0) << what;
    EXPECT_THAT(err_.str(), HasSubstr(what));
  }

  std::ostringstream out_;
  std::ostringstream err_;

 private:
  std::map<std::string, std::string> saved_;
  std::vector<std::string> set_;
};

TEST_F(ConfigTest, NoFlagsGiveExactlyTheDefaultOptions) {
  const Command cmd = Parse({});
  ASSERT_EQ(cmd.kind, Command::Kind::kServe) << err_.str();
  const DaemonOptions& got = cmd.options;
  const DaemonOptions want;
  EXPECT_EQ(got.logdir, want.logdir);
  EXPECT_EQ(got.listen, want.listen);
  EXPECT_EQ(got.unix_socket, want.unix_socket);
  EXPECT_EQ(got.workers, want.workers);
  EXPECT_EQ(got.flush_interval, want.flush_interval);
  EXPECT_EQ(got.file.filename_suffix, want.file.filename_suffix);
  EXPECT_EQ(got.file.max_file_bytes, want.file.max_file_bytes);
  EXPECT_EQ(got.file.buffer_bytes, want.file.buffer_bytes);
  EXPECT_EQ(got.file.sync, want.file.sync);
  EXPECT_EQ(got.file.sync_interval, want.file.sync_interval);
  EXPECT_EQ(got.file.hostname, want.file.hostname);
  EXPECT_EQ(got.file.source_writer, want.file.source_writer);
  EXPECT_EQ(got.max_inflight_bytes, want.max_inflight_bytes);
  EXPECT_EQ(got.shutdown_grace, want.shutdown_grace);
  EXPECT_EQ(got.writer_lease, want.writer_lease);
  EXPECT_TRUE(got.limits == want.limits);
  EXPECT_EQ(got.log_format, want.log_format);
  EXPECT_EQ(got.log_level, want.log_level);
  EXPECT_EQ(got.metrics_listen, want.metrics_listen);
  EXPECT_EQ(got.unix_socket_mode, want.unix_socket_mode);
  EXPECT_EQ(got.unix_socket_group, want.unix_socket_group);
  EXPECT_EQ(got.file_modes, want.file_modes);
  EXPECT_EQ(err_.str(), "");
}

// --daemon-id names the daemon's files and checkpoints (many daemons, one
// run); its characters are checked before they become file names.
TEST_F(ConfigTest, DaemonIdIsCheckedAndDefaultsToTheHostName) {
  EXPECT_EQ(Parse({}).options.file.hostname, "");  // the host name, resolved when used
  SetEnv("TBLOG_DAEMON_ID", "trainer-3");
  EXPECT_EQ(Parse({}).options.file.hostname, "trainer-3");
  const Command bad = Parse({"--daemon-id", "a/b"});
  EXPECT_EQ(bad.kind, Command::Kind::kExit);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(err_.str(), HasSubstr("--daemon-id: daemon id 'a/b' may hold only"));
}

TEST_F(ConfigTest, TheDaemonFsyncsOnAnIntervalByDefault) {
  EXPECT_EQ(DaemonOptions{}.file.sync, SyncPolicy::kInterval);
  EXPECT_EQ(Parse({}).options.file.sync, SyncPolicy::kInterval);
}

TEST_F(ConfigTest, HelpShowsTheDefaultsInTheFlagsSpelling) {
  const Command cmd = Parse({"--help"});
  EXPECT_EQ(cmd.kind, Command::Kind::kExit);
  EXPECT_EQ(cmd.exit_code, 0);
  const std::string help = out_.str();
  EXPECT_THAT(help, HasSubstr("256MiB"));    // --max-inflight-bytes
  EXPECT_THAT(help, HasSubstr("64MiB"));     // --max-message-size
  EXPECT_THAT(help, HasSubstr("interval"));  // --fsync
  EXPECT_THAT(help, HasSubstr("30s"));       // --shutdown-grace
  EXPECT_THAT(help, HasSubstr("127.0.0.1:6066"));
}

TEST_F(ConfigTest, FlagBeatsEnvironmentBeatsConfigFile) {
  const std::string config = WriteConfig(
      "workers = 3\n"
      "max-runs = 10\n"
      "flush-interval = \"3s\"\n"
      "fsync = \"never\"\n"
      "log-level = \"debug\"\n");
  SetEnv("TBLOG_WORKERS", "5");
  SetEnv("TBLOG_MAX_RUNS", "20");
  SetEnv("TBLOG_FSYNC", "flush");
  const Command cmd = Parse({"--config", config, "--workers", "7", "--flush-interval", "250ms"});
  ASSERT_EQ(cmd.kind, Command::Kind::kServe) << err_.str();
  EXPECT_EQ(cmd.options.workers, 7);                                      // flag, env, file
  EXPECT_EQ(cmd.options.flush_interval, absl::Milliseconds(250));         // flag, file
  EXPECT_EQ(cmd.options.limits.max_runs, 20);                             // env, file
  EXPECT_EQ(cmd.options.file.sync, SyncPolicy::kOnFlush);                 // env, file
  EXPECT_EQ(cmd.options.log_level, "debug");                              // file
  EXPECT_EQ(cmd.options.shutdown_grace, DaemonOptions{}.shutdown_grace);  // default
}

TEST_F(ConfigTest, ConfigFileFromTheEnvironment) {
  SetEnv("TBLOG_CONFIG", WriteConfig("max-inflight-bytes = \"1GiB\"\n"));
  const Command cmd = Parse({});
  ASSERT_EQ(cmd.kind, Command::Kind::kServe) << err_.str();
  EXPECT_EQ(cmd.options.max_inflight_bytes, size_t{1} << 30);

  SetEnv("TBLOG_CONFIG", "/no/such/tblogd.toml");
  ExpectRefused(Parse({}), "/no/such/tblogd.toml");
}

TEST_F(ConfigTest, UnknownConfigKeyIsAnErrorNamingIt) {
  ExpectRefused(Parse({"--config", WriteConfig("flush-intervall = \"2s\"\n")}),
                "flush-intervall");
}

TEST_F(ConfigTest, UnknownFlagIsAnErrorNamingIt) {
  ExpectRefused(Parse({"--max-runz", "3"}), "--max-runz");
}

TEST_F(ConfigTest, BadValuesAreErrorsNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string flag;
  };
  const Case cases[] = {
      {{"--flush-interval", "soon"}, "--flush-interval"},
      {{"--fsync-interval", "-1s"}, "--fsync-interval"},
      {{"--shutdown-grace", "30"}, "--shutdown-grace"},
      {{"--writer-lease", "0s"}, "--writer-lease"},  // a hold must last a while
      {{"--writer-lease", "a minute"}, "--writer-lease"},
      {{"--max-inflight-bytes", "12XB"}, "--max-inflight-bytes"},
      {{"--max-file-size", "lots"}, "--max-file-size"},
      {{"--max-message-size", "3GiB"}, "--max-message-size"},
      {{"--max-message-size", "1MiB"}, "--max-message-size"},  // clients keep 1 MiB of it
      {{"--fsync", "always"}, "--fsync"},
      {{"--log-format", "xml"}, "--log-format"},
      {{"--workers", "many"}, "--workers"},
      {{"--listen", ""}, "--listen"},  // and no --unix-socket: nothing to serve on
  };
  for (const Case& c : cases) ExpectRefused(Parse(c.args), c.flag);
}

TEST_F(ConfigTest, BadValueFromTheEnvironmentNamesTheFlag) {
  SetEnv("TBLOG_SHUTDOWN_GRACE", "forever");
  const Command cmd = Parse({});
  ExpectRefused(cmd, "--shutdown-grace");
  EXPECT_EQ(cmd.exit_code, 2);
}

TEST_F(ConfigTest, ModesAndTheSocketGroupAreOctalFlagsAndVariables) {
  EXPECT_EQ(DaemonOptions{}.unix_socket_mode, 0660u);
  EXPECT_EQ(DaemonOptions{}.file_modes.file, 0644u);
  EXPECT_EQ(DaemonOptions{}.file_modes.dir, 0755u);
  SetEnv("TBLOG_DIR_MODE", "0750");
  SetEnv("TBLOG_UNIX_SOCKET_GROUP", "tblog");
  const Command cmd = Parse({"--unix-socket-mode", "0600", "--file-mode", "640"});
  ASSERT_EQ(cmd.kind, Command::Kind::kServe) << err_.str();
  EXPECT_EQ(cmd.options.unix_socket_mode, 0600u);
  EXPECT_EQ(cmd.options.unix_socket_group, "tblog");
  EXPECT_EQ(cmd.options.file_modes.file, 0640u);
  EXPECT_EQ(cmd.options.file_modes.dir, 0750u);
  Parse({"--help"});
  EXPECT_THAT(out_.str(), HasSubstr("0660"));

  ExpectRefused(Parse({"--unix-socket-mode", "660x"}), "--unix-socket-mode");
  ExpectRefused(Parse({"--unix-socket-mode", "4755"}), "--unix-socket-mode");  // setuid
  ExpectRefused(Parse({"--file-mode", "0444"}), "--file-mode");  // the owner must write
  ExpectRefused(Parse({"--dir-mode", "0644"}), "--dir-mode");    // the owner must enter
}

TEST_F(ConfigTest, ByteSizesParseAndFormatBack) {
  EXPECT_EQ(*ParseByteSize("64MiB"), uint64_t{64} << 20);
  EXPECT_EQ(*ParseByteSize("1G"), uint64_t{1} << 30);
  EXPECT_EQ(*ParseByteSize("512k"), uint64_t{512} << 10);
  EXPECT_EQ(*ParseByteSize(" 100 "), 100u);
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("1P").ok());
  EXPECT_FALSE(ParseByteSize("99999999999T").ok());  // overflows 64 bits
  for (uint64_t bytes : {uint64_t{0}, uint64_t{1000}, uint64_t{1} << 10, uint64_t{3} << 20,
                         uint64_t{256} << 20, uint64_t{1} << 40, (uint64_t{1} << 20) + 1}) {
    const std::string text = FormatByteSize(bytes);
    auto parsed = ParseByteSize(text);
    ASSERT_TRUE(parsed.ok()) << text;
    EXPECT_EQ(*parsed, bytes) << text;
  }
  EXPECT_EQ(FormatByteSize(uint64_t{256} << 20), "256MiB");
  EXPECT_EQ(FormatByteSize(1536), "1536");  // 1.5 KiB: no unit divides it
}

TEST_F(ConfigTest, DurationsParse) {
  EXPECT_EQ(*ParseDurationFlag("250ms"), absl::Milliseconds(250));
  EXPECT_EQ(*ParseDurationFlag("2m"), absl::Minutes(2));
  EXPECT_FALSE(ParseDurationFlag("-1s").ok());
  EXPECT_FALSE(ParseDurationFlag("1 second").ok());
}

TEST_F(ConfigTest, HealthSubcommandDefaultsToTheDaemonsListenAddress) {
  const Command cmd = Parse({"health"});
  EXPECT_EQ(cmd.kind, Command::Kind::kHealth);
  EXPECT_EQ(cmd.health_address, DaemonOptions{}.listen);
  EXPECT_EQ(cmd.health_timeout, absl::Seconds(3));
}

}  // namespace
}  // namespace tblog::daemon
