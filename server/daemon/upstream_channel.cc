#include "daemon/upstream_channel.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/channel_arguments.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {
namespace {

int Milliseconds(absl::Duration duration) {
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(duration),
                                            std::numeric_limits<int>::max()));
}

// How often the state thread looks whether it is asked to stop.
constexpr absl::Duration kStatePoll = absl::Milliseconds(250);

}  // namespace

void AcceptUpstreamKeepalive(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             Milliseconds(kMinKeepalive));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
}

absl::StatusOr<ConnectionOptions> UpstreamConnection(const UpstreamOptions& upstream) {
  ConnectionOptions connection;
  connection.tls = upstream.tls;
  connection.tls_ca_file = upstream.tls_ca_file;
  connection.tls_cert_file = upstream.tls_cert_file;
  connection.tls_key_file = upstream.tls_key_file;
  connection.tls_server_name = upstream.tls_server_name;
  if (!upstream.token_file.empty()) {
    std::ifstream in(upstream.token_file);
    std::string line;
    if (!in || !std::getline(in, line)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--upstream-token-file: cannot read ", upstream.token_file));
    }
    connection.token = std::string(absl::StripAsciiWhitespace(line));
    if (connection.token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--upstream-token-file: ", upstream.token_file, " has no token on its first line"));
    }
  }
  return connection;
}

absl::StatusOr<std::unique_ptr<UpstreamChannel>> UpstreamChannel::Open(
    const UpstreamOptions& upstream, size_t max_message_bytes, absl::Duration reload_interval) {
  auto connection = UpstreamConnection(upstream);
  if (!connection.ok()) return connection.status();
  grpc::ChannelArguments args;
  const int max_message =
      static_cast<int>(std::min<size_t>(max_message_bytes, std::numeric_limits<int>::max()));
  args.SetMaxSendMessageSize(max_message);
  args.SetMaxReceiveMessageSize(max_message);
  // gRPC's default reconnect backoff grows to 2 minutes: an upstream that was
  // down that long would stay unreachable for as long after its return.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Keepalive (see the header): pings with and without calls, unlimited
  // while no data flows (the upstream allows it: AcceptUpstreamKeepalive).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, Milliseconds(std::max(upstream.keepalive, kMinKeepalive)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Milliseconds(kKeepaliveTimeout));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // The connection is kept while idle: a node daemon's trainers may be quiet
  // for long, and the connected gauge should say whether the upstream is
  // reachable, not whether anyone called lately.
  args.SetInt(GRPC_ARG_CLIENT_IDLE_TIMEOUT_MS, std::numeric_limits<int>::max());
  args.SetString(GRPC_ARG_PRIMARY_USER_AGENT_STRING, "tblogd-upstream");
  std::unique_ptr<UpstreamChannel> channel(
      new UpstreamChannel(upstream, *std::move(connection), std::move(args)));
  ConnectionOptions first;
  {
    MutexLock lock(&channel->mu_);
    first = channel->connection_;
  }
  auto hop = channel->Connect(first);
  if (!hop.ok()) return hop.status();
  {
    MutexLock lock(&channel->mu_);
    channel->hop_ = *std::move(hop);
  }
  if (!upstream.token_file.empty()) {
    channel->token_watcher_ = std::make_unique<PolledFileWatcher>(
        std::vector<std::string>{upstream.token_file}, reload_interval,
        [raw = channel.get()] { raw->ReloadToken(); });
  }
  channel->state_thread_ = std::thread([raw = channel.get()] { raw->FollowState(); });
  return channel;
}

UpstreamChannel::UpstreamChannel(const UpstreamOptions& upstream, ConnectionOptions connection,
                                 grpc::ChannelArguments args)
    : address_(upstream.address), call_timeout_(upstream.call_timeout), upstream_(upstream),
      args_(std::move(args)), connection_(std::move(connection)) {}

UpstreamChannel::~UpstreamChannel() {
  token_watcher_.reset();  // joins its thread: no ReloadToken from here on
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (state_thread_.joinable()) state_thread_.join();
}

