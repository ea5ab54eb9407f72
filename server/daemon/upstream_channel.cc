#include "daemon/upstream_channel.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/channel_arguments.h"

namespace tblog::daemon {

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
    const UpstreamOptions& upstream, size_t max_message_bytes) {
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
  args.SetString(GRPC_ARG_PRIMARY_USER_AGENT_STRING, "tblogd-upstream");
  auto channel = OpenChannel(upstream.address, *connection, args);
  if (!channel.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--upstream: ", channel.status().message()));
  }
  return std::unique_ptr<UpstreamChannel>(new UpstreamChannel(
      upstream.address, upstream.call_timeout, v1::TBLog::NewStub(*std::move(channel))));
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
