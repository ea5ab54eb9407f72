// tblogd as an object: the gRPC server (TCP and/or unix socket, health,
// reflection), the run registry, the worker pool, the byte budget and the
// flusher thread. main.cc parses flags and signals around it; tests start it
// in-process.
#ifndef TBLOG_DAEMON_DAEMON_H_
#define TBLOG_DAEMON_DAEMON_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/byte_budget.h"
#include "daemon/metrics.h"
#include "daemon/node_reduce.h"
#include "daemon/node_reduce_sender.h"
#include "daemon/options.h"
#include "daemon/record_converter.h"
#include "daemon/run_registry.h"
#include "daemon/shm_rings.h"
#include "daemon/shm_socket.h"
#include "daemon/tblog_service.h"
#include "daemon/tls.h"
#include "daemon/upstream_service.h"
#include "daemon/worker_pool.h"
#include "base/sync.h"

namespace grpc {
class Server;
}

namespace tblog::daemon {

class Daemon {
 public:
  // Creates the log directory, binds every address and starts serving.
  // The unix socket gets options.unix_socket_mode and _group, what the daemon
  // creates options.file_modes (permissions.h). Errors name the address,
  // path or group that failed.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(const DaemonOptions& options);
  // Shutdown(0) if it was not called, then joins every thread.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // "127.0.0.1:41234" (the port chosen when options.listen asked for 0) and
  // "unix:/path/to.sock", as clients dial them.
  std::vector<std::string> listening_addresses() const { return addresses_; }

  // Health NOT_SERVING; new calls refused with UNAVAILABLE; streams stop
  // reading; every run's queue drained, flushed, synced, checkpointed and
  // closed; open streams finished with UNAVAILABLE once acknowledged; then the
  // gRPC server stops. Waits at most `grace`. Idempotent; thread-safe.
  absl::Status Shutdown(absl::Duration grace) ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until the server has shut down.
  void Wait();

  // The counters and gauges in Prometheus text format. Thread-safe.
  std::string RenderMetrics() const { return metrics_.RenderPrometheus(); }
  RunRegistry& registry() { return *registry_; }

 private:
  explicit Daemon(const DaemonOptions& options);
  void FlusherLoop();

  const DaemonOptions options_;
  Metrics metrics_;
  ByteBudget budget_;
  // Shared-memory rings (null: no --shm-socket); before the converter and
  // the workers that read them, after the budget they are charged to.
  std::unique_ptr<ShmRings> shm_rings_;
  std::unique_ptr<WorkerPool> workers_;
  std::unique_ptr<RecordConverter> converter_;
  std::unique_ptr<RunRegistry> registry_;
  std::unique_ptr<TBLogService> service_;
  // Upstream mode (options.upstream): the hop and the service that forwards
  // every call over it, registered instead of service_. Null otherwise.
  std::unique_ptr<UpstreamChannel> upstream_channel_;
  std::unique_ptr<UpstreamService> upstream_service_;
  // `--upstream-forward reduced` (node_reduce.h): service_ writes the runs
  // here, the runs hand reduced contributions to node_reduce_, and
  // node_sender_ sends their partials over upstream_channel_. Null otherwise.
  std::unique_ptr<NodeReduce> node_reduce_;
  std::unique_ptr<NodeReduceSender> node_sender_;
  // TLS, tokens and their file watchers; before server_, which uses them.
  ListenerCredentials credentials_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ShmSocket> shm_socket_;  // attaches rings to shm_rings_
  std::vector<std::string> addresses_;

  Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // wakes the flusher
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status shutdown_status_ ABSL_GUARDED_BY(mu_);
  Mutex shutdown_mu_;  // one Shutdown at a time
  std::thread flusher_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_DAEMON_H_
