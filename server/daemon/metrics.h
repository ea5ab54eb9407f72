// The daemon's metrics, exposed in the Prometheus text format.
//
// The data model and the text serializer are prometheus-cpp's (Debian's
// prometheus-cpp-dev, core library only): HELP/TYPE lines, label escaping,
// histogram buckets with `le` and +Inf, number formatting are the library's,
// not hand-written. Names follow Prometheus' conventions: a `tblogd_` prefix,
// base units in the name (_seconds, _bytes), counters end in _total.
//
// Counters are lock-free (relaxed atomics): every part of the daemon bumps
// them from any thread, and they become MetricFamily values only when scraped.
// Every gauge's truth lives in a component (the byte budget's bytes in use and
// parked streams, the worker pool's queue, the run registry's open runs, the
// service's streams) and is read from that component at scrape time, never
// kept as a copy that could drift from it. Per-run series are bounded
// (metrics_runs.h); the process_* families come from /proc/self
// (metrics_process.h).
#ifndef TBLOG_DAEMON_METRICS_H_
#define TBLOG_DAEMON_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/metrics_reduce.h"
#include "daemon/metrics_runs.h"
#include "prometheus/histogram.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

class ByteBudget;
class WorkerPool;

// Record kinds, in tblog.v1.Record's oneof order; kNone for a record without one.
enum class RecordKind {
  kNone, kScalar, kScalars, kHistogram, kImage, kText, kAudio, kPrCurve, kHParams, kGraph,
  kEmbedding, kCustomScalars, kVideo, kMesh,
};
inline constexpr int kNumRecordKinds = 14;
RecordKind KindOf(const v1::Record& record);
const char* KindName(RecordKind kind);

// The data points a record carries, what an operator counts: one value of one
// tag at one step. A scalar column (ScalarColumns) carries one per entry, so
// a column of 1,000 scalars is 1,000 points; every other record is one point
// (an image batch is one image summary at one step, as TensorBoard shows it).
uint64_t PointsOf(const v1::Record& record);

class Metrics {
 public:
  // Runs with per-run series at once (see RunSeries): the default --max-runs.
  static constexpr size_t kDefaultMaxRunSeries = 1024;

  explicit Metrics(size_t max_run_series = kDefaultMaxRunSeries);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // All of the calls below are thread-safe.

  // A record accepted from a client, or written to an event file: counted as
  // a record and as PointsOf(record) points, by kind.
  void AddReceived(const v1::Record& record);
  void AddWritten(const v1::Record& record);
  // A record of run `run_id` answered with `code` (not OK): counted by reason
  // and, bounded, by run.
  void AddRejected(std::string_view run_id, absl::StatusCode code);
  // A run's flush (to the OS, synced per policy, checkpoint written), timed
  // by the run's writer: tblogd_flush_duration_seconds. Durations are
  // differences of wall-clock times: a negative one (the clock was set back)
  // counts as 0, so that the histogram's sum never decreases.
  void AddFlush(absl::Duration duration) { flush_duration_.Observe(Seconds(duration)); }
  // A Flush call, from its arrival to its answer (waits for the batches it
  // names): tblogd_flush_call_duration_seconds.
  void AddFlushCall(absl::Duration duration) { flush_call_duration_.Observe(Seconds(duration)); }
  // A Write stream that ended with an error other than the daemon's own
  // shutdown: tblogd_streams_dropped_total{reason}.
  void AddStreamDropped(absl::StatusCode code);

  // Run leases, for the run registry: each acquired lease later ends once,
  // released by its writer or expired.
  void RunLeaseAcquired(std::string_view run_id) { runs_.LeaseAcquired(run_id); }
  void RunLeaseReleased(std::string_view run_id) { runs_.LeaseReleased(run_id); }
  void RunLeaseExpired(std::string_view run_id) { runs_.LeaseExpired(run_id); }

  std::atomic<uint64_t> bytes_received{0};        // WriteRequest bytes accepted
  std::atomic<uint64_t> event_bytes_written{0};   // event file bytes handed to the OS
  std::atomic<uint64_t> batches_duplicate{0};
  std::atomic<uint64_t> batches_written{0};
  std::atomic<uint64_t> streams_refused{0};       // past max_streams or shutting down
  std::atomic<uint64_t> io_errors{0};
  std::atomic<uint64_t> checkpoint_writes{0};
  // Points whose step is not above the last one of the same tag, writer and
  // sub-run: TensorBoard drops the points it holds at or after that step.
  std::atomic<uint64_t> steps_back{0};
  // Reductions across writers (aggregate.h).
  ReduceMetrics reduce;

  // The components whose gauges are rendered: tblogd_inflight_bytes and
  // tblogd_parked_streams from `budget`, tblogd_worker_queued_tasks from
  // `workers`. Either may be null (its gauges are left out). Both are
  // borrowed and must outlive every later RenderPrometheus(); call this
  // before RenderPrometheus() can run on another thread.
  void ReadGaugesFrom(const ByteBudget* budget, const WorkerPool* workers);

  // Adds the gauge `name` whose value `read` returns from its owner at
  // scrape time. `read` must be thread-safe, and what it reads must outlive
  // every later RenderPrometheus(); call this before RenderPrometheus() can
  // run on another thread. Gauges are rendered in the order they were added.
  void AddGauge(std::string name, std::string help, std::function<int64_t()> read);
  // Adds the families that `append` builds at scrape time (a component's
  // own metrics, e.g. metrics_upstream.h), under AddGauge's rules; rendered
  // after the gauges, in the order they were added.
  using FamilySource = std::function<void(std::vector<prometheus::MetricFamily>*)>;
  void AddFamilies(FamilySource append);

  // Every family at this moment, in prometheus-cpp's data model.
  std::vector<prometheus::MetricFamily> Collect() const;
  // Collect() in the Prometheus text exposition format, version 0.0.4.
  std::string RenderPrometheus() const;

 private:
  static constexpr size_t kNumCodes = 17;  // google.rpc codes 0..16
  using ByKind = std::array<std::atomic<uint64_t>, kNumRecordKinds>;
  using ByCode = std::array<std::atomic<uint64_t>, kNumCodes>;
  static void Add(std::atomic<uint64_t>& counter, uint64_t n) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
  static size_t CodeIndex(absl::StatusCode code);
  static double Seconds(absl::Duration duration) {
    return duration > absl::ZeroDuration() ? absl::ToDoubleSeconds(duration) : 0.0;
  }

  ByKind records_received_{};
  ByKind points_received_{};
  ByKind records_written_{};
  ByKind points_written_{};
  ByCode rejected_{};
  ByCode streams_dropped_{};
  prometheus::Histogram flush_duration_;       // thread-safe (its own lock)
  prometheus::Histogram flush_call_duration_;  // thread-safe (its own lock)
  RunSeries runs_;
  struct GaugeSource {
    std::string name;
    std::string help;
    std::function<int64_t()> read;
  };
  std::vector<GaugeSource> gauges_;  // set up before serving, read-only after
  std::vector<FamilySource> family_sources_;  // likewise
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_METRICS_H_
