// The command-line flags of TLS and tokens: the daemon's (--tls-cert,
// --tls-key, --tls-client-ca, --auth-token-file,
// --credentials-reload-interval) and those of `tblogd health`, a client.
// Kept apart from config.cc so that the security settings read as one list.
#ifndef TBLOG_DAEMON_TLS_FLAGS_H_
#define TBLOG_DAEMON_TLS_FLAGS_H_

#include <string>

#include "daemon/options.h"
#include "tblog/connection.h"

namespace CLI {
class App;
}

namespace tblog::daemon {

// Adds the daemon's security flags (with TBLOG_* environment variables and
// config keys like the flags) to `app`, bound to `security`; the reload
// interval is read as text into `reload_interval` (parsed by the caller).
// Both must outlive parsing.
void AddSecurityFlags(CLI::App& app, SecurityOptions& security, std::string& reload_interval);

// Adds --tls-ca, --tls-cert, --tls-key, --tls-server-name, --token (or
// --token-file) to a client subcommand, bound to `connection`, whose fields
// already hold the environment's values (ConnectionOptions::FromEnvironment).
void AddClientConnectionFlags(CLI::App& app, ConnectionOptions& connection);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_TLS_FLAGS_H_
