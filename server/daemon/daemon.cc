#include "daemon/daemon.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_util.h"
#include "daemon/auth.h"
#include "daemon/permissions.h"
#include "daemon/malformed_requests.h"
#include "daemon/memory_bound.h"
#include "daemon/packed_events.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {
namespace {

constexpr char kServiceName[] = "tblog.v1.TBLog";
// How long Shutdown lets unary calls finish once the runs are drained.
constexpr absl::Duration kCallsGrace = absl::Seconds(1);

// True when a process accepts connections on the unix socket at `path`
// (a live daemon), false for a stale socket file that nothing listens on.
bool UnixSocketIsLive(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) return false;  // gRPC refuses it anyway
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool live =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return live;
}

// Removes a socket file left by a previous tblogd. Refuses a socket that a
// live process serves (another tblogd: two daemons must not split the
// clients between them) and anything that is not a socket.
absl::Status RemoveStaleSocket(FileSystem& fs, const std::string& path) {
  auto info = fs.Stat(path);
  if (absl::IsNotFound(info.status())) return absl::OkStatus();
  if (!info.ok()) return Annotate(info.status(), "checking the unix socket path");
  if (info->type != FileInfo::Type::kSocket) {
    return absl::FailedPreconditionError(
        absl::StrCat("unix socket path ", path, " exists and is not a socket"));
  }
  if (UnixSocketIsLive(path)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unix socket ", path, " is in use: a live process (another tblogd?) accepts connections "
        "on it; stop it or choose another --unix-socket"));
  }
  return Annotate(fs.Remove(path), "removing a stale socket");
}

// The listeners' credentials (tls.h): TLS, tokens, or plaintext, said once in the log.
absl::StatusOr<ListenerCredentials> SecureListeners(const SecurityOptions& security,
                                                    const std::string& listen) {
  std::shared_ptr<TokenAuthenticator> authenticator;
  if (security.tokens()) {
    auto started = TokenAuthenticator::Start(security.auth_token_file,
                                             security.credentials_reload_interval);
    if (!started.ok()) return Annotate(started.status(), "--auth-token-file");
    authenticator = *std::move(started);
  }
  auto credentials = MakeListenerCredentials(security, listen, authenticator);
  if (!credentials.ok()) return credentials.status();
  spdlog::info("security: {}", credentials->description);
  if (!listen.empty() && !security.tls() && !IsLoopbackListenAddress(listen)) {
    spdlog::warn("security: {} serves plaintext beyond this host; anyone who reaches it can "
                 "write and list runs (set --tls-cert/--tls-key and --auth-token-file)", listen);
  }
  return credentials;
}

// The side socket for shared-memory rings (shm_socket.h), bound like the
// unix socket: a stale file replaced, its mode and group from the start.
absl::StatusOr<std::unique_ptr<ShmSocket>> StartShmSocket(FileSystem& fs, const std::string& path,
                                                         uint32_t mode, std::optional<gid_t> gid,
                                                         ShmRings* rings) {
  TBLOG_RETURN_IF_ERROR(RemoveStaleSocket(fs, path));
  absl::StatusOr<std::unique_ptr<ShmSocket>> socket;
  {
    ScopedUmask umask(UnixSocketBindUmask(path, mode, gid));
    socket = ShmSocket::Start(path, rings);
  }
  if (!socket.ok()) return socket.status();
  TBLOG_RETURN_IF_ERROR(SetUnixSocketAccess(path, mode, gid));
  return socket;
}

// The health (grpc.health.v1.Health) of the whole server and of the TBLog
// service. `server` may be null (it did not start).
void SetServing(grpc::Server* server, bool serving) {
  if (server == nullptr) return;
  if (auto* health = server->GetHealthCheckService(); health != nullptr) {
    health->SetServingStatus("", serving);
    health->SetServingStatus(kServiceName, serving);
  }
}

std::chrono::system_clock::time_point ToChrono(absl::Time t) {
  return std::chrono::system_clock::from_time_t(0) +
         std::chrono::microseconds(absl::ToUnixMicros(t));
}

}  // namespace

