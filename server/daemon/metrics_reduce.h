// The reduction counters (tblog.proto, "Reductions across writers"),
// daemon-wide: every run's RunReductions (aggregate.h) adds to them; GetRun
// has the same counts per run (RunInfo.reduce_*). Lock-free counters, and a
// histogram with its own lock: thread-safe.
#ifndef TBLOG_DAEMON_METRICS_REDUCE_H_
#define TBLOG_DAEMON_METRICS_REDUCE_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"

namespace tblog::daemon {

class ReduceMetrics {
 public:
  ReduceMetrics();
  ReduceMetrics(const ReduceMetrics&) = delete;
  ReduceMetrics& operator=(const ReduceMetrics&) = delete;

  // A point handed out to be written, `wait` after its first contribution
  // (a negative wait, the clock set back, counts as 0); `timed_out`: its
  // group was not complete.
  void AddPoint(absl::Duration wait, bool timed_out);

  std::atomic<uint64_t> contributions{0};  // merged into a point
  std::atomic<uint64_t> late{0};           // for a point already written
  std::atomic<uint64_t> missing{0};        // not there when a point timed out
  std::atomic<uint64_t> duplicate{0};      // a contributor counted again

  // tblogd_reduce_points_total{reason="complete"|"timeout"},
  // tblogd_reduce_contributions_total, _late_total, _missing_total,
  // _duplicate_total and tblogd_reduce_point_wait_seconds.
  void AppendTo(std::vector<prometheus::MetricFamily>* families) const;

 private:
  std::atomic<uint64_t> points_complete_{0};
  std::atomic<uint64_t> points_timed_out_{0};
  prometheus::Histogram wait_;  // thread-safe (its own lock)
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_METRICS_REDUCE_H_
