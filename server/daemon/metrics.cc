#include "daemon/metrics.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/byte_budget.h"
#include "daemon/metrics_families.h"
#include "daemon/metrics_process.h"
#include "daemon/worker_pool.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/text_serializer.h"

#ifndef TBLOG_VERSION
#define TBLOG_VERSION "unknown"
#endif

namespace tblog::daemon {

using metrics::AddSample;
using metrics::MakeFamily;
using prometheus::MetricFamily;
using prometheus::MetricType;

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
    case v1::Record::kVideo: return RecordKind::kVideo;
    case v1::Record::kMesh: return RecordKind::kMesh;
    case v1::Record::KIND_NOT_SET: break;
  }
  return RecordKind::kNone;
}

const char* KindName(RecordKind kind) {
  static constexpr const char* kNames[kNumRecordKinds] = {
      "none", "scalar", "scalars", "histogram", "image", "text", "audio", "pr_curve", "hparams",
      "graph", "embedding", "custom_scalars", "video", "mesh"};
  return kNames[static_cast<size_t>(kind)];
}

uint64_t PointsOf(const v1::Record& record) {
  // tag_index has one entry per point (the converter refuses a column whose
  // steps or values disagree with it).
  if (record.kind_case() == v1::Record::kScalars) {
    return static_cast<uint64_t>(record.scalars().tag_index_size());
  }
  return 1;
}

namespace {

// Run flushes write buffered events, fsync per policy and write a checkpoint:
// from tens of microseconds (page cache) to seconds (a slow disk's fsync).
const prometheus::Histogram::BucketBoundaries& FlushBuckets() {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
      5, 10};
  return *kBuckets;
}

template <typename Counts>
double Load(const Counts& counts, size_t i) {
  return static_cast<double>(counts[i].load(std::memory_order_relaxed));
}

MetricFamily CounterByKind(const char* name, const char* help,
                           const std::array<std::atomic<uint64_t>, kNumRecordKinds>& counts) {
  MetricFamily family = MakeFamily(name, help, MetricType::Counter);
  for (size_t k = 0; k < kNumRecordKinds; ++k) {
    AddSample(family, Load(counts, k), {{"kind", KindName(static_cast<RecordKind>(k))}});
  }
  return family;
}

// Only the codes that happened: most never do, and an absent series reads as
// zero in PromQL's rate().
template <size_t N>
MetricFamily CounterByReason(const char* name, const char* help,
                             const std::array<std::atomic<uint64_t>, N>& counts) {
  MetricFamily family = MakeFamily(name, help, MetricType::Counter);
  for (size_t code = 0; code < N; ++code) {
    const double n = Load(counts, code);
    if (n == 0) continue;
    AddSample(family, n, {{"reason", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}});
  }
  return family;
}

MetricFamily HistogramFamily(const char* name, const char* help,
                             const prometheus::Histogram& histogram) {
  MetricFamily family = MakeFamily(name, help, MetricType::Histogram);
  family.metric.push_back(histogram.Collect());
  return family;
}

MetricFamily BuildInfo() {
  MetricFamily family = MakeFamily(
      "tblogd_build_info",
      "Always 1; the labels say which tblogd this is and what it was built with.",
      MetricType::Gauge);
  AddSample(family, 1,
            {{"compiler", __VERSION__},
             {"grpc_version", grpc::Version()},
             {"protobuf_version",
              google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION)},
             {"version", TBLOG_VERSION}});
  return family;
}

}  // namespace

Metrics::Metrics(size_t max_run_series)
    : flush_duration_(FlushBuckets()), flush_call_duration_(FlushBuckets()),
      runs_(max_run_series) {}

size_t Metrics::CodeIndex(absl::StatusCode code) {
  const auto index = static_cast<size_t>(code);
  return index < kNumCodes ? index : static_cast<size_t>(absl::StatusCode::kUnknown);
}

void Metrics::AddReceived(const v1::Record& record) {
  const auto kind = static_cast<size_t>(KindOf(record));
  Add(records_received_[kind], 1);
  Add(points_received_[kind], PointsOf(record));
}

void Metrics::AddWritten(const v1::Record& record) {
  const auto kind = static_cast<size_t>(KindOf(record));
  Add(records_written_[kind], 1);
  Add(points_written_[kind], PointsOf(record));
}

void Metrics::AddRejected(std::string_view run_id, absl::StatusCode code) {
  Add(rejected_[CodeIndex(code)], 1);
  runs_.AddRejected(run_id, code);
}

void Metrics::AddStreamDropped(absl::StatusCode code) { Add(streams_dropped_[CodeIndex(code)], 1); }

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

void Metrics::AddFamilies(FamilySource append) { family_sources_.push_back(std::move(append)); }

std::vector<MetricFamily> Metrics::Collect() const {
  std::vector<MetricFamily> families;
  families.push_back(BuildInfo());
  families.push_back(CounterByKind("tblogd_records_received_total",
                                   "Records accepted from clients, by kind.", records_received_));
  families.push_back(CounterByKind(
      "tblogd_points_received_total",
      "Data points accepted from clients (one value of one tag at one step; a scalar column "
      "of N entries is N), by kind.",
      points_received_));
  families.push_back(CounterByKind("tblogd_records_written_total",
                                   "Records written to event files, by kind.", records_written_));
  families.push_back(CounterByKind("tblogd_points_written_total",
                                   "Data points written to event files, by kind.",
                                   points_written_));
  families.push_back(CounterByReason("tblogd_records_rejected_total",
                                     "Records answered with an error, by reason (gRPC status code).",
                                     rejected_));
  families.push_back(CounterByReason(
      "tblogd_streams_dropped_total",
      "Write streams ended with an error (not the daemon's shutdown), by reason.",
      streams_dropped_));
  struct Counter {
    const char* name;
    const char* help;
    const std::atomic<uint64_t>& value;
  };
  const Counter counters[] = {
      {"tblogd_received_bytes_total", "Bytes of write requests accepted.", bytes_received},
      {"tblogd_event_file_written_bytes_total", "Event file bytes handed to the OS.",
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
  };
  for (const Counter& counter : counters) {
    families.push_back(MakeFamily(counter.name, counter.help, MetricType::Counter));
    AddSample(families.back(),
              static_cast<double>(counter.value.load(std::memory_order_relaxed)));
  }
  families.push_back(HistogramFamily(
      "tblogd_flush_duration_seconds",
      "Run flushes: buffered events to the OS, fsync per --fsync, checkpoint.", flush_duration_));
  families.push_back(HistogramFamily("tblogd_flush_call_duration_seconds",
                                     "Flush calls, from arrival to answer.", flush_call_duration_));
  for (const GaugeSource& gauge : gauges_) {
    families.push_back(MakeFamily(gauge.name, gauge.help, MetricType::Gauge));
    AddSample(families.back(), static_cast<double>(gauge.read()));
  }
  for (const FamilySource& append : family_sources_) append(&families);
  runs_.AppendTo(&families);
  reduce.AppendTo(&families);
  AppendProcessFamilies(&families);
  return families;
}

std::string Metrics::RenderPrometheus() const {
  return prometheus::TextSerializer().Serialize(Collect());
}

}  // namespace tblog::daemon
