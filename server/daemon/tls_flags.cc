#include "daemon/tls_flags.h"

#include "CLI/CLI.hpp"

namespace tblog::daemon {

void AddSecurityFlags(CLI::App& app, SecurityOptions& security, std::string& reload_interval) {
  app.add_option("--tls-cert", security.tls_cert_file,
                 "PEM certificate chain: serve TLS on --listen (with --tls-key; reloaded on change)")
      ->envname("TBLOG_TLS_CERT");
  app.add_option("--tls-key", security.tls_key_file, "PEM private key of --tls-cert")
      ->envname("TBLOG_TLS_KEY");
  app.add_option("--tls-client-ca", security.tls_client_ca_file,
                 "PEM CA bundle: clients must present a certificate it signed (mTLS)")
      ->envname("TBLOG_TLS_CLIENT_CA");
  app.add_option("--auth-token-file", security.auth_token_file,
                 "Bearer tokens, one '[name:]token' a line: every RPC but health needs one "
                 "(reloaded on change; without TLS only on loopback and the unix socket)")
      ->envname("TBLOG_AUTH_TOKEN_FILE");
  app.add_option("--credentials-reload-interval", reload_interval,
                 "How often the TLS and token files are checked for changes (at least 1s)")
      ->capture_default_str()
      ->envname("TBLOG_CREDENTIALS_RELOAD_INTERVAL");
}

void AddClientConnectionFlags(CLI::App& app, ConnectionOptions& connection) {
  app.add_flag("--tls", connection.tls, "Use TLS (implied by the --tls-* files) [TBLOG_TLS]");
  app.add_option("--tls-ca", connection.tls_ca_file,
                 "PEM CA that signed the daemon's certificate [TBLOG_TLS_CA]");
  app.add_option("--tls-cert", connection.tls_cert_file,
                 "PEM client certificate, for mTLS [TBLOG_TLS_CLIENT_CERT]");
  app.add_option("--tls-key", connection.tls_key_file, "PEM key of --tls-cert [TBLOG_TLS_CLIENT_KEY]");
  app.add_option("--tls-server-name", connection.tls_server_name,
                 "Name to check in the daemon's certificate [TBLOG_TLS_SERVER_NAME]");
  app.add_option("--token", connection.token,
                 "Bearer token (health needs none) [TBLOG_TOKEN, TBLOG_TOKEN_FILE]");
}

}  // namespace tblog::daemon
