// The hop to the upstream tblogd (upstream mode, upstream_options.h): one
// gRPC channel opened with the C++ client's OpenChannel (tblog/connection.h:
// TLS, mTLS, the bearer token, which is sent in plaintext only to loopback
// and unix sockets), and the client contexts of forwarded calls.
#ifndef TBLOG_DAEMON_UPSTREAM_CHANNEL_H_
#define TBLOG_DAEMON_UPSTREAM_CHANNEL_H_

#include <cstddef>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/upstream_options.h"
#include "tblog/connection.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace grpc {
class CallbackServerContext;
class ClientContext;
}  // namespace grpc

namespace tblog::daemon {

// The connection settings of the hop: `upstream`'s TLS files and the token
// read from its token file (its first line, trimmed). INVALID_ARGUMENT naming
// the file when it cannot be read or holds no token.
absl::StatusOr<ConnectionOptions> UpstreamConnection(const UpstreamOptions& upstream);

// Thread-safe after Open; borrowed by the forwarding service, which it
// outlives. gRPC reconnects the channel by itself after the upstream went
// away, within about a second of its return (a short reconnect backoff: the
// clients' own backoff already spaces their retries).
class UpstreamChannel {
 public:
  // Opens the channel (it connects lazily, so a down upstream is no error
  // here). `max_message_bytes` bounds what it sends and receives, like the
  // daemon's --max-message-size.
  static absl::StatusOr<std::unique_ptr<UpstreamChannel>> Open(const UpstreamOptions& upstream,
                                                              size_t max_message_bytes);

  v1::TBLog::Stub& stub() { return *stub_; }

  // A context for a forwarded unary call: the sooner of the client's deadline
  // and now + call_timeout; cancelled when `server`'s call is.
  std::unique_ptr<grpc::ClientContext> UnaryContext(const grpc::CallbackServerContext& server) const;
  // A context for a forwarded Write stream: no deadline (streams are long).
  std::unique_ptr<grpc::ClientContext> StreamContext() const;

  const std::string& address() const { return address_; }

 private:
  UpstreamChannel(std::string address, absl::Duration call_timeout,
                  std::unique_ptr<v1::TBLog::Stub> stub)
      : address_(std::move(address)), call_timeout_(call_timeout), stub_(std::move(stub)) {}

  const std::string address_;
  const absl::Duration call_timeout_;
  const std::unique_ptr<v1::TBLog::Stub> stub_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_UPSTREAM_CHANNEL_H_
