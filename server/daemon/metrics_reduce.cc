#include "daemon/metrics_reduce.h"

#include "daemon/metrics_families.h"

namespace tblog::daemon {
namespace {

using metrics::AddSample;
using metrics::MakeFamily;
using prometheus::MetricFamily;
using prometheus::MetricType;

// From the last rank's contribution (milliseconds) to a timeout (30 s and up).
const prometheus::Histogram::BucketBoundaries& WaitBuckets() {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return *kBuckets;
}

double Load(const std::atomic<uint64_t>& counter) {
  return static_cast<double>(counter.load(std::memory_order_relaxed));
}

MetricFamily Counter(const char* name, const char* help, const std::atomic<uint64_t>& counter) {
  MetricFamily family = MakeFamily(name, help, MetricType::Counter);
  AddSample(family, Load(counter));
  return family;
}

}  // namespace

ReduceMetrics::ReduceMetrics() : wait_(WaitBuckets()) {}

void ReduceMetrics::AddPoint(absl::Duration wait, bool timed_out) {
  (timed_out ? points_timed_out_ : points_complete_).fetch_add(1, std::memory_order_relaxed);
  wait_.Observe(wait > absl::ZeroDuration() ? absl::ToDoubleSeconds(wait) : 0.0);
}

void ReduceMetrics::AppendTo(std::vector<MetricFamily>* families) const {
  MetricFamily points = MakeFamily(
      "tblogd_reduce_points_total",
      "Points written from contributions reduced across writers, by why: the group was "
      "complete, or the reduce timeout passed.",
      MetricType::Counter);
  AddSample(points, Load(points_complete_), {{"reason", "complete"}});
  AddSample(points, Load(points_timed_out_), {{"reason", "timeout"}});
  families->push_back(std::move(points));
  families->push_back(Counter("tblogd_reduce_contributions_total",
                              "Contributions merged into reduced points.", contributions));
  families->push_back(Counter("tblogd_reduce_contributions_late_total",
                              "Contributions for a point already written (dropped).", late));
  families->push_back(Counter("tblogd_reduce_contributions_missing_total",
                              "Contributors of the group absent when a point was written at "
                              "its timeout.",
                              missing));
  families->push_back(Counter("tblogd_reduce_contributions_duplicate_total",
                              "Contributions whose contributor the point had counted already "
                              "(dropped).",
                              duplicate));
  MetricFamily wait = MakeFamily(
      "tblogd_reduce_point_wait_seconds",
      "From a reduced point's first contribution to its being handed to the run's writer.",
      MetricType::Histogram);
  wait.metric.push_back(wait_.Collect());
  families->push_back(std::move(wait));
}

}  // namespace tblog::daemon
