#include "daemon/config.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/permissions.h"
#include "daemon/tls.h"
#include "daemon/tls_flags.h"
#include "daemon/upstream_flags.h"
#include "daemon/resume_scan.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {

absl::StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  std::string s = absl::AsciiStrToLower(absl::StripAsciiWhitespace(Sv(text)));
  size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  uint64_t number = 0;
  if (digits == 0 || !absl::SimpleAtoi(s.substr(0, digits), &number)) {
    return absl::InvalidArgumentError(absl::StrCat("'", Sv(text), "' is not a size (e.g. 64MiB)"));
  }
  std::string unit = s.substr(digits);
  if (unit.size() >= 2 && unit.substr(unit.size() - 2) == "ib") unit.resize(unit.size() - 2);
  else if (!unit.empty() && unit.back() == 'b') unit.pop_back();
  int shift;
  if (unit.empty()) shift = 0;
  else if (unit == "k") shift = 10;
  else if (unit == "m") shift = 20;
  else if (unit == "g") shift = 30;
  else if (unit == "t") shift = 40;
  else return absl::InvalidArgumentError(absl::StrCat("'", Sv(text), "' has an unknown unit"));
  if (shift > 0 && number > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return absl::InvalidArgumentError(absl::StrCat("'", Sv(text), "' is too large"));
  }
  return number << shift;
}

std::string FormatByteSize(uint64_t bytes) {
  static constexpr std::pair<int, const char*> kUnits[] = {
      {40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}};
  for (const auto& [shift, unit] : kUnits) {
    const uint64_t multiple = uint64_t{1} << shift;
    if (bytes >= multiple && bytes % multiple == 0) return absl::StrCat(bytes >> shift, unit);
  }
  return absl::StrCat(bytes);
}

