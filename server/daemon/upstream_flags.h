// The flags of upstream mode (upstream_options.h): --upstream and the
// settings of the hop to the upstream tblogd. Kept apart from config.cc so
// that they read as one list.
#ifndef TBLOG_DAEMON_UPSTREAM_FLAGS_H_
#define TBLOG_DAEMON_UPSTREAM_FLAGS_H_

#include <string>

#include "absl/status/status.h"
#include "daemon/upstream_options.h"

namespace CLI {
class App;
}

namespace tblog::daemon {

// Adds --upstream, --upstream-forward, --upstream-tls, --upstream-tls-ca,
// --upstream-tls-cert, --upstream-tls-key, --upstream-tls-server-name,
// --upstream-token-file, --upstream-timeout and --upstream-keepalive (each with its TBLOG_UPSTREAM*
// environment variable, and a config key like the flag) to `app`, bound to
// `upstream`; the timeout is read as text into `timeout` (both must outlive
// parsing; FinishUpstreamOptions parses it).
void AddUpstreamFlags(CLI::App& app, UpstreamOptions& upstream, std::string& timeout);

// Parses `timeout` into `upstream` and checks the combination:
// INVALID_ARGUMENT naming the flag that is wrong (a bad duration, an unknown
// --upstream-forward, a certificate without its key, upstream settings
// without --upstream, an unreadable or empty token file).
absl::Status FinishUpstreamOptions(const std::string& timeout, UpstreamOptions& upstream);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_UPSTREAM_FLAGS_H_
