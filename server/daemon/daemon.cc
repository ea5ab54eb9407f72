#include "daemon/daemon.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_util.h"
#include "daemon/memory_bound.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
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

std::chrono::system_clock::time_point ToChrono(absl::Time t) {
  return std::chrono::system_clock::from_time_t(0) +
         std::chrono::microseconds(absl::ToUnixMicros(t));
}

}  // namespace

Daemon::Daemon(const DaemonOptions& options)
    : options_(options), budget_(options.max_inflight_bytes) {}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(const DaemonOptions& options) {
  if (options.listen.empty() && options.unix_socket.empty()) {
    return absl::InvalidArgumentError("nothing to listen on: set --listen or --unix-socket");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.logdir, ec);
  if (ec) return absl::InternalError(absl::StrCat("creating logdir ", options.logdir, ": ", ec.message()));
  const std::string logdir = std::filesystem::canonical(options.logdir, ec).string();
  if (ec) return absl::InternalError(absl::StrCat("resolving logdir ", options.logdir, ": ", ec.message()));

  ReturnLargeBlocksToTheSystem();  // freed messages and images leave the RSS
  std::unique_ptr<Daemon> daemon(new Daemon(options));
  daemon->workers_ = std::make_unique<WorkerPool>(options.workers);
  // Before anything serves: a scrape reads the gauges from their owners.
  daemon->metrics_.ReadGaugesFrom(&daemon->budget_, daemon->workers_.get());
  daemon->converter_ = std::make_unique<RecordConverter>(daemon->options_.limits, daemon->workers_.get());
  const RunContext context{&daemon->options_, daemon->converter_.get(), daemon->workers_.get(),
                           &daemon->budget_, &daemon->metrics_};
  daemon->registry_ = std::make_unique<RunRegistry>(context, logdir);
  daemon->service_ = std::make_unique<TBLogService>(daemon->registry_.get(), context);
  daemon->metrics_.AddGauge("tblogd_active_runs", "Open runs.",
                            [registry = daemon->registry_.get()] { return registry->OpenRunCount(); });
  daemon->metrics_.AddGauge("tblogd_active_streams", "Open Write streams.",
                            [service = daemon->service_.get()] { return service->ActiveStreams(); });

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<size_t>(options.limits.max_message_bytes, std::numeric_limits<int>::max())));
  builder.RegisterService(daemon->service_.get());
  // The address is ours alone: without this, gRPC sets SO_REUSEPORT and a
  // second tblogd on the same port would start and take half the clients.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  BoundTransportBuffers(builder);  // streams waiting for budget buffer 64 KiB, not megabytes
  int tcp_port = 0;
  if (!options.listen.empty()) {
    builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &tcp_port);
  }
  std::string unix_uri;
  if (!options.unix_socket.empty()) {
    TBLOG_RETURN_IF_ERROR(RemoveStaleSocket(*options.file.file_system, options.unix_socket));
    unix_uri = absl::StrCat("unix:", options.unix_socket);
    builder.AddListeningPort(unix_uri, grpc::InsecureServerCredentials());
  }
  // Why a TCP address cannot be had is in gRPC's log line; the usual causes:
  const std::string tcp_hint =
      ": the port is in use (another tblogd?) or the address is not one of this host's; "
      "stop the other process or choose another --listen";
  daemon->server_ = builder.BuildAndStart();
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
  if (!unix_uri.empty()) daemon->addresses_.push_back(unix_uri);
  auto* health = daemon->server_->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus("", true);
    health->SetServingStatus(kServiceName, true);
  }
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
  service_.reset();
  workers_.reset();
  registry_.reset();
}

void Daemon::FlusherLoop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithTimeout(Condition(&stop), options_.flush_interval)) break;
    mu_.Unlock();
    // Idle reads give their budget reservations back; parked WriteBatch
    // calls past their wait expire.
    budget_.Tick(absl::Now());
    for (const auto& run : registry_->OpenRuns()) {
      if (!run->has_unflushed()) continue;
      // Synced per the event file sync policy; errors stay sticky on the run.
      run->Flush("", 0, /*sync=*/false, [](absl::Status) {});
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
  if (auto* health = server_->GetHealthCheckService(); health != nullptr) {
    health->SetServingStatus("", false);
    health->SetServingStatus(kServiceName, false);
  }
  service_->BeginShutdown();
  absl::Status status = registry_->CloseAllForShutdown(deadline);
  if (!service_->WaitForStreams(deadline) && status.ok()) {
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
