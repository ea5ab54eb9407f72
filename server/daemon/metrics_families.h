// Building prometheus-cpp's MetricFamily values at scrape time, for the
// collectors of server/daemon/metrics*.cc: the daemon's counts live in its own
// atomics and components, and are turned into families only when scraped.
#ifndef TBLOG_DAEMON_METRICS_FAMILIES_H_
#define TBLOG_DAEMON_METRICS_FAMILIES_H_

#include <string>
#include <utility>
#include <vector>

#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace tblog::daemon::metrics {

using Labels = std::vector<prometheus::ClientMetric::Label>;

inline prometheus::MetricFamily MakeFamily(std::string name, std::string help,
                                           prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

// Appends one sample of a counter or gauge family.
inline void AddSample(prometheus::MetricFamily& family, double value, Labels labels = {}) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  if (family.type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
}

}  // namespace tblog::daemon::metrics

#endif  // TBLOG_DAEMON_METRICS_FAMILIES_H_
