#include "daemon/upstream_flags.h"

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/upstream_channel.h"

namespace tblog::daemon {

void AddUpstreamFlags(CLI::App& app, UpstreamOptions& upstream, std::string& timeout) {
  app.add_option("--upstream", upstream.address,
                 "Forward to the tblogd at this address (host:port, unix:/path), which writes "
                 "the runs; '' = write them here (README, Upstream mode)")
      ->envname("TBLOG_UPSTREAM");
  app.add_option("--upstream-forward", upstream.forward,
                 "What goes upstream: all (every call; each client batch keeps its writer id "
                 "and sequence, and the upstream's acks come back), or reduced (runs are "
                 "written here, and only the reduced records go upstream, combined per step "
                 "into partials under the writer id tblogd:<daemon id>:<start>; README, Upstream mode)")
      ->capture_default_str()
      ->check(CLI::IsMember({"all", "reduced"}))
      ->envname("TBLOG_UPSTREAM_FORWARD");
  app.add_flag("--upstream-tls", upstream.tls,
               "TLS to the upstream with the system's CAs (implied by --upstream-tls-*)")
      ->envname("TBLOG_UPSTREAM_TLS");
  app.add_option("--upstream-tls-ca", upstream.tls_ca_file,
                 "PEM CA that signed the upstream's certificate")
      ->envname("TBLOG_UPSTREAM_TLS_CA");
  app.add_option("--upstream-tls-cert", upstream.tls_cert_file,
                 "PEM client certificate presented to the upstream (mTLS)")
      ->envname("TBLOG_UPSTREAM_TLS_CERT");
  app.add_option("--upstream-tls-key", upstream.tls_key_file, "PEM key of --upstream-tls-cert")
      ->envname("TBLOG_UPSTREAM_TLS_KEY");
  app.add_option("--upstream-tls-server-name", upstream.tls_server_name,
                 "Name to check in the upstream's certificate")
      ->envname("TBLOG_UPSTREAM_TLS_SERVER_NAME");
  app.add_option("--upstream-token-file", upstream.token_file,
                 "File whose first line is this daemon's bearer token for the upstream "
                 "(re-read when it changes)")
      ->envname("TBLOG_UPSTREAM_TOKEN_FILE");
  app.add_option("--upstream-timeout", timeout,
                 "Deadline of each forwarded unary call (OpenRun, Flush, CloseRun, ...)")
      ->capture_default_str()
      ->envname("TBLOG_UPSTREAM_TIMEOUT");
  app.add_option_function<std::string>(
         "--upstream-keepalive",
         [&upstream](const std::string& text) {
           absl::Duration parsed;
           if (!absl::ParseDuration(text, &parsed) || parsed < kMinKeepalive) {
             throw CLI::ValidationError(
                 "--upstream-keepalive",
                 absl::StrCat("'", text, "' is not a duration of at least ",
                              absl::FormatDuration(kMinKeepalive), " (e.g. 10s)"));
           }
           upstream.keepalive = parsed;
         },
         "How often to ping the upstream, so that one gone silently (frozen, a dropped "
         "network) is noticed within this + 5s and the node reconnects")
      ->default_str(absl::FormatDuration(upstream.keepalive))
      ->envname("TBLOG_UPSTREAM_KEEPALIVE");
}

absl::Status FinishUpstreamOptions(const std::string& timeout, UpstreamOptions& upstream) {
  absl::Duration parsed;
  if (!absl::ParseDuration(timeout, &parsed) || parsed <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--upstream-timeout: '", timeout, "' is not a positive duration (e.g. 30s)"));
  }
  upstream.call_timeout = parsed;
  if (!upstream.enabled()) {
    const bool hop_settings = upstream.tls || !upstream.tls_ca_file.empty() ||
                              !upstream.tls_cert_file.empty() || !upstream.tls_key_file.empty() ||
                              !upstream.tls_server_name.empty() || !upstream.token_file.empty();
    if (hop_settings) {
      return absl::InvalidArgumentError(
          "--upstream-tls*/--upstream-token-file are set but --upstream is not");
    }
    return absl::OkStatus();
  }
  if (upstream.tls_cert_file.empty() != upstream.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--upstream-tls-cert and --upstream-tls-key go together (mTLS needs both)");
  }
  // The token file is read now so that a wrong path fails the start, not
  // every forwarded call.
  return UpstreamConnection(upstream).status();
}

}  // namespace tblog::daemon
