// How a tblog client reaches tblogd securely: TLS (with a client certificate
// for mTLS) and the bearer token the daemon asks for with --auth-token-file.
// Used by tblog::Writer (WriterOptions::connection) and by `tblogd health`;
// any C++ program may open its own channel with OpenChannel.
#ifndef TBLOG_CONNECTION_H_
#define TBLOG_CONNECTION_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class Channel;
class ChannelArguments;
}  // namespace grpc

namespace tblog {

// A value type; files are read when a channel is opened, so a client that
// reconnects picks up rotated certificates.
struct ConnectionOptions {
  // TLS to the daemon. Implied by any of the files below.
  bool tls = false;
  // PEM CA bundle that signed the daemon's certificate ("" = the system's).
  std::string tls_ca_file;
  // PEM certificate chain and key presented to the daemon (mTLS): both or neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Name checked against the daemon's certificate instead of the target's
  // host (a certificate made for "tblogd.example" reached as 10.0.0.7:6066).
  std::string tls_server_name;
  // Bearer token sent as `authorization: Bearer <token>` on every call.
  // Without TLS it is sent only to loopback and unix-socket targets (gRPC's
  // local credentials refuse others), as the daemon accepts it only there.
  std::string token;

  bool uses_tls() const {
    return tls || !tls_ca_file.empty() || !tls_cert_file.empty() || !tls_key_file.empty();
  }

  // From the environment (the client certificate's variables say CLIENT, so
  // that `tblogd health` in the daemon's own container does not take the
  // daemon's TBLOG_TLS_CERT for its own): TBLOG_TLS ("1"/"true"), TBLOG_TLS_CA,
  // TBLOG_TLS_CLIENT_CERT, TBLOG_TLS_CLIENT_KEY, TBLOG_TLS_SERVER_NAME, TBLOG_TOKEN; unset
  // variables leave the defaults above. TBLOG_TOKEN_FILE names a file whose
  // first line is the token (a mounted Secret) when TBLOG_TOKEN is unset.
  static ConnectionOptions FromEnvironment();
};

// A channel to `target` ("host:port", "unix:/path") with the credentials that
// `options` asks for; `args` are added to the channel's arguments.
// INVALID_ARGUMENT naming the file or setting that is wrong (an unreadable
// file, a certificate without its key). Thread-safe.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& target,
                                                           const ConnectionOptions& options,
                                                           const grpc::ChannelArguments& args);

}  // namespace tblog

#endif  // TBLOG_CONNECTION_H_
