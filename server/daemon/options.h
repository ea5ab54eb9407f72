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
inline EventFileOptions DaemonEventFileOptions() {
  EventFileOptions options;
  options.sync = SyncPolicy::kInterval;
  return options;
}

struct DaemonOptions {
  // Root of every run directory. Created if missing.
  std::string logdir = "./logs";
  // TCP address to listen on ("" = none). Loopback by default: a sidecar
  // shares the pod's network; bind 0.0.0.0 explicitly to serve other hosts.
  std::string listen = "127.0.0.1:6066";
  // Unix socket path to listen on ("" = none). Faster than TCP on one host.
  std::string unix_socket;
  // Worker threads for histograms, PNG, WAV and PR curves; 0 = one per core.
  int workers = 0;
  // How long written data may sit in the daemon's buffers before it is handed
  // to the OS, where TensorBoard sees it. Lower = fresher, more syscalls.
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
  Limits limits;
  // Logging: "text" or "json"; level: trace, debug, info, warn, error.
  std::string log_format = "text";
  std::string log_level = "info";
  // Prometheus metrics on this HTTP address ("" = off).
  std::string metrics_listen;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_OPTIONS_H_
