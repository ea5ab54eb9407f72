#include "daemon/metrics_upstream.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "daemon/metrics_families.h"
#include "daemon/upstream_channel.h"

namespace tblog::daemon {
namespace {

using metrics::AddSample;
using metrics::MakeFamily;
using prometheus::MetricFamily;
using prometheus::MetricType;

template <typename T>
MetricFamily One(const char* name, const char* help, MetricType type, T value) {
  MetricFamily family = MakeFamily(name, help, type);
  AddSample(family, static_cast<double>(value));
  return family;
}

uint64_t Load(const std::atomic<uint64_t>& counter) {
  return counter.load(std::memory_order_relaxed);
}

}  // namespace

UpstreamMetrics::UpstreamMetrics(const UpstreamChannel* channel)
    : channel_(channel), started_(absl::Now()) {}

void UpstreamMetrics::Forwarded(uint64_t records, uint64_t bytes) {
  batches_forwarded_.fetch_add(1, std::memory_order_relaxed);
  records_forwarded_.fetch_add(records, std::memory_order_relaxed);
  bytes_forwarded_.fetch_add(bytes, std::memory_order_relaxed);
  pending_bytes_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
}

void UpstreamMetrics::Acknowledged(uint64_t batches, uint64_t bytes, uint64_t duplicates) {
  batches_acked_.fetch_add(batches, std::memory_order_relaxed);
  batches_resent_.fetch_add(duplicates, std::memory_order_relaxed);
  pending_bytes_.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  last_ack_unix_nanos_.store(absl::ToUnixNanos(absl::Now()), std::memory_order_relaxed);
}

void UpstreamMetrics::Abandoned(uint64_t bytes) {
  pending_bytes_.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
}

void UpstreamMetrics::AppendTo(std::vector<MetricFamily>* families) const {
  families->push_back(One("tblogd_upstream_connected",
                          "1 while the channel to the upstream tblogd is connected, else 0.",
                          MetricType::Gauge, channel_->connected() ? 1 : 0));
  families->push_back(One("tblogd_upstream_reconnects_total",
                          "Connections to the upstream made after the first one (after a loss, "
                          "or a new --upstream-token-file token).",
                          MetricType::Counter, channel_->reconnects()));
  families->push_back(One("tblogd_upstream_batches_forwarded_total",
                          "Batches (Write stream messages, WriteBatch calls) sent upstream.",
                          MetricType::Counter, Load(batches_forwarded_)));
  families->push_back(One("tblogd_upstream_records_forwarded_total",
                          "Records of the batches sent upstream.", MetricType::Counter,
                          Load(records_forwarded_)));
  families->push_back(One("tblogd_upstream_bytes_forwarded_total",
                          "Serialized bytes of the batches sent upstream.", MetricType::Counter,
                          Load(bytes_forwarded_)));
  families->push_back(One("tblogd_upstream_batches_acked_total",
                          "Batches sent upstream that the upstream acknowledged written.",
                          MetricType::Counter, Load(batches_acked_)));
  families->push_back(One("tblogd_upstream_batches_resent_total",
                          "Batches the upstream already had (resent by clients after a "
                          "reconnect or a restart; dropped there).",
                          MetricType::Counter, Load(batches_resent_)));
  families->push_back(One("tblogd_upstream_pending_bytes",
                          "Bytes of batches sent upstream and not acknowledged yet.",
                          MetricType::Gauge,
                          std::max<int64_t>(0, pending_bytes_.load(std::memory_order_relaxed))));
  const int64_t last = last_ack_unix_nanos_.load(std::memory_order_relaxed);
  const absl::Time since = last == 0 ? started_ : absl::FromUnixNanos(last);
  families->push_back(One("tblogd_upstream_last_ack_age_seconds",
                          "Seconds since the upstream last acknowledged a batch (since the "
                          "daemon started, before the first).",
                          MetricType::Gauge,
                          std::max(0.0, absl::ToDoubleSeconds(absl::Now() - since))));
}

}  // namespace tblog::daemon
