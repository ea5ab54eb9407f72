// The tblogd_upstream_* metrics of a node daemon (upstream mode,
// upstream_service.h): what went to the upstream and what it acknowledged.
// Counted by the forwarded streams and WriteBatch calls; the connection's
// gauges are read from the UpstreamChannel at scrape time. Lock-free
// counters: thread-safe.
#ifndef TBLOG_DAEMON_METRICS_UPSTREAM_H_
#define TBLOG_DAEMON_METRICS_UPSTREAM_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "prometheus/metric_family.h"

namespace tblog::daemon {

class UpstreamChannel;

class UpstreamMetrics {
 public:
  // `channel` is borrowed and outlives every AppendTo.
  explicit UpstreamMetrics(const UpstreamChannel* channel);
  UpstreamMetrics(const UpstreamMetrics&) = delete;
  UpstreamMetrics& operator=(const UpstreamMetrics&) = delete;

  // A batch of `records` records, `bytes` long, sent upstream: pending until
  // Acknowledged or Abandoned.
  void Forwarded(uint64_t records, uint64_t bytes);
  // The upstream acknowledged `batches` forwarded batches of `bytes` in all
  // (written: their sequences are at or below its written_sequence, or a
  // WriteBatch call was answered); `duplicates` of the acknowledgement's
  // duplicate_sequences were resends it already had.
  void Acknowledged(uint64_t batches, uint64_t bytes, uint64_t duplicates);
  // Forwarded batches of `bytes` in all whose acknowledgement will never come
  // here (their stream or call ended first; their clients resend them).
  void Abandoned(uint64_t bytes);

  // tblogd_upstream_connected, tblogd_upstream_reconnects_total,
  // tblogd_upstream_batches_forwarded_total, _records_forwarded_total,
  // _bytes_forwarded_total, _batches_acked_total, _batches_resent_total,
  // tblogd_upstream_pending_bytes and tblogd_upstream_last_ack_age_seconds.
  void AppendTo(std::vector<prometheus::MetricFamily>* families) const;

 private:
  const UpstreamChannel* const channel_;
  const absl::Time started_;
  std::atomic<uint64_t> batches_forwarded_{0};
  std::atomic<uint64_t> records_forwarded_{0};
  std::atomic<uint64_t> bytes_forwarded_{0};
  std::atomic<uint64_t> batches_acked_{0};
  std::atomic<uint64_t> batches_resent_{0};
  std::atomic<int64_t> pending_bytes_{0};
  std::atomic<int64_t> last_ack_unix_nanos_{0};  // 0: none yet
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_METRICS_UPSTREAM_H_
