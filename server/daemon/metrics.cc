#include "daemon/metrics.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/byte_budget.h"
#include "daemon/worker_pool.h"

namespace tblog::daemon {

RecordKind KindOf(const v1::Record& record) {
  switch (record.kind_case()) {
    case v1::Record::kScalar: return RecordKind::kScalar;
    case v1::Record::kScalars: return RecordKind::kScalars;
    case v1::Record::kHistogram: return RecordKind::kHistogram;
    case v1::Record::kImage: return RecordKind::kImage;
    case v1::Record::kText: return RecordKind::kText;
    case v1::Record::kAudio: return RecordKind::kAudio;
    case v1::Record::kPrCurve: return RecordKind::kPrCurve;
    case v1::Record::kHparams: return RecordKind::kHParams;
    case v1::Record::kGraph: return RecordKind::kGraph;
    case v1::Record::kEmbedding: return RecordKind::kEmbedding;
    case v1::Record::kCustomScalars: return RecordKind::kCustomScalars;
    case v1::Record::KIND_NOT_SET: break;
  }
  return RecordKind::kNone;
}

const char* KindName(RecordKind kind) {
  static constexpr const char* kNames[kNumRecordKinds] = {
      "none", "scalar", "scalars", "histogram", "image", "text", "audio", "pr_curve", "hparams",
      "graph", "embedding", "custom_scalars"};
  return kNames[static_cast<size_t>(kind)];
}

namespace {

void Family(std::string* out, const char* name, const char* type, const char* help) {
  absl::StrAppendFormat(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

template <typename T>
void Sample(std::string* out, const char* name, const std::atomic<T>& value) {
  absl::StrAppend(out, name, " ", value.load(std::memory_order_relaxed), "\n");
}

// A counter family with one sample per record kind.
void ByKind(std::string* out, const char* name, const char* help,
            const std::array<std::atomic<uint64_t>, kNumRecordKinds>& counts) {
  Family(out, name, "counter", help);
  for (int k = 0; k < kNumRecordKinds; ++k) {
    absl::StrAppend(out, name, "{kind=\"", KindName(static_cast<RecordKind>(k)), "\"} ",
                    counts[static_cast<size_t>(k)].load(std::memory_order_relaxed), "\n");
  }
}

}  // namespace

void Metrics::ReadGaugesFrom(const ByteBudget* budget, const WorkerPool* workers) {
  if (budget != nullptr) {
    AddGauge("tblogd_inflight_bytes", "Bytes received and not yet written (budget in use).",
             [budget] { return static_cast<int64_t>(budget->used()); });
    AddGauge("tblogd_parked_streams", "Streams waiting for the in-flight byte budget.",
             [budget] { return static_cast<int64_t>(budget->parked()); });
  }
  if (workers != nullptr) {
    AddGauge("tblogd_worker_queued_tasks", "Tasks waiting for a worker thread.",
             [workers] { return workers->queued_tasks(); });
  }
}

void Metrics::AddGauge(std::string name, std::string help, std::function<int64_t()> read) {
  gauges_.push_back(GaugeSource{std::move(name), std::move(help), std::move(read)});
}

std::string Metrics::RenderPrometheus() const {
  std::string out;
  ByKind(&out, "tblogd_records_received_total", "Records received, by kind.", received_);
  ByKind(&out, "tblogd_records_written_total", "Records written to event files, by kind.",
         written_);
  Family(&out, "tblogd_records_rejected_total", "counter",
         "Records answered with an error, by gRPC status code.");
  for (int code = 0; code < 17; ++code) {
    const uint64_t n = rejected_[static_cast<size_t>(code)].load(std::memory_order_relaxed);
    if (n == 0) continue;
    absl::StrAppend(&out, "tblogd_records_rejected_total{code=\"",
                    absl::StatusCodeToString(static_cast<absl::StatusCode>(code)), "\"} ", n,
                    "\n");
  }
  struct Counter {
    const char* name;
    const char* help;
    const std::atomic<uint64_t>& value;
  };
  const Counter counters[] = {
      {"tblogd_received_bytes_total", "Bytes of write requests accepted.", bytes_received},
      {"tblogd_event_file_bytes_written_total", "Event file bytes handed to the OS.",
       event_bytes_written},
      {"tblogd_batches_written_total", "Batches written.", batches_written},
      {"tblogd_batches_duplicate_total", "Resent batches dropped as already written.",
       batches_duplicate},
      {"tblogd_streams_refused_total", "Write streams refused (stream limit or shutdown).",
       streams_refused},
      {"tblogd_io_errors_total", "Event file or checkpoint I/O errors.", io_errors},
      {"tblogd_checkpoint_writes_total", "Run checkpoints written.", checkpoint_writes},
      {"tblogd_steps_back_total",
       "Points whose step went back for a tag of the same writer (TensorBoard hides points).",
       steps_back},
      {"tblogd_flushes_total", "Run flushes (to the OS, synced per policy).", flushes_},
  };
  for (const Counter& counter : counters) {
    Family(&out, counter.name, "counter", counter.help);
    Sample(&out, counter.name, counter.value);
  }
  for (const GaugeSource& gauge : gauges_) {
    Family(&out, gauge.name.c_str(), "gauge", gauge.help.c_str());
    absl::StrAppend(&out, gauge.name, " ", gauge.read(), "\n");
  }
  // A summary without quantiles: Prometheus reserves the _sum and _count
  // suffixes for the samples of a summary or histogram family.
  Family(&out, "tblogd_flush_latency_seconds", "summary", "Time spent in run flushes.");
  absl::StrAppendFormat(&out, "tblogd_flush_latency_seconds_sum %.6f\n",
                        static_cast<double>(flush_micros_.load(std::memory_order_relaxed)) / 1e6);
  absl::StrAppend(&out, "tblogd_flush_latency_seconds_count ",
                  flushes_.load(std::memory_order_relaxed), "\n");
  return out;
}

}  // namespace tblog::daemon
