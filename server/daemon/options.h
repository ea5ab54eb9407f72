// Every setting of the daemon, with its default and trade-off. Filled from
// flags, environment variables and a config file by config.cc; passed by
// const reference to the parts that need it.
//
// The defaults here are the only ones: config.cc derives every flag's
// default (and its --help text) from a default-constructed DaemonOptions, and
// config_test checks that parsing no flags gives exactly DaemonOptions{}.
#ifndef TBLOG_DAEMON_OPTIONS_H_
#define TBLOG_DAEMON_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "daemon/run_owner.h"
#include "daemon/upstream_options.h"
#include "engine/io/event_file_writer.h"

namespace tblog::daemon {

// Bounds on what one client can send. Each is checked on every request and
// answered with INVALID_ARGUMENT or RESOURCE_EXHAUSTED naming the limit.
struct Limits {
  // Largest gRPC message accepted (a batch). Bigger messages are refused by
  // gRPC itself with RESOURCE_EXHAUSTED.
  size_t max_message_bytes = 64 << 20;
  // Elements of one tensor (histogram values, embedding matrix, PR inputs).
  int64_t max_tensor_elements = int64_t{1} << 28;  // 268M: a 1 GiB float32 tensor
  // Pixels of one image (height * width), and images in one batch.
  int64_t max_image_pixels = int64_t{1} << 26;  // 8192 x 8192
  int64_t max_images_per_record = 64;
  // Audio frames of one clip.
  int64_t max_audio_frames = int64_t{1} << 26;
  // Histogram buckets (uniform layout).
  uint32_t max_histogram_buckets = 10000;
  // PR-curve thresholds.
  uint32_t max_pr_thresholds = 10000;
  // Bytes of a tag, of each path component (experiment, run, sub-run), and of
  // a whole run path.
  size_t max_tag_bytes = 256;
  size_t max_name_bytes = 255;
  size_t max_path_bytes = 1024;
  // Text record bytes, and graph nodes.
  size_t max_text_bytes = 16 << 20;
  int64_t max_graph_nodes = 1 << 20;
  // Open runs and concurrent Write streams.
  int max_runs = 1024;
  int max_streams = 1024;
  // Sub-runs of one run (each is a directory with its own event file).
  int max_subruns_per_run = 256;

  friend bool operator==(const Limits&, const Limits&) = default;
};

// The engine's event-file defaults, except the fsync policy. The engine
// fsyncs on every flush (a library cannot know its caller's durability
// needs); the daemon flushes every flush_interval, so it fsyncs at most every
// sync_interval (5 s) instead: a machine crash loses at most that much, and
// a run with many small flushes pays no fsync for each.
// The files' writeback starts every MiB, so a close's fsync (CloseRun
// answers once the data is durable) waits on about that much, not on all
// that was written since the last interval sync.
inline EventFileOptions DaemonEventFileOptions() {
  EventFileOptions options;
  options.sync = SyncPolicy::kInterval;
  options.writeback_bytes = uint64_t{1} << 20;
  return options;
}

// TLS on the TCP listener and bearer tokens on every RPC but health (auth.h,
// tls.h). All off by default: the default listener is loopback only. The
// unix socket never carries TLS (its file mode guards it); tokens apply to it.
struct SecurityOptions {
  // PEM certificate chain and private key of the TCP listener ("" = no TLS).
  // Both or neither. Reread when they change on disk (a rotated Kubernetes
  // Secret), so new connections see the new certificate without a restart.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CA bundle: when set, clients must present a certificate it signed
  // (mTLS). Requires tls_cert_file. Reloaded like the certificate.
  std::string tls_client_ca_file;
  // Bearer tokens, one per line ("[name:]token", '#' comments); "" = no
  // tokens. Reloaded on change. Without TLS, tokens need a loopback --listen.
  std::string auth_token_file;
  // How often the files above are checked for changes. gRPC's certificate
  // watcher counts in whole seconds: at least 1s.
  absl::Duration credentials_reload_interval = absl::Seconds(10);

