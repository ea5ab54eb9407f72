// The daemon's command line: flags, their environment variables and a config
// file, parsed into DaemonOptions; and the logging setup they select.
//
// Every flag's default is the matching field of a default-constructed
// DaemonOptions (options.h), written back in the flag's own spelling
// (FormatByteSize, absl::FormatDuration, the --fsync names), so a default is
// stated once. Not thread-safe: parsing reads the environment.
#ifndef TBLOG_DAEMON_CONFIG_H_
#define TBLOG_DAEMON_CONFIG_H_

#include <cstdint>
#include <iostream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/options.h"
#include "tblog/connection.h"

namespace tblog::daemon {

// What the command line asked for.
struct Command {
  enum class Kind {
    kServe,    // run the daemon with `options`
    kInspect,  // print what a log directory holds (`tblogd inspect`)
    kHealth,   // ask a running tblogd whether it is serving (`tblogd health`)
    kExit,     // --help, --version or a usage error: exit with exit_code
  };
  Kind kind = Kind::kServe;
  DaemonOptions options;
  std::string inspect_logdir;
  bool inspect_json = false;
  std::string health_address = DaemonOptions{}.listen;
  std::string health_service;
  absl::Duration health_timeout = absl::Seconds(3);
  // TLS and token of `tblogd health` (flags, else TBLOG_TLS_* / TBLOG_TOKEN).
  ConnectionOptions health_connection = ConnectionOptions::FromEnvironment();
  int exit_code = 0;
};

// Parses argv. Precedence: flag, then environment variable (TBLOG_<FLAG>),
// then the config file (--config / TBLOG_CONFIG, TOML or INI keys named like
// the flags), then the default. Help and version go to `out`; errors go to
// `err`, naming the flag or config key, and give Kind::kExit with exit code 2
// (a bad value of ours) or CLI11's code (an unknown flag or key, a value
// outside a flag's set).
Command ParseCommandLine(int argc, const char* const* argv, std::ostream& out = std::cout,
                         std::ostream& err = std::cerr);

// "64MiB", "1G", "512k", "100" -> bytes (binary multiples; k/M/G/T with or
// without "iB"/"B"). INVALID_ARGUMENT for anything else or an overflow.
absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);
// The inverse of ParseByteSize for defaults and help: the largest binary unit
// that divides `bytes` exactly ("256MiB", "1GiB", "1000"; 0 -> "0").
std::string FormatByteSize(uint64_t bytes);
// "1s", "250ms", "2m" (absl::ParseDuration syntax); negative is an error.
// absl::FormatDuration is its inverse.
absl::StatusOr<absl::Duration> ParseDurationFlag(std::string_view text);

// Installs the default spdlog logger: text or JSON lines on stderr.
// INVALID_ARGUMENT for an unknown format or level.
absl::Status SetUpLogging(std::string_view format, std::string_view level);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_CONFIG_H_