absl::StatusOr<UpstreamChannel::Hop> UpstreamChannel::Connect(
    const ConnectionOptions& connection) const {
  auto channel = OpenChannel(upstream_.address, connection, args_);
  if (!channel.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--upstream: ", channel.status().message()));
  }
  Hop hop;
  hop.channel = *std::move(channel);
  hop.stub = std::shared_ptr<v1::TBLog::Stub>(v1::TBLog::NewStub(hop.channel));
  return hop;
}

std::shared_ptr<v1::TBLog::Stub> UpstreamChannel::stub() const {
  MutexLock lock(&mu_);
  return hop_.stub;
}

std::shared_ptr<grpc::Channel> UpstreamChannel::channel() const {
  MutexLock lock(&mu_);
  return hop_.channel;
}

bool UpstreamChannel::connected() const {
  return channel()->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
}

void UpstreamChannel::ReloadToken() {
  auto connection = UpstreamConnection(upstream_);
  if (!connection.ok()) {
    // Mid-rotation (the file replaced in two steps), or a mistake: the
    // current token stays until the file holds one again.
    spdlog::warn("upstream: {}; keeping the current token",
                 std::string(connection.status().message()));
    return;
  }
  {
    MutexLock lock(&mu_);
    if (connection->token == connection_.token) return;  // touched, not changed
  }
  auto hop = Connect(*connection);
  if (!hop.ok()) {
    spdlog::warn("upstream: a new token in {}, but {}; keeping the current token",
                 upstream_.token_file, std::string(hop.status().message()));
    return;
  }
  {
    MutexLock lock(&mu_);
    connection_ = *std::move(connection);
    hop_ = *std::move(hop);  // the old channel lives on while its calls do
  }
  spdlog::info("upstream: token file {} changed: calls from now on present the new token",
               upstream_.token_file);
}

void UpstreamChannel::FollowState() {
  std::shared_ptr<grpc::Channel> followed;
  grpc_connectivity_state state = GRPC_CHANNEL_IDLE;
  bool ever_ready = false;
  for (;;) {
    std::shared_ptr<grpc::Channel> current;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      current = hop_.channel;
    }
    if (current != followed) {  // the first one, or a new token's
      followed = std::move(current);
      state = followed->GetState(/*try_to_connect=*/true);
    } else if (followed->WaitForStateChange(
                   state, std::chrono::system_clock::now() +
                              std::chrono::milliseconds(absl::ToInt64Milliseconds(kStatePoll)))) {
      const grpc_connectivity_state now = followed->GetState(/*try_to_connect=*/true);
      if (now == GRPC_CHANNEL_READY && state != GRPC_CHANNEL_READY) {
        if (ever_ready) {
          reconnects_.fetch_add(1, std::memory_order_relaxed);
          spdlog::info("upstream {}: connected again", address_);
        }
        ever_ready = true;
      } else if (state == GRPC_CHANNEL_READY && now != GRPC_CHANNEL_READY) {
        spdlog::warn("upstream {}: connection lost; reconnecting", address_);
      }
      state = now;
    }
  }
}

std::unique_ptr<grpc::ClientContext> UpstreamChannel::UnaryContext(
    const grpc::CallbackServerContext& server) const {
  // FromServerContext carries the client's deadline and cancellation over.
  auto context = grpc::ClientContext::FromCallbackServerContext(
      server, grpc::PropagationOptions().disable_census_stats_propagation()
                  .disable_census_tracing_propagation());
  const auto ours = std::chrono::system_clock::now() +
                    std::chrono::microseconds(absl::ToInt64Microseconds(call_timeout_));
  context->set_deadline(std::min(ours, server.deadline()));
  return context;
}

std::unique_ptr<grpc::ClientContext> UpstreamChannel::StreamContext() const {
  return std::make_unique<grpc::ClientContext>();
}

}  // namespace tblog::daemon
