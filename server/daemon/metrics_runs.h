// Per-run counters (label `run`) with a bound on how many runs have series:
// each label value is a time series that Prometheus keeps, and runs come and
// go for as long as the daemon lives, so an unbounded label would grow its
// memory and Prometheus' without end. At most `max_runs` runs have series at
// once; when another run needs one, the series of the run updated least
// recently is dropped (its counts stay in the daemon-wide totals, and
// tblogd_run_series_evicted_total counts the drops).
#ifndef TBLOG_DAEMON_METRICS_RUNS_H_
#define TBLOG_DAEMON_METRICS_RUNS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "base/sync.h"
#include "prometheus/metric_family.h"

namespace tblog::daemon {

class RunSeries {
 public:
  explicit RunSeries(size_t max_runs);
  RunSeries(const RunSeries&) = delete;
  RunSeries& operator=(const RunSeries&) = delete;

  // A record of `run_id` answered with `code`. Thread-safe, like all below.
  void AddRejected(std::string_view run_id, absl::StatusCode code) ABSL_LOCKS_EXCLUDED(mu_);

  // Leases: every acquired lease ends once, released or expired; the gauge
  // tblogd_run_leases is acquired - released - expired.
  void LeaseAcquired(std::string_view run_id) ABSL_LOCKS_EXCLUDED(mu_);
  void LeaseReleased(std::string_view run_id) ABSL_LOCKS_EXCLUDED(mu_);
  void LeaseExpired(std::string_view run_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Appends the per-run families (tblogd_run_records_rejected_total{run,reason},
  // tblogd_run_leases_acquired_total, _released_total, _expired_total,
  // tblogd_run_leases{run}) and tblogd_run_series_evicted_total.
  void AppendTo(std::vector<prometheus::MetricFamily>* families) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  static constexpr size_t kNumCodes = 17;  // google.rpc codes 0..16
  struct Counts {
    std::array<uint64_t, kNumCodes> rejected{};
    uint64_t leases_acquired = 0;
    uint64_t leases_released = 0;
    uint64_t leases_expired = 0;
    uint64_t last_update = 0;  // a tick of update_clock_: the eviction order
  };
  // The run's counts, made (evicting another run's if need be) when missing.
  Counts& Touch(std::string_view run_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_runs_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, Counts> runs_ ABSL_GUARDED_BY(mu_);
  uint64_t update_clock_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t evicted_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_METRICS_RUNS_H_
