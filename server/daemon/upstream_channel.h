// The hop to the upstream tblogd (upstream mode, upstream_options.h): one
// gRPC channel opened with the C++ client's OpenChannel (tblog/connection.h:
// TLS, mTLS, the bearer token, which is sent in plaintext only to loopback
// and unix sockets), and the client contexts of forwarded calls.
//
// - Keepalive: the channel pings the upstream every --upstream-keepalive
//   (default 10 s), with or without calls, and gives the connection up when a
//   ping is not answered within kKeepaliveTimeout. So an upstream that went
//   away silently (frozen, its host gone, a dropped network: no reset ever
//   comes) is noticed within about keepalive + 5 s: the forwarded calls and
//   streams fail with UNAVAILABLE (their clients resend), and the channel
//   reconnects as soon as the upstream answers again. Every tblogd accepts
//   such pings (AcceptUpstreamKeepalive).
// - Token rotation: the token file is watched (polled every
//   --credentials-reload-interval, as the TLS files and --auth-token-file
//   are); when its first line changes, a new channel with the new token
//   replaces the old one for every call started from then on (calls in flight
//   finish on the old one). A file that cannot be read, or holds no token,
//   keeps the current token and is logged.
// - Connectivity: a thread follows the channel's state, so that the channel
//   connects at start and after every loss without waiting for a call, and
//   counts the reconnects (metrics_upstream.h).
#ifndef TBLOG_DAEMON_UPSTREAM_CHANNEL_H_
#define TBLOG_DAEMON_UPSTREAM_CHANNEL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "daemon/tls_file_watcher.h"
#include "daemon/upstream_options.h"
#include "grpcpp/support/channel_arguments.h"
#include "tblog/connection.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace grpc {
class CallbackServerContext;
class Channel;
class ClientContext;
class ServerBuilder;
}  // namespace grpc

namespace tblog::daemon {

// How long a keepalive ping may go unanswered before the connection is
// given up.
inline constexpr absl::Duration kKeepaliveTimeout = absl::Seconds(5);
// The shortest --upstream-keepalive, and how often any tblogd lets a client
// ping it without data.
inline constexpr absl::Duration kMinKeepalive = absl::Seconds(1);

// Lets node daemons' keepalive pings in (gRPC's server otherwise answers a
// client that pings more often than every 5 minutes without data with
// GOAWAY "too_many_pings"): called on every tblogd's server, as any tblogd
// may be an upstream.
void AcceptUpstreamKeepalive(grpc::ServerBuilder& builder);

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
  // Opens the channel and starts its threads (it connects in the
  // background, so a down upstream is no error here). `max_message_bytes`
  // bounds what it sends and receives, like the daemon's --max-message-size;
  // the token file is polled every `reload_interval`.
  static absl::StatusOr<std::unique_ptr<UpstreamChannel>> Open(const UpstreamOptions& upstream,
                                                              size_t max_message_bytes,
                                                              absl::Duration reload_interval);
  // Stops the threads; calls still running keep their channel alive.
  ~UpstreamChannel();
  UpstreamChannel(const UpstreamChannel&) = delete;
  UpstreamChannel& operator=(const UpstreamChannel&) = delete;

  // The stub of the current channel (the newest token's): start a call on
  // it and drop it (the call keeps its channel).
  std::shared_ptr<v1::TBLog::Stub> stub() const ABSL_LOCKS_EXCLUDED(mu_);

  // A context for a forwarded unary call: the sooner of the client's deadline
  // and now + call_timeout; cancelled when `server`'s call is.
  std::unique_ptr<grpc::ClientContext> UnaryContext(const grpc::CallbackServerContext& server) const;
  // A context for a forwarded Write stream: no deadline (streams are long).
  std::unique_ptr<grpc::ClientContext> StreamContext() const;

  const std::string& address() const { return address_; }

  // Whether the current channel is connected (READY) now.
  bool connected() const ABSL_LOCKS_EXCLUDED(mu_);
  // Connections made after the first one (after a loss, or a new token).
  uint64_t reconnects() const { return reconnects_.load(std::memory_order_relaxed); }

 private:
  UpstreamChannel(const UpstreamOptions& upstream, ConnectionOptions connection,
                  grpc::ChannelArguments args);

  // A channel and its stub.
  struct Hop {
    std::shared_ptr<grpc::Channel> channel;
    std::shared_ptr<v1::TBLog::Stub> stub;
  };
  absl::StatusOr<Hop> Connect(const ConnectionOptions& connection) const;
  std::shared_ptr<grpc::Channel> channel() const ABSL_LOCKS_EXCLUDED(mu_);
  // The token file changed (the watcher's thread): a new channel if its
  // token did.
  void ReloadToken();
  // The state thread: keeps the channel connecting, counts reconnects.
  void FollowState();

  const std::string address_;
  const absl::Duration call_timeout_;
  const UpstreamOptions upstream_;
  const grpc::ChannelArguments args_;
  std::atomic<uint64_t> reconnects_{0};

  mutable Mutex mu_;
  Hop hop_ ABSL_GUARDED_BY(mu_);
  ConnectionOptions connection_ ABSL_GUARDED_BY(mu_);  // its token is the current one
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Started last in Open, stopped first in the destructor.
  std::unique_ptr<PolledFileWatcher> token_watcher_;
  std::thread state_thread_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_UPSTREAM_CHANNEL_H_
