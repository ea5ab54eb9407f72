// The daemon's counters and gauges, rendered in Prometheus text format.
// Counters are lock-free (relaxed atomics): every part of the daemon bumps
// them from any thread. Every gauge's truth lives in a component (the byte
// budget's bytes in use and parked streams, the worker pool's queue, the run
// registry's open runs, the service's streams) and is read from that
// component at scrape time, never kept as a copy that could drift from it.
#ifndef TBLOG_DAEMON_METRICS_H_
#define TBLOG_DAEMON_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

class ByteBudget;
class WorkerPool;

// Record kinds, in tblog.v1.Record's oneof order; kNone for a record without one.
enum class RecordKind {
  kNone, kScalar, kScalars, kHistogram, kImage, kText, kAudio, kPrCurve, kHParams, kGraph,
  kEmbedding, kCustomScalars,
};
inline constexpr int kNumRecordKinds = 12;
RecordKind KindOf(const v1::Record& record);
const char* KindName(RecordKind kind);

class Metrics {
 public:
  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void AddReceived(RecordKind kind, uint64_t records) { Add(received_[Index(kind)], records); }
  void AddWritten(RecordKind kind, uint64_t records) { Add(written_[Index(kind)], records); }
  // `code` is a google.rpc code (0..16).
  void AddRejected(int code) { Add(rejected_[code >= 0 && code < 17 ? code : 2], 1); }
  void AddFlush(absl::Duration latency) {
    Add(flushes_, 1);
    Add(flush_micros_, static_cast<uint64_t>(absl::ToInt64Microseconds(latency)));
  }

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

  // The Prometheus text exposition (version 0.0.4) of every counter and
  // gauge: a HELP and a TYPE line per family, then its samples. Thread-safe.
  std::string RenderPrometheus() const;

 private:
  static size_t Index(RecordKind kind) { return static_cast<size_t>(kind); }
  static void Add(std::atomic<uint64_t>& counter, uint64_t n) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }

  std::array<std::atomic<uint64_t>, kNumRecordKinds> received_{};
  std::array<std::atomic<uint64_t>, kNumRecordKinds> written_{};
  std::array<std::atomic<uint64_t>, 17> rejected_{};
  std::atomic<uint64_t> flushes_{0};
  std::atomic<uint64_t> flush_micros_{0};
  struct GaugeSource {
    std::string name;
    std::string help;
    std::function<int64_t()> read;
  };
  std::vector<GaugeSource> gauges_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_METRICS_H_
