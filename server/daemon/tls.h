// The credentials of tblogd's listeners: TLS (and mTLS) on the TCP address,
// bearer tokens on both, and the rules that tie them together.
//
//   TCP listener:  TLS when --tls-cert/--tls-key are set (client certificates
//                  required with --tls-client-ca); else plaintext. With tokens
//                  and no TLS, gRPC's local credentials: connections are
//                  accepted from loopback only, and the daemon refuses to
//                  start on a non-loopback --listen (a token would cross the
//                  network in the clear).
//   unix socket:   always plaintext (the socket file's mode guards it); local
//                  credentials when tokens are on, so the token check runs.
//
// Certificate files are watched by gRPC's FileWatcherCertificateProvider and
// read again every --credentials-reload-interval: new connections get the new
// certificate; established ones keep theirs. gRPC (1.51) installs whatever it
// reads: a key that does not match its certificate makes new handshakes fail
// until the files are fixed (logged as an error by the rotation logger), so
// certificate and key must change together, as a Kubernetes Secret does.
#ifndef TBLOG_DAEMON_TLS_H_
#define TBLOG_DAEMON_TLS_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "daemon/options.h"
#include "daemon/tls_file_watcher.h"

namespace grpc {
class AuthMetadataProcessor;
class ServerCredentials;
}  // namespace grpc

namespace tblog::daemon {

// Settings that cannot work together, or files that cannot be used: a
// certificate without its key, a client CA without a certificate, tokens on a
// non-loopback plaintext --listen, an unreadable or unparsable PEM file, a key
// that does not match the certificate. INVALID_ARGUMENT naming the flag and
// file. Reads the files; cheap.
absl::Status CheckSecurityOptions(const SecurityOptions& security, std::string_view listen);

// True when `listen` ("host:port", "[v6]:port", "localhost:port") names a
// loopback host: 127.0.0.0/8, ::1, ::ffff:127.x or "localhost". False for
// wildcard, other and unparsable addresses.
bool IsLoopbackListenAddress(std::string_view listen);

// What the listeners use, and the watcher that logs certificate rotations.
struct ListenerCredentials {
  std::shared_ptr<grpc::ServerCredentials> tcp;
  std::shared_ptr<grpc::ServerCredentials> unix_socket;
  // Logs each change of the certificate files (subject, serial, expiry), or
  // why the new files cannot be used; null without TLS.
  std::unique_ptr<PolledFileWatcher> rotation_logger;
  // One line for the start-up log: TLS, mTLS, tokens, what is plaintext.
  std::string description;
};

// Checks `security` (CheckSecurityOptions) and builds the credentials.
// `authenticator` (null = no tokens) is attached to both listeners.
absl::StatusOr<ListenerCredentials> MakeListenerCredentials(
    const SecurityOptions& security, std::string_view listen,
    std::shared_ptr<grpc::AuthMetadataProcessor> authenticator);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_TLS_H_