Daemon::Daemon(const DaemonOptions& options)
    : options_(options),
      // One per-run series for each run that may be open at once.
      metrics_(static_cast<size_t>(std::max(1, options.limits.max_runs))),
      budget_(options.max_inflight_bytes) {}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(const DaemonOptions& requested) {
  if (requested.listen.empty() && requested.unix_socket.empty()) {
    return absl::InvalidArgumentError("nothing to listen on: set --listen or --unix-socket");
  }
  DaemonOptions options = requested;
  if (options.file.file_system == FileSystem::Default()) {
    options.file.file_system = FileSystem::Posix(options.file_modes);
  }
  std::optional<gid_t> socket_gid;
  if (!options.unix_socket.empty() && !options.unix_socket_group.empty()) {
    auto gid = ResolveSocketGroup(options.unix_socket_group);
    if (!gid.ok()) return Annotate(gid.status(), "--unix-socket-group");
    socket_gid = *gid;
  }
  TBLOG_RETURN_IF_ERROR(CreateLogdir(*options.file.file_system, options.logdir));
  std::error_code ec;
  const std::string logdir = std::filesystem::canonical(options.logdir, ec).string();
  if (ec) return absl::InternalError(absl::StrCat("resolving logdir ", options.logdir, ": ", ec.message()));

  ReturnLargeBlocksToTheSystem();  // freed messages and images leave the RSS
  std::unique_ptr<Daemon> daemon(new Daemon(options));
  daemon->workers_ = std::make_unique<WorkerPool>(options.workers);
  // Before anything serves: a scrape reads the gauges from their owners.
  daemon->metrics_.ReadGaugesFrom(&daemon->budget_, daemon->workers_.get());
  const std::string shm_path = options.ShmSocketPath();
  if (!shm_path.empty()) {
    daemon->shm_rings_ = std::make_unique<ShmRings>(
        &daemon->budget_, options.max_inflight_bytes / 2, options.limits.max_streams);
  }
  daemon->converter_ = std::make_unique<RecordConverter>(
      daemon->options_.limits, daemon->workers_.get(), daemon->shm_rings_.get());
  const bool forward_reduced = options.upstream.enabled() && options.upstream.forward == "reduced";
  if (forward_reduced) daemon->node_reduce_ = std::make_unique<NodeReduce>();
  const RunContext context{&daemon->options_, daemon->converter_.get(), daemon->workers_.get(),
                           &daemon->budget_, &daemon->metrics_, daemon->node_reduce_.get()};
  daemon->registry_ = std::make_unique<RunRegistry>(context, logdir);
  // Run ownership goes by the caller's token or client certificate
  // (auth.h); tests may bring their own identities.
  daemon->service_ = std::make_unique<TBLogService>(
      daemon->registry_.get(), context,
      options.caller_identity ? options.caller_identity : CallerIdentityFn(&CallerIdentity));
  daemon->service_->set_shm_rings(daemon->shm_rings_.get());
  daemon->metrics_.AddGauge("tblogd_active_runs", "Open runs.",
                            [registry = daemon->registry_.get()] { return registry->OpenRunCount(); });
  if (options.upstream.enabled()) {
    auto channel = UpstreamChannel::Open(options.upstream, options.limits.max_message_bytes,
                                         options.security.credentials_reload_interval);
    if (!channel.ok()) return channel.status();
    daemon->upstream_channel_ = *std::move(channel);
    if (forward_reduced) {
      const std::string writer_id = NodeWriterId(options.file.hostname, absl::Now());
      daemon->node_sender_ = std::make_unique<NodeReduceSender>(
          daemon->node_reduce_.get(), daemon->upstream_channel_.get(), writer_id,
          options.upstream.call_timeout);
      spdlog::info("upstream mode: writing runs here, reduced points to {} as writer {} "
                   "(--upstream-forward reduced)", options.upstream.address, writer_id);
    } else {
      daemon->upstream_service_ = std::make_unique<UpstreamService>(
          daemon->upstream_channel_.get(), &daemon->budget_, options.limits.max_streams,
          options.limits.max_message_bytes);
      daemon->metrics_.AddFamilies([upstream = daemon->upstream_service_.get()](auto* families) {
        upstream->metrics().AppendTo(families);
      });
      spdlog::info("upstream mode: forwarding every call to {} (--upstream-forward {})",
                   options.upstream.address, options.upstream.forward);
    }
  }
  daemon->metrics_.AddGauge("tblogd_active_streams", "Open Write streams.",
                            [service = daemon->service_.get(),
                             upstream = daemon->upstream_service_.get()] {
                              return service->ActiveStreams() +
                                     (upstream != nullptr ? upstream->ActiveStreams() : 0);
                            });

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<size_t>(options.limits.max_message_bytes, std::numeric_limits<int>::max())));
  if (daemon->upstream_service_) {
    builder.RegisterService(daemon->upstream_service_.get());
  } else {
    builder.RegisterService(daemon->service_.get());
  }
  // A request that does not parse is INVALID_ARGUMENT (malformed_requests.h).
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(UnparsableRequestInterceptors());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  // The address is ours alone: without this, gRPC sets SO_REUSEPORT and a
  // second tblogd on the same port would start and take half the clients.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  AcceptUpstreamKeepalive(builder);  // node daemons ping their upstream (upstream_channel.h)
  auto credentials = SecureListeners(options.security, options.listen);
  if (!credentials.ok()) return credentials.status();
  daemon->credentials_ = *std::move(credentials);
  BoundTransportBuffers(builder);  // streams waiting for budget buffer 64 KiB, not megabytes
  int tcp_port = 0;
  if (!options.listen.empty()) {
    builder.AddListeningPort(options.listen, daemon->credentials_.tcp, &tcp_port);
  }
  std::string unix_uri;
  if (!options.unix_socket.empty()) {
    TBLOG_RETURN_IF_ERROR(RemoveStaleSocket(*options.file.file_system, options.unix_socket));
    unix_uri = absl::StrCat("unix:", options.unix_socket);
    builder.AddListeningPort(unix_uri, daemon->credentials_.unix_socket);
  }
  // Why a TCP address cannot be had is in gRPC's log line; the usual causes:
  const std::string tcp_hint =
      ": the port is in use (another tblogd?) or the address is not one of this host's; "
      "stop the other process or choose another --listen";
  {
    // gRPC binds the socket here, under a umask that gives it its mode at
    // once, or keeps it private until it has its group below.
    std::optional<ScopedUmask> socket_umask;
    if (!unix_uri.empty()) {
      socket_umask.emplace(
          UnixSocketBindUmask(options.unix_socket, options.unix_socket_mode, socket_gid));
    }
    daemon->server_ = builder.BuildAndStart();
  }
  // gRPC's health service starts with the whole server ("") SERVING: say
  // NOT_SERVING until Start is done, so that a probe never sends clients to
  // a daemon still setting up (or failing to).
  SetServing(daemon->server_.get(), false);
  if (!daemon->server_) {
    return absl::UnavailableError(
        options.listen.empty() ? absl::StrCat("cannot listen on ", unix_uri)
                               : absl::StrCat("cannot listen on ", options.listen,
                                              unix_uri.empty() ? "" : " and " + unix_uri,
                                              tcp_hint));
  }
  if (!options.listen.empty()) {
    if (tcp_port == 0) {
      daemon->server_->Shutdown();
      return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen, tcp_hint));
    }
    const size_t colon = options.listen.rfind(':');
    daemon->addresses_.push_back(
        absl::StrCat(options.listen.substr(0, colon == std::string::npos ? 0 : colon), ":", tcp_port));
  }
  if (!unix_uri.empty()) {
    TBLOG_RETURN_IF_ERROR(
        SetUnixSocketAccess(options.unix_socket, options.unix_socket_mode, socket_gid));
    daemon->addresses_.push_back(unix_uri);
  }
  if (!shm_path.empty()) {
    auto shm_socket = StartShmSocket(*options.file.file_system, shm_path, options.unix_socket_mode,
                                     socket_gid, daemon->shm_rings_.get());
    if (shm_socket.ok()) {
      daemon->shm_socket_ = *std::move(shm_socket);
    } else if (!options.shm_socket.empty()) {
      return Annotate(shm_socket.status(), "--shm-socket");
    } else {
      // Only derived from --unix-socket: serve without shared memory.
      spdlog::warn("shared memory off: {} (set --shm-socket to choose its path)",
                   shm_socket.status().ToString());
    }
  }
  if (daemon->shm_socket_) {
    daemon->metrics_.AddGauge("tblogd_shm_rings", "Shared-memory rings attached.",
                              [rings = daemon->shm_rings_.get()] { return rings->rings(); });
    daemon->metrics_.AddGauge(
        "tblogd_shm_ring_bytes", "Bytes of the shared-memory rings attached (in the budget).",
        [rings = daemon->shm_rings_.get()] { return static_cast<int64_t>(rings->bytes()); });
    spdlog::info("shared memory: clients attach rings on {}", shm_path);
  }
  SetServing(daemon->server_.get(), true);
  daemon->flusher_ = std::thread([d = daemon.get()] { d->FlusherLoop(); });
  return daemon;
}