absl::StatusOr<absl::Duration> ParseDurationFlag(std::string_view text) {
  absl::Duration d;
  if (!absl::ParseDuration(Sv(text), &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", Sv(text), "' is not a duration (e.g. 1s, 250ms, 2m)"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("'", Sv(text), "' is negative"));
  }
  return d;
}

namespace {

// --fsync's spellings of SyncPolicy, in the order --help lists them.
constexpr std::pair<const char*, SyncPolicy> kSyncPolicyNames[] = {
    {"never", SyncPolicy::kNever}, {"flush", SyncPolicy::kOnFlush},
    {"interval", SyncPolicy::kInterval}};

std::vector<std::string> SyncPolicyNames() {
  std::vector<std::string> names;
  for (const auto& [name, policy] : kSyncPolicyNames) names.emplace_back(name);
  return names;
}

std::string SyncPolicyName(SyncPolicy policy) {
  for (const auto& [name, candidate] : kSyncPolicyNames) {
    if (candidate == policy) return name;
  }
  return "unknown";
}

std::optional<SyncPolicy> SyncPolicyFromName(std::string_view text) {
  for (const auto& [name, policy] : kSyncPolicyNames) {
    if (text == name) return policy;
  }
  return std::nullopt;
}

// A mode flag's value (ParseMode), which must keep the owner's bits in
// `required`: tblogd reads back and rewrites its files and lists its
// directories.
absl::StatusOr<uint32_t> ParseModeKeeping(std::string_view text, uint32_t required) {
  absl::StatusOr<uint32_t> mode = ParseMode(text);
  if (mode.ok() && (*mode & required) != required) {
    return absl::InvalidArgumentError(absl::StrCat("'", Sv(text), "' must keep the owner's bits ",
                                                   FormatMode(required),
                                                   " (tblogd reads back what it creates)"));
  }
  return mode;
}

// CLI11 (2.1) reads the config file before the environment and then skips
// the environment for an option the file has set, so the file would win.
// This reader drops the file's keys whose environment variable is set, which
// gives the documented order: flag, environment, file, default.
class ConfigFileUnderEnvironment final : public CLI::ConfigTOML {
 public:
  // `env_of_key`: a top-level config key ("flush-interval") -> its variable.
  explicit ConfigFileUnderEnvironment(std::map<std::string, std::string> env_of_key)
      : env_of_key_(std::move(env_of_key)) {}

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::vector<CLI::ConfigItem> read = CLI::ConfigTOML::from_config(input);
    std::erase_if(read, [this](const CLI::ConfigItem& item) {
      if (!item.parents.empty()) return false;
      const auto it = env_of_key_.find(item.name);
      if (it == env_of_key_.end()) return false;
      const char* value = std::getenv(it->second.c_str());
      return value != nullptr && *value != '\0';  // CLI11 ignores empty variables too
    });
    return read;
  }

 private:
  const std::map<std::string, std::string> env_of_key_;
};

// Config key -> environment variable, for every top-level option that has one.
std::map<std::string, std::string> EnvironmentOfKeys(const CLI::App& app) {
  std::map<std::string, std::string> env_of_key;
  for (const CLI::Option* option : app.get_options()) {
    if (option->get_envname().empty()) continue;
    for (const std::string& name : option->get_lnames()) env_of_key[name] = option->get_envname();
  }
  return env_of_key;
}

// spdlog flag %j: the message, escaped for a JSON string.
class JsonEscapedMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      switch (c) {
        case '"': dest.append(std::string_view("\\\"")); break;
        case '\\': dest.append(std::string_view("\\\\")); break;
        case '\n': dest.append(std::string_view("\\n")); break;
        case '\r': dest.append(std::string_view("\\r")); break;
        case '\t': dest.append(std::string_view("\\t")); break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
            dest.append(std::string_view(buf));
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

}  // namespace

absl::Status SetUpLogging(std::string_view format, std::string_view level) {
  const spdlog::level::level_enum lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(absl::StrCat("unknown log level '", Sv(level), "'"));
  }
  auto logger = spdlog::stderr_logger_mt("tblogd");
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonEscapedMessage>('j').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","logger":"%n","msg":"%j"})");
    logger->set_formatter(std::move(formatter));
  } else if (format == "text") {
    // Local time with its UTC offset (%z: +01:00), so lines from hosts in
    // different zones, or around a DST change, still order and compare.
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log format '", Sv(format), "' (text or json)"));
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

Command ParseCommandLine(int argc, const char* const* argv, std::ostream& out,
                         std::ostream& err) {
  Command cmd;
  DaemonOptions& o = cmd.options;
  const DaemonOptions defaults;
  CLI::App app{
      "tblogd: writes TensorBoard logs for training processes that stream metrics, tensors\n"
      "and images to it over gRPC (API: proto/tblog/v1/tblog.proto).\n"
      "Every flag can also be set by the environment variable shown, or in a config file\n"
      "(--config; TOML keys named like the flags). Flags win over the environment, which\n"
      "wins over the file.",
      "tblogd"};
  app.set_version_flag("--version", "tblogd 0.1.0");
  // CLI11 (2.1) reads the config file before the environment, too early for
  // TBLOG_CONFIG; so the variable becomes the default file, which must then
  // exist like one named by --config.
  const char* config_env = std::getenv("TBLOG_CONFIG");
  const std::string config_from_env = config_env != nullptr ? config_env : "";
  app.set_config("--config", config_from_env, "Read flags from this TOML/INI file",
                 /*config_required=*/!config_from_env.empty())
      ->envname("TBLOG_CONFIG");
  // A misspelled key would otherwise be dropped without a word.
  app.allow_config_extras(CLI::config_extras_mode::error);

  // Durations, sizes and the fsync policy are read as text, then parsed, so
  // "--flush-interval 250ms" works; their defaults are the options' own.
  std::string flush_interval = absl::FormatDuration(defaults.flush_interval);
  std::string fsync = SyncPolicyName(defaults.file.sync);
  std::string fsync_interval = absl::FormatDuration(defaults.file.sync_interval);
  std::string shutdown_grace = absl::FormatDuration(defaults.shutdown_grace);
  std::string writer_lease = absl::FormatDuration(defaults.writer_lease);
  std::string reduce_timeout = absl::FormatDuration(defaults.reduce_timeout);
  std::string max_file_size = FormatByteSize(defaults.file.max_file_bytes);
  std::string max_inflight = FormatByteSize(defaults.max_inflight_bytes);
  std::string max_message = FormatByteSize(defaults.limits.max_message_bytes);
  std::string unix_socket_mode = FormatMode(defaults.unix_socket_mode);
  std::string file_mode = FormatMode(defaults.file_modes.file);
  std::string dir_mode = FormatMode(defaults.file_modes.dir);

  auto env = [](CLI::Option* opt, const char* name) { return opt->envname(name); };
  env(app.add_option("--logdir", o.logdir, "Root directory of all runs (created if missing)")
          ->capture_default_str(), "TBLOG_LOGDIR");
  env(app.add_option("--listen", o.listen,
                     "TCP address to serve on, host:port ('' = no TCP; port 0 = any free port)")
          ->capture_default_str(), "TBLOG_LISTEN");
  env(app.add_option("--unix-socket", o.unix_socket, "Unix socket path to serve on ('' = none)"),
      "TBLOG_UNIX_SOCKET");
  env(app.add_option("--unix-socket-mode", unix_socket_mode,
                     "Permission bits of the unix socket, octal (0660: its owner and group)")
          ->capture_default_str(), "TBLOG_UNIX_SOCKET_MODE");
  env(app.add_option("--unix-socket-group", o.unix_socket_group,
                     "Group of the unix socket, a name or gid ('' = as created)"),
      "TBLOG_UNIX_SOCKET_GROUP");
  env(app.add_option("--shm-socket", o.shm_socket,
                     "Socket on which same-host clients attach shared memory ('' = "
                     "<--unix-socket>.shm when serving a unix socket, else none; 'off' = none; "
                     "none with --upstream-forward all); "
                     "mode and group as --unix-socket's"),
      "TBLOG_SHM_SOCKET");
  env(app.add_option("--file-mode", file_mode,
                     "Permission bits of the files tblogd creates, octal, whatever the umask")
          ->capture_default_str(), "TBLOG_FILE_MODE");
  env(app.add_option("--dir-mode", dir_mode,
                     "Permission bits of the directories tblogd creates, octal, whatever the umask")
          ->capture_default_str(), "TBLOG_DIR_MODE");
  env(app.add_option("--workers", o.workers,
                     "Worker threads for histograms, PNG, WAV, PR curves (0 = one per core)")
          ->capture_default_str()->check(CLI::Range(0, 1024)), "TBLOG_WORKERS");
  env(app.add_option("--flush-interval", flush_interval,
                     "How often runs with new data write their checkpoint (data reaches the files at once)")
          ->capture_default_str(), "TBLOG_FLUSH_INTERVAL");
  env(app.add_option("--fsync", fsync,
                     "When event files are fsynced: never, flush (every flush), interval")
          ->capture_default_str()->check(CLI::IsMember(SyncPolicyNames())),
      "TBLOG_FSYNC");
  env(app.add_option("--fsync-interval", fsync_interval,
                     "Time between fsyncs with --fsync interval; every written batch is "
                     "durable (fsynced, checkpointed, acknowledged) within about this long")
          ->capture_default_str(), "TBLOG_FSYNC_INTERVAL");
  env(app.add_option("--max-file-size", max_file_size,
                     "Start a new event file past this size (0 = never), e.g. 1GiB")
          ->capture_default_str(), "TBLOG_MAX_FILE_SIZE");
  env(app.add_option("--max-inflight-bytes", max_inflight,
                     "Bytes held for requests at once (messages, conversion buffers, events until "
                     "written); past it, streams are not read and WriteBatch calls wait. "
                     "Memory = this + a fixed overhead (README, Memory)")
          ->capture_default_str(), "TBLOG_MAX_INFLIGHT_BYTES");
  env(app.add_option("--max-message-size", max_message,
                     "Largest request accepted, 4MiB to 2GiB; clients learn it at OpenRun")
          ->capture_default_str(), "TBLOG_MAX_MESSAGE_SIZE");
  env(app.add_option("--shutdown-grace", shutdown_grace,
                     "On SIGTERM/SIGINT, time allowed to drain queues before exit")
          ->capture_default_str(), "TBLOG_SHUTDOWN_GRACE");
  env(app.add_option("--writer-lease", writer_lease,
                     "A writer whose streams ended and that has not come back within this\n"
                     "releases its hold on its run; a run with no holder left closes")
          ->capture_default_str(), "TBLOG_WRITER_LEASE");
  env(app.add_option("--reduce-timeout", reduce_timeout,
                     "A point reduced across writers (Record.reduce) is written this long\n"
                     "after its first contribution from what arrived, if its group is not\n"
                     "complete by then (a run's OpenRun may set its own)")
          ->capture_default_str(), "TBLOG_REDUCE_TIMEOUT");
  env(app.add_option("--max-tensor-elements", o.limits.max_tensor_elements,
                     "Elements of one tensor (histogram, embedding, PR inputs)")
          ->capture_default_str(), "TBLOG_MAX_TENSOR_ELEMENTS");
  env(app.add_option("--max-image-pixels", o.limits.max_image_pixels,
                     "Pixels (height x width) of one image")
          ->capture_default_str(), "TBLOG_MAX_IMAGE_PIXELS");
  env(app.add_option("--max-runs", o.limits.max_runs, "Runs open at once")
          ->capture_default_str(), "TBLOG_MAX_RUNS");
  env(app.add_option("--max-streams", o.limits.max_streams, "Write streams open at once")
          ->capture_default_str(), "TBLOG_MAX_STREAMS");
  env(app.add_option("--max-tag-bytes", o.limits.max_tag_bytes, "Bytes of one tag")
          ->capture_default_str(), "TBLOG_MAX_TAG_BYTES");
  env(app.add_option("--log-format", o.log_format, "Log lines as text or json")
          ->capture_default_str()->check(CLI::IsMember({"text", "json"})), "TBLOG_LOG_FORMAT");
  env(app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
          ->capture_default_str()
          ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"})),
      "TBLOG_LOG_LEVEL");
  env(app.add_option("--daemon-id", o.file.hostname,
                     "This daemon's identity in its event file names and checkpoints: stable "
                     "across its restarts, unique among daemons writing one run (e.g. the pod "
                     "name; '' = the host name)"),
      "TBLOG_DAEMON_ID");
  env(app.add_option("--metrics-listen", o.metrics_listen,
                     "Serve Prometheus metrics on http://host:port/metrics ('' = off)"),
      "TBLOG_METRICS_LISTEN");
  std::string reload_interval = absl::FormatDuration(defaults.security.credentials_reload_interval);
  AddSecurityFlags(app, o.security, reload_interval);
  std::string upstream_timeout = absl::FormatDuration(defaults.upstream.call_timeout);
  AddUpstreamFlags(app, o.upstream, upstream_timeout);

  app.config_formatter(std::make_shared<ConfigFileUnderEnvironment>(EnvironmentOfKeys(app)));

  CLI::App* inspect = app.add_subcommand(
      "inspect", "Print the runs, tags, kinds and steps of a log directory, and exit");
  inspect->add_option("logdir", cmd.inspect_logdir, "Log directory to read")->required();
  inspect->add_flag("--json", cmd.inspect_json, "Print JSON instead of a table");

  CLI::App* health = app.add_subcommand(
      "health", "Exit 0 if the tblogd at --address reports SERVING, 1 otherwise");
  std::string health_timeout = absl::FormatDuration(cmd.health_timeout);
  health->add_option("--address", cmd.health_address, "host:port or unix:/path")
      ->capture_default_str()->envname("TBLOG_HEALTH_ADDRESS");
  health->add_option("--service", cmd.health_service, "Service to ask about ('' = the server)");
  health->add_option("--timeout", health_timeout, "Give up after this long")->capture_default_str();
  AddClientConnectionFlags(*health, cmd.health_connection);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    cmd.kind = Command::Kind::kExit;
    cmd.exit_code = app.exit(e, out, err);
    return cmd;
  }
  if (inspect->parsed()) {
    cmd.kind = Command::Kind::kInspect;
    return cmd;
  }
  if (health->parsed()) {
    cmd.kind = Command::Kind::kHealth;
    if (auto d = ParseDurationFlag(health_timeout); d.ok()) {
      cmd.health_timeout = *d;
    } else {
      err << "tblogd health: --timeout: " << d.status().message() << "\n";
      cmd.kind = Command::Kind::kExit;
      cmd.exit_code = 2;
    }
    return cmd;
  }

  auto fail = [&](const absl::Status& status, std::string_view flag) {
    err << "tblogd: " << flag << ": " << status.message() << "\n";
    cmd.kind = Command::Kind::kExit;
    cmd.exit_code = 2;
    return cmd;
  };
  if (auto d = ParseDurationFlag(flush_interval); d.ok()) o.flush_interval = *d;
  else return fail(d.status(), "--flush-interval");
  if (auto d = ParseDurationFlag(fsync_interval); d.ok()) o.file.sync_interval = *d;
  else return fail(d.status(), "--fsync-interval");
  if (auto d = ParseDurationFlag(shutdown_grace); d.ok()) o.shutdown_grace = *d;
  else return fail(d.status(), "--shutdown-grace");
  if (auto d = ParseDurationFlag(writer_lease); d.ok() && *d > absl::ZeroDuration()) {
    o.writer_lease = *d;
  } else {
    return fail(d.ok() ? absl::InvalidArgumentError("must be longer than 0") : d.status(),
                "--writer-lease");
  }
  if (auto d = ParseDurationFlag(reduce_timeout); d.ok() && *d > absl::ZeroDuration()) {
    o.reduce_timeout = *d;
  } else {
    return fail(d.ok() ? absl::InvalidArgumentError("must be longer than 0") : d.status(),
                "--reduce-timeout");
  }
  if (auto b = ParseByteSize(max_file_size); b.ok()) o.file.max_file_bytes = *b;
  else return fail(b.status(), "--max-file-size");
  if (auto b = ParseByteSize(max_inflight); b.ok()) o.max_inflight_bytes = *b;
  else return fail(b.status(), "--max-inflight-bytes");
  // At least 4 MiB (gRPC's own default): clients leave 1 MiB of a request
  // for its head and tag definitions (OpenRunResponse.max_message_bytes).
  if (auto b = ParseByteSize(max_message);
      b.ok() && *b >= (uint64_t{4} << 20) && *b <= (uint64_t{2} << 30)) {
    o.limits.max_message_bytes = *b;
  } else {
    return fail(b.ok() ? absl::InvalidArgumentError("must be between 4MiB and 2GiB") : b.status(),
                "--max-message-size");
  }
  if (auto m = ParseModeKeeping(unix_socket_mode, 0); m.ok()) o.unix_socket_mode = *m;
  else return fail(m.status(), "--unix-socket-mode");
  if (auto m = ParseModeKeeping(file_mode, 0600); m.ok()) o.file_modes.file = *m;
  else return fail(m.status(), "--file-mode");
  if (auto m = ParseModeKeeping(dir_mode, 0700); m.ok()) o.file_modes.dir = *m;
  else return fail(m.status(), "--dir-mode");
  if (auto d = ParseDurationFlag(reload_interval); d.ok() && *d >= absl::Seconds(1)) {
    o.security.credentials_reload_interval = *d;
  } else {
    return fail(d.ok() ? absl::InvalidArgumentError("must be at least 1s") : d.status(),
                "--credentials-reload-interval");
  }
  if (auto s = CheckSecurityOptions(o.security, o.listen); !s.ok()) return fail(s, "security");
  if (auto s = FinishUpstreamOptions(upstream_timeout, o.upstream); !s.ok()) return fail(s, "upstream");
  if (o.upstream.forwards_everything() && !o.shm_socket.empty() && o.shm_socket != "off") {
    return fail(absl::InvalidArgumentError(
                    "a daemon forwarding every call upstream (--upstream-forward all) serves no "
                    "shared memory: its clients' records go upstream as bytes"),
                "--shm-socket");
  }
  o.file.sync = *SyncPolicyFromName(fsync);  // CLI11 checked it is one of the names
  if (!o.file.hostname.empty()) {
    if (absl::Status id = ValidateDaemonId(o.file.hostname); !id.ok()) return fail(id, "--daemon-id");
  }
  if (o.listen.empty() && o.unix_socket.empty()) {
    return fail(absl::InvalidArgumentError("nothing to serve on: set --listen or --unix-socket"),
                "--listen");
  }
  return cmd;
}

}  // namespace tblog::daemon
