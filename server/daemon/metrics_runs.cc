#include "daemon/metrics_runs.h"


#include "daemon/metrics_families.h"

namespace tblog::daemon {

using metrics::AddSample;
using metrics::MakeFamily;
using prometheus::MetricType;

RunSeries::RunSeries(size_t max_runs) : max_runs_(max_runs > 0 ? max_runs : 1) {}

RunSeries::Counts& RunSeries::Touch(std::string_view run) {
  const absl::string_view run_id(run.data(), run.size());  // Debian's abseil is not std's
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    if (runs_.size() >= max_runs_) {
      // A linear scan, only when a run without a series arrives at the limit.
      auto oldest = runs_.begin();
      for (auto i = runs_.begin(); i != runs_.end(); ++i) {
        if (i->second.last_update < oldest->second.last_update) oldest = i;
      }
      runs_.erase(oldest);
      ++evicted_;
    }
    it = runs_.try_emplace(run_id).first;
  }
  it->second.last_update = ++update_clock_;
  return it->second;
}

void RunSeries::AddRejected(std::string_view run_id, absl::StatusCode code) {
  const auto index = static_cast<size_t>(code);
  MutexLock lock(&mu_);
  ++Touch(run_id).rejected[index < kNumCodes ? index : static_cast<size_t>(absl::StatusCode::kUnknown)];
}

void RunSeries::LeaseAcquired(std::string_view run_id) {
  MutexLock lock(&mu_);
  ++Touch(run_id).leases_acquired;
}

void RunSeries::LeaseReleased(std::string_view run_id) {
  MutexLock lock(&mu_);
  ++Touch(run_id).leases_released;
}

void RunSeries::LeaseExpired(std::string_view run_id) {
  MutexLock lock(&mu_);
  ++Touch(run_id).leases_expired;
}

void RunSeries::AppendTo(std::vector<prometheus::MetricFamily>* families) const {
  auto rejected = MakeFamily("tblogd_run_records_rejected_total",
                             "Records answered with an error, by run and reason (gRPC status code).",
                             MetricType::Counter);
  auto acquired = MakeFamily("tblogd_run_leases_acquired_total", "Run leases acquired, by run.",
                             MetricType::Counter);
  auto released = MakeFamily("tblogd_run_leases_released_total",
                             "Run leases released by their writer, by run.", MetricType::Counter);
  auto expired = MakeFamily("tblogd_run_leases_expired_total",
                            "Run leases that expired (the writer went silent), by run.",
                            MetricType::Counter);
  auto held = MakeFamily("tblogd_run_leases", "Run leases held now, by run.", MetricType::Gauge);
  auto evicted = MakeFamily(
      "tblogd_run_series_evicted_total",
      "Runs whose per-run series were dropped to keep the number of runs with series bounded.",
      MetricType::Counter);
  {
    MutexLock lock(&mu_);
    for (const auto& [run, counts] : runs_) {
      for (size_t code = 0; code < kNumCodes; ++code) {
        if (counts.rejected[code] == 0) continue;
        AddSample(rejected, static_cast<double>(counts.rejected[code]),
                  {{"reason", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))},
                   {"run", run}});
      }
      const uint64_t leases = counts.leases_acquired + counts.leases_released +
                              counts.leases_expired;
      if (leases == 0) continue;  // a run known only for rejections
      AddSample(acquired, static_cast<double>(counts.leases_acquired), {{"run", run}});
      AddSample(released, static_cast<double>(counts.leases_released), {{"run", run}});
      AddSample(expired, static_cast<double>(counts.leases_expired), {{"run", run}});
      const uint64_t ended = counts.leases_released + counts.leases_expired;
      AddSample(held,
                counts.leases_acquired > ended ? static_cast<double>(counts.leases_acquired - ended)
                                               : 0.0,
                {{"run", run}});
    }
    AddSample(evicted, static_cast<double>(evicted_));
  }
  for (auto* family : {&rejected, &acquired, &released, &expired, &held, &evicted}) {
    families->push_back(std::move(*family));
  }
}

}  // namespace tblog::daemon