Daemon::~Daemon() {
  (void)Shutdown(absl::ZeroDuration());
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (flusher_.joinable()) flusher_.join();
  // Order matters: no call may reach the service once it is gone, and the
  // pool runs its last tasks (which use runs, converter, budget) before those go.
  server_.reset();
  shm_socket_.reset();
  service_.reset();
  upstream_service_.reset();  // before the channel its calls use
  node_sender_.reset();       // likewise
  upstream_channel_.reset();
  workers_.reset();
  registry_.reset();
  node_reduce_.reset();  // the runs use it
}

void Daemon::FlusherLoop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithTimeout(Condition(&stop), options_.flush_interval)) break;
    mu_.Unlock();
    const absl::Time now = absl::Now();
    // Idle reads give their budget reservations back; parked WriteBatch
    // calls past their wait expire.
    budget_.Tick(now);
    PackedEvents::ReleaseIdleSpares(now);  // converted scalars' buffers, once idle
    for (const auto& run : registry_->OpenRuns()) {
      run->WriteDueReductions(now);  // reduced points past their timeout
      // Synced per the event file sync policy, or now when data has waited
      // unsynced for its interval (a quiet writer's last batches would
      // otherwise never become durable); errors stay sticky on the run.
      const bool sync = run->sync_due(now);
      if (!sync && !run->has_unflushed()) continue;
      run->Flush("", 0, sync, [](absl::Status) {});
    }
    mu_.Lock();
  }
}