  bool tls() const { return !tls_cert_file.empty(); }
  bool tokens() const { return !auth_token_file.empty(); }
};

struct DaemonOptions {
  // Root of every run directory. Created if missing.
  std::string logdir = "./logs";
  // TCP address to listen on ("" = none). Loopback by default: a sidecar
  // shares the pod's network; bind 0.0.0.0 explicitly to serve other hosts.
  std::string listen = "127.0.0.1:6066";
  // Unix socket path to listen on ("" = none). Faster than TCP on one host.
  std::string unix_socket;
  // Who may connect to the unix socket: its permission bits, and its group
  // (a name or a gid; "" = as created: the daemon's group, or the directory's
  // when that is setgid, as a Kubernetes fsGroup volume is). 0660 lets a
  // trainer of another uid in that group connect, and nobody else.
  uint32_t unix_socket_mode = 0660;
  std::string unix_socket_group;
  // The side socket on which clients on this host attach shared-memory rings
  // (shm_socket.h): tensors then travel as slices of the ring instead of
  // bytes in the messages. "" = "<unix_socket>.shm" when unix_socket is set,
  // else none; "off" = none. Same mode and group as the unix socket: whoever
  // may write may attach. Rings take at most half of max_inflight_bytes.
  std::string shm_socket;
  // The path shm_socket stands for ("" = no shared memory).
  std::string ShmSocketPath() const {
    if (shm_socket == "off" || upstream.forwards_everything()) return "";
    if (!shm_socket.empty()) return shm_socket;
    return unix_socket.empty() ? "" : unix_socket + ".shm";
  }
  // Permission bits of the files and directories the daemon creates, exactly
  // (the umask does not narrow them): by default TensorBoard running as any
  // user reads the logs. 0640/0750 keep them to the group. Applied through
  // FileSystem::Posix when file.file_system is FileSystem::Default(); a
  // FileSystem of the caller's (a test's) makes its own modes.
  FileModes file_modes;
  // Worker threads for histograms, PNG, WAV and PR curves; 0 = one per core.
  int workers = 0;
  // The flusher's tick: how often each run with new data writes its
  // checkpoint (and fsyncs when --fsync-interval is due), which is when
  // flushed_sequence advances. Data itself reaches the OS, where TensorBoard
  // sees it, as soon as a run's queue drains (run.cc), not at this tick.
  absl::Duration flush_interval = absl::Seconds(1);
  // Event files: rotation size, buffering, fsync policy. See
  // DaemonEventFileOptions() for how the daemon's default differs.
  EventFileOptions file = DaemonEventFileOptions();
  // Bytes the daemon holds for requests at once: messages, their conversion
  // buffers, converted events until written (byte_budget.h). When spent, the
  // daemon stops reading from streams and parks WriteBatch calls (flow
  // control), so memory stays within this plus a fixed overhead (README,
  // "Memory") whatever clients do.
  size_t max_inflight_bytes = 256 << 20;
  // How long SIGTERM/SIGINT waits for queues to drain before exiting.
  absl::Duration shutdown_grace = absl::Seconds(30);
  // How long a writer keeps its hold on a run after its last Write stream
  // ended (or its OpenRun / WriteBatch) without coming back. Past it the hold
  // is released as by CloseRun, and a run with no hold left closes. Longer
  // rides out longer network or daemon outages of live trainers; shorter
  // frees the runs of killed trainers (and --max-runs room) sooner.
  absl::Duration writer_lease = absl::Seconds(60);
  // How long a reduced point (Record.reduce) waits, from its first
  // contribution, for the rest of its group before it is written from what
  // arrived; a run's OpenRunRequest.reduce_timeout_seconds overrides it.
  absl::Duration reduce_timeout = absl::Seconds(30);
  Limits limits;
  // Logging: "text" or "json"; level: trace, debug, info, warn, error.
  std::string log_format = "text";
  std::string log_level = "info";
  // Prometheus metrics on this HTTP address ("" = off).
  std::string metrics_listen;
  SecurityOptions security;
  // Upstream mode: forward to another tblogd instead of writing (off by default).
  UpstreamOptions upstream;
  // Who is calling, for run ownership (run_owner.h). Empty = no
  // authentication, every caller is the same anonymous owner. Not a flag: the
  // token authentication fills it, and tests set their own.
  CallerIdentityFn caller_identity;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_OPTIONS_H_