absl::Status Daemon::Shutdown(absl::Duration grace) {
  MutexLock shutdown_lock(&shutdown_mu_);
  {
    MutexLock lock(&mu_);
    if (shut_down_) return shutdown_status_;
    if (!server_) {  // Start() failed before the server ran
      stopping_ = shut_down_ = true;
      return absl::OkStatus();
    }
  }
  const absl::Time deadline = absl::Now() + grace;
  spdlog::info("shutting down: draining runs (deadline in {})", absl::FormatDuration(grace));
  SetServing(server_.get(), false);
  if (shm_socket_) shm_socket_->Stop();  // new clients send bytes
  service_->BeginShutdown();
  if (upstream_service_) upstream_service_->BeginShutdown();
  absl::Status status = registry_->CloseAllForShutdown(deadline);
  // The streams' last acks wait for their partials: send every pending one.
  if (node_sender_) node_sender_->Stop(deadline);
  const bool streams_done = service_->WaitForStreams(deadline) &&
                            (!upstream_service_ || upstream_service_->WaitForStreams(deadline));
  if (!streams_done && status.ok()) {
    status = absl::DeadlineExceededError("Write streams still open at the shutdown deadline");
  }
  // Runs are closed and Write streams done: what gRPC still waits for is
  // unary calls in flight (quick now) and client connections, which it waits
  // to see closed after its GOAWAY. An idle client channel may notice that
  // only at its next backup poll (5 s) or never (a stopped process), so give
  // the calls kCallsGrace, then gRPC cancels them and drops the connections.
  server_->Shutdown(ToChrono(std::min(deadline, absl::Now() + kCallsGrace)));
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    shut_down_ = true;
    shutdown_status_ = status;
  }
  return status;
}

void Daemon::Wait() { server_->Wait(); }

}  // namespace tblog::daemon
