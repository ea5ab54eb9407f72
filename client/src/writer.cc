// tblog::Writer, the facade of the C++ client: each record method checks its
// inputs, builds a v1::Record (or, for scalar(), hands the point straight to
// the column builder) and appends it to the RecordStream, the engine that
// batches, sends, acknowledges and resends (record_stream.h).
//
// Threads: the record methods run on the caller's thread and do the protobuf
// work (copying tensor data, ByteSizeLong) before RecordStream takes its lock,
// so concurrent callers serialize only on the append. Writer::Impl is the
// RecordStream under the pimpl name client.h declares.
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/dtype.h"
#include "base/status_util.h"
#include "record_size.h"
#include "record_stream.h"
#include "tblog/client.h"

namespace tblog {
namespace {

double NowSeconds() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// The size of one element of `dtype`; INVALID_ARGUMENT for a dtype without one.
absl::StatusOr<size_t> DTypeSize(v1::DType dtype) {
  const size_t size = ElementSizeOfDataType(static_cast<int>(dtype));
  if (size == 0) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported dtype ", static_cast<int>(dtype)));
  }
  return size;
}

// The number of elements of a tensor of `shape`: INVALID_ARGUMENT for a
// negative dimension, or a product that does not fit in memory (no tensor
// of that many elements could be given or filled anyway).
absl::StatusOr<int64_t> ElementsOf(const std::vector<int64_t>& shape) {
  int64_t product = 1;
  for (int64_t dim : shape) {
    if (dim < 0) return absl::InvalidArgumentError(absl::StrCat("negative dimension ", dim));
    if (dim != 0 && product > (int64_t{1} << 48) / dim) {
      return absl::InvalidArgumentError(absl::StrCat("shape of more than 2^48 elements"));
    }
    product *= dim;
  }
  return product;
}

// Fills `tensor` with a copy of `data`; checks that data holds whole
// elements, and product(shape) of them when a shape is given. The copy goes
// into `buffer` when given (a spare one, see RecordStream::TakeSpareBuffer),
// which the tensor then owns: no allocation when its capacity suffices.
// With a `ring` that takes it, the copy goes into a slice of the shared
// memory instead (shm_ring.h), with the values' range when `with_range`.
absl::Status FillTensor(v1::DType dtype, std::span<const std::byte> data,
                        const std::vector<int64_t>* shape, v1::Tensor* tensor,
                        std::string* buffer = nullptr, ShmRing* ring = nullptr,
                        bool wait_for_room = false, bool with_range = false) {
  absl::StatusOr<size_t> size = DTypeSize(dtype);
  if (!size.ok()) return size.status();
  const size_t element_size = *size;
  if (data.size() % element_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(data.size(), " bytes is not a whole number of ",
                                                   element_size, "-byte elements"));
  }
  const auto elements = static_cast<int64_t>(data.size() / element_size);
  if (shape != nullptr) {
    absl::StatusOr<int64_t> product = ElementsOf(*shape);
    if (!product.ok()) return product.status();
    if (*product != elements) {
      return absl::InvalidArgumentError(absl::StrCat("shape holds ", *product, " elements but ",
                                                     elements, " were given"));
    }
    tensor->mutable_shape()->Assign(shape->begin(), shape->end());
  } else {
    tensor->add_shape(elements);
  }
  tensor->set_dtype(dtype);
  if (ring != nullptr && ring->CopyIn(data, tensor, wait_for_room, with_range)) {
    return absl::OkStatus();
  }
  if (buffer != nullptr) {
    buffer->assign(reinterpret_cast<const char*>(data.data()), data.size());
    tensor->set_data(std::move(*buffer));  // moved in: no second copy
  } else {
    tensor->set_data(reinterpret_cast<const char*>(data.data()), data.size());
  }
  return absl::OkStatus();
}

v1::Record BaseRecord(std::string_view tag, int64_t step, const RecordOptions& at) {
  v1::Record record;
  record.set_tag(std::string(tag));
  record.set_step(step);
  record.set_wall_time(at.wall_time != 0 ? at.wall_time : NowSeconds());
  if (!at.subrun.empty()) record.set_subrun(std::string(at.subrun));
  return record;
}

void SetReduce(const ReduceOptions& options, v1::Record& record) {
  v1::Reduce* reduce = record.mutable_reduce();
  reduce->set_op(options.op);
  reduce->set_weight(options.weight);
  reduce->set_group_size(options.group_size);
  reduce->set_keep_contributions(options.keep_contributions);
}

// A histogram record without its values.
v1::Record HistogramRecord(std::string_view tag, int64_t step, const HistogramOptions& options,
                           const RecordOptions& at) {
  v1::Record record = BaseRecord(tag, step, at);
  v1::Histogram* histogram = record.mutable_histogram();
  histogram->set_layout(options.layout);
  histogram->set_bucket_count(options.bucket_count);
  if (options.reduce.op != v1::REDUCE_OP_UNSPECIFIED) SetReduce(options.reduce, record);
  return record;
}

// "tag '<tag>': <message>", for errors of a record's inputs.
absl::Status WithTag(const absl::Status& status, std::string_view tag) {
  return Annotate(status, absl::StrCat("tag '", Sv(tag), "'"));
}

}  // namespace

// ---------------------------------------------------------------------------
// Options helpers

std::string DefaultTarget() {
  const char* address = std::getenv("TBLOG_ADDRESS");
  return address != nullptr && *address != '\0' ? std::string(address) : "127.0.0.1:6066";
}

uint32_t WorldSizeFromEnvironment() {
  const char* text = std::getenv("WORLD_SIZE");
  if (text == nullptr || *text == '\0') return 0;
  char* end = nullptr;
  const unsigned long value = std::strtoul(text, &end, 10);
  return *end == '\0' && value > 0 && value <= UINT32_MAX ? static_cast<uint32_t>(value) : 0;
}

std::string DefaultShmSocket() {
  const char* path = std::getenv("TBLOG_SHM_SOCKET");
  return path != nullptr ? std::string(path) : std::string();
}

v1::HParamValue HParamValue::ToProto() const {
  v1::HParamValue proto;
  if (const auto* number = std::get_if<double>(&value_)) proto.set_number(*number);
  if (const auto* flag = std::get_if<bool>(&value_)) proto.set_flag(*flag);
  if (const auto* text = std::get_if<std::string>(&value_)) proto.set_text(*text);
  return proto;
}

v1::HParams HParams::ToProto() const {
  v1::HParams proto;
  for (const auto& [name, value] : values) (*proto.mutable_values())[name] = value.ToProto();
  for (const HParamMetric& metric : metrics) {
    v1::MetricSpec* spec = proto.add_metrics();
    spec->set_tag(metric.tag);
    spec->set_subrun(metric.subrun);
  }
  proto.set_torch_style(torch_style);
  return proto;
}

// The engine, under the name client.h gives the Writer's pimpl.
class Writer::Impl final : public RecordStream {
 public:
  using RecordStream::RecordStream;
};

// ---------------------------------------------------------------------------
// Writer

Writer::Writer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Writer::~Writer() {
  if (impl_ != nullptr) (void)impl_->Close(v1::SESSION_STATUS_SUCCESS);  // errors: see status()
}

absl::StatusOr<std::unique_ptr<Writer>> Writer::Open(WriterOptions options) {
  if (options.max_batch_bytes == 0 || options.max_buffer_bytes == 0) {
    return absl::InvalidArgumentError("max_batch_bytes and max_buffer_bytes must be positive");
  }
  if (options.open_in_background) {  // the sender retries every transient failure itself
    auto impl = std::make_unique<Impl>(std::move(options));
    if (absl::Status started = impl->Start(); !started.ok()) return started;
    return std::unique_ptr<Writer>(new Writer(std::move(impl)));
  }
  // The first OpenRun, tried again while the daemon is away (WriterOptions::
  // open_timeout). Each try is a fresh engine: its sender exits after a
  // failed first open, and a fresh channel connects as soon as the daemon
  // listens (an old one waits out gRPC's own reconnect backoff).
  const absl::Time deadline = absl::Now() + options.open_timeout;
  absl::Duration backoff = options.initial_backoff;
  std::mt19937_64 jitter_source(std::random_device{}());
  for (int tries = 1;; ++tries) {
    auto impl = std::make_unique<Impl>(options);
    absl::Status started = impl->Start();
    if (started.ok()) return std::unique_ptr<Writer>(new Writer(std::move(impl)));
    if (!absl::IsUnavailable(started) && !absl::IsDeadlineExceeded(started)) return started;
    // Every try under one writer id: a try whose answer was lost may have
    // taken a hold on the run; the next one is then the same holder.
    options.writer_id = impl->writer_id();
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::Status(started.code(),
                          absl::StrCat("tblogd at ", options.target, " did not open the run within ",
                                       "open_timeout=", absl::FormatDuration(options.open_timeout),
                                       " (", tries, tries == 1 ? " try" : " tries",
                                       "); the last: ", started.message()));
    }
    // A wait in [backoff/2, backoff], as the sender's reconnects: ranks that
    // all start before their daemon do not all come back in the same
    // millisecond.
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    absl::SleepFor(std::min(backoff * jitter(jitter_source), deadline - now));
    backoff = std::min(backoff * 2, options.max_backoff);
  }
}

absl::Status Writer::Append(v1::Record record) {
  const size_t bytes = record.ByteSizeLong();
  // A refused record gives its slice back (a copy without the payload,
  // which is in the ring).
  std::optional<v1::Record> sliced;
  if (ShmRing::NamesSlice(record)) sliced = record;
  // Refused here, since the daemon would refuse it at every resend.
  absl::Status added = CheckRecordSize(record, bytes, impl_->max_record_bytes());
  if (!added.ok() && ShmRing::SliceTensorOf(record) != nullptr) {
    // A tensor in the ring counts only its slice's name: this one is bytes.
    added = absl::InvalidArgumentError(absl::StrCat(
        added.message(), "; it could not go through shared memory: ", impl_->ShmMissReason()));
  }
  if (added.ok()) added = impl_->AddRecord(std::move(record), bytes);
  if (!added.ok() && sliced) impl_->shm_ring()->Release(*sliced);
  return added;
}

absl::Status Writer::scalar(std::string_view tag, int64_t step, float value,
                            const RecordOptions& at) {
  return impl_->AddScalar(tag, at.subrun, step, value,
                          at.wall_time != 0 ? at.wall_time : NowSeconds());
}

absl::Status Writer::scalar(std::string_view tag, int64_t step, float value,
                            const ReduceOptions& reduce, const RecordOptions& at) {
  v1::Record record = BaseRecord(tag, step, at);
  record.mutable_scalar()->set_value(value);
  record.mutable_scalar()->set_style(impl_->scalar_style());
  SetReduce(reduce, record);
  return Append(std::move(record));
}

absl::Status Writer::scalars(std::string_view main_tag, int64_t step,
                             const std::map<std::string, float>& values, const RecordOptions& at) {
  // PyTorch: <log_dir>/<main_tag with "/" replaced by "_">_<tag>, tag main_tag.
  std::string prefix = at.subrun.empty() ? std::string() : absl::StrCat(Sv(at.subrun), "/");
  for (char c : main_tag) prefix.push_back(c == '/' ? '_' : c);
  prefix.push_back('_');
  const double wall_time = at.wall_time != 0 ? at.wall_time : NowSeconds();
  for (const auto& [tag, value] : values) {
    const std::string subrun = prefix + tag;
    if (absl::Status added = impl_->AddScalar(main_tag, subrun, step, value, wall_time);
        !added.ok()) {
      return added;
    }
  }
  return absl::OkStatus();
}

absl::Status Writer::histogram(std::string_view tag, int64_t step, v1::DType dtype,
                               std::span<const std::byte> data, const HistogramOptions& options,
                               const RecordOptions& at) {
  v1::Record record = HistogramRecord(tag, step, options, at);
  ShmRing* ring = impl_->ShmRingFor(data.size());
  std::string buffer = ring != nullptr ? std::string() : impl_->TakeSpareBuffer(data.size());
  v1::Tensor* values = record.mutable_histogram()->mutable_values();
  // A uniform histogram's range spares the daemon a pass (ShmSlice.range).
  if (absl::Status filled =
          FillTensor(dtype, data, nullptr, values, &buffer, ring, impl_->shm_waits_for_room(),
                     options.layout == v1::HISTOGRAM_LAYOUT_UNIFORM);
      !filled.ok()) {
    return WithTag(filled, tag);
  }
  return Append(std::move(record));
}

TensorSlot Writer::SlotFor(v1::Record record, size_t bytes) {
  TensorSlot slot;
  slot.record_ = std::move(record);
  slot.bytes_ = bytes;
  slot.valid_ = true;
  if (ShmRing* ring = impl_->ShmRingFor(bytes); ring != nullptr) {
    std::optional<ShmRing::Slice> taken = ring->Take(bytes, impl_->shm_waits_for_room());
    if (taken) {
      slot.ring_ = ring;
      slot.offset_ = taken->offset;
      slot.ring_data_ = taken->data;
      return slot;
    }
  }
  slot.heap_ = impl_->TakeSpareBuffer(bytes);
  slot.heap_.resize(bytes);
  return slot;
}

absl::StatusOr<TensorSlot> Writer::histogram_slot(std::string_view tag, int64_t step,
                                                  v1::DType dtype, size_t count,
                                                  const HistogramOptions& options,
                                                  const RecordOptions& at) {
  absl::StatusOr<size_t> element_size = DTypeSize(dtype);
  if (!element_size.ok()) return WithTag(element_size.status(), tag);
  v1::Record record = HistogramRecord(tag, step, options, at);
  v1::Tensor* values = record.mutable_histogram()->mutable_values();
  values->set_dtype(dtype);
  values->add_shape(static_cast<int64_t>(count));
  return SlotFor(std::move(record), count * *element_size);
}

absl::StatusOr<TensorSlot> Writer::image_slot(std::string_view tag, int64_t step, v1::DType dtype,
                                              const std::vector<int64_t>& shape,
                                              const ImageOptions& options,
                                              const RecordOptions& at) {
  absl::StatusOr<size_t> element_size = DTypeSize(dtype);
  if (!element_size.ok()) return WithTag(element_size.status(), tag);
  absl::StatusOr<int64_t> elements = ElementsOf(shape);
  if (!elements.ok()) return WithTag(elements.status(), tag);
  v1::Record record = BaseRecord(tag, step, at);
  v1::Image* image = record.mutable_image();
  image->set_layout(options.layout);
  image->set_style(options.style);
  image->set_max_outputs(options.max_outputs);
  v1::Tensor* pixels = image->mutable_pixels();
  pixels->set_dtype(dtype);
  pixels->mutable_shape()->Assign(shape.begin(), shape.end());
  return SlotFor(std::move(record), static_cast<size_t>(*elements) * *element_size);
}

absl::StatusOr<TensorSlot> Writer::embedding_slot(std::string_view tag, int64_t step, int64_t rows,
                                                  int64_t cols, std::vector<std::string> metadata,
                                                  std::vector<std::string> metadata_header,
                                                  const RecordOptions& at) {
  const std::vector<int64_t> shape = {rows, cols};
  absl::StatusOr<int64_t> elements = ElementsOf(shape);
  if (!elements.ok()) return WithTag(elements.status(), tag);
  v1::Record record = BaseRecord(tag, step, at);
  v1::Embedding* embedding = record.mutable_embedding();
  v1::Tensor* matrix = embedding->mutable_matrix();
  matrix->set_dtype(v1::DTYPE_FLOAT32);
  matrix->mutable_shape()->Assign(shape.begin(), shape.end());
  for (std::string& label : metadata) embedding->add_metadata(std::move(label));
  for (std::string& column : metadata_header) embedding->add_metadata_header(std::move(column));
  return SlotFor(std::move(record), static_cast<size_t>(*elements) * sizeof(float));
}

absl::Status Writer::submit(TensorSlot slot) {
  if (!slot.valid_) {
    return absl::FailedPreconditionError("submit: the slot was submitted already or moved from");
  }
  v1::Tensor* tensor = ShmRing::SliceTensorOf(slot.record_);  // set by SlotFor's callers
  if (slot.ring_ != nullptr) {
    slot.ring_->Point(ShmRing::Slice{slot.offset_, slot.ring_data_}, slot.bytes_, tensor);
    slot.ring_ = nullptr;  // the record holds the slice now (Append frees it if refused)
  } else {
    tensor->set_data(std::move(slot.heap_));
  }
  slot.valid_ = false;
  return Append(std::move(slot.record_));
}

absl::Status Writer::image(std::string_view tag, int64_t step, v1::DType dtype,
                           std::span<const std::byte> data, const std::vector<int64_t>& shape,
                           const ImageOptions& options, const RecordOptions& at) {
  v1::Record record = BaseRecord(tag, step, at);
  v1::Image* image = record.mutable_image();
  image->set_layout(options.layout);
  image->set_style(options.style);
  image->set_max_outputs(options.max_outputs);
  ShmRing* ring = impl_->ShmRingFor(data.size());
  std::string buffer = ring != nullptr ? std::string() : impl_->TakeSpareBuffer(data.size());
  if (absl::Status filled = FillTensor(dtype, data, &shape, image->mutable_pixels(), &buffer, ring,
                                       impl_->shm_waits_for_room());
      !filled.ok()) {
    return WithTag(filled, tag);
  }
  return Append(std::move(record));
}

absl::Status Writer::image_encoded(std::string_view tag, int64_t step, std::string_view encoded,
                                   const ImageOptions& options, const RecordOptions& at) {
  v1::Record record = BaseRecord(tag, step, at);
  v1::Image* image = record.mutable_image();
  image->set_encoded(std::string(encoded));
  image->set_style(options.style);
  image->set_max_outputs(options.max_outputs);
  return Append(std::move(record));
}

absl::Status Writer::text(std::string_view tag, int64_t step, std::string_view markdown,
                          const TextOptions& options, const RecordOptions& at) {
  v1::Record record = BaseRecord(tag, step, at);
  record.mutable_text()->set_markdown(std::string(markdown));
  record.mutable_text()->set_torch_style(options.torch_style);
  return Append(std::move(record));
}

absl::Status Writer::audio(std::string_view tag, int64_t step, std::span<const float> samples,
                           float sample_rate, int64_t channels, const AudioOptions& options,
                           const RecordOptions& at) {
  if (channels <= 0 || samples.size() % static_cast<size_t>(channels) != 0) {
    return WithTag(absl::InvalidArgumentError(absl::StrCat(
                       samples.size(), " samples are not whole frames of ", channels, " channels")),
                   tag);
  }
  v1::Record record = BaseRecord(tag, step, at);
  v1::Audio* audio = record.mutable_audio();
  audio->set_sample_rate(sample_rate);
  audio->set_torch_style(options.torch_style);
  std::vector<int64_t> shape = {static_cast<int64_t>(samples.size()) / channels};
  if (channels > 1) shape.push_back(channels);
  if (absl::Status filled = FillTensor(v1::DTYPE_FLOAT32, std::as_bytes(samples), &shape,
                                       audio->mutable_samples());
      !filled.ok()) {
    return WithTag(filled, tag);
  }
  return Append(std::move(record));
}

absl::Status Writer::pr_curve(std::string_view tag, int64_t step, v1::DType labels_dtype,
                              std::span<const std::byte> labels, v1::DType predictions_dtype,
                              std::span<const std::byte> predictions, uint32_t num_thresholds,
                              const RecordOptions& at) {
  v1::Record record = BaseRecord(tag, step, at);
  v1::PrPredictions* inputs = record.mutable_pr_curve()->mutable_predictions();
  inputs->set_num_thresholds(num_thresholds);
  if (absl::Status filled = FillTensor(labels_dtype, labels, nullptr, inputs->mutable_labels());
      !filled.ok()) {
    return WithTag(filled, tag);
  }
  if (absl::Status filled =
          FillTensor(predictions_dtype, predictions, nullptr, inputs->mutable_predictions());
      !filled.ok()) {
    return WithTag(filled, tag);
  }
  if (inputs->labels().shape(0) != inputs->predictions().shape(0)) {
    return WithTag(absl::InvalidArgumentError(absl::StrCat(
                       inputs->labels().shape(0), " labels but ", inputs->predictions().shape(0),
                       " predictions")),
                   tag);
  }
  return Append(std::move(record));
}

absl::Status Writer::pr_curve(std::string_view tag, int64_t step, const v1::PrCounts& counts,
                              const RecordOptions& at) {
  v1::Record record = BaseRecord(tag, step, at);
  *record.mutable_pr_curve()->mutable_counts() = counts;
  return Append(std::move(record));
}

absl::Status Writer::hparams(const HParams& hparams, const RecordOptions& at) {
  v1::Record record = BaseRecord("", 0, at);
  *record.mutable_hparams() = hparams.ToProto();
  return Append(std::move(record));
}

absl::Status Writer::graph_def(std::string_view serialized_graph_def, const RecordOptions& at) {
  v1::Record record = BaseRecord("", 0, at);
  record.mutable_graph()->set_graph_def(std::string(serialized_graph_def));
  return Append(std::move(record));
}

absl::Status Writer::graph(const v1::NodeList& nodes, const RecordOptions& at) {
  v1::Record record = BaseRecord("", 0, at);
  *record.mutable_graph()->mutable_nodes() = nodes;
  return Append(std::move(record));
}

absl::Status Writer::embedding(std::string_view tag, int64_t step, std::span<const float> matrix,
                               int64_t rows, int64_t cols, std::vector<std::string> metadata,
                               std::vector<std::string> metadata_header, const RecordOptions& at) {
  v1::Record record = BaseRecord(tag, step, at);
  v1::Embedding* embedding = record.mutable_embedding();
  const std::vector<int64_t> shape = {rows, cols};
  if (absl::Status filled =
          FillTensor(v1::DTYPE_FLOAT32, std::as_bytes(matrix), &shape, embedding->mutable_matrix(),
                     nullptr, impl_->ShmRingFor(matrix.size() * sizeof(float)),
                     impl_->shm_waits_for_room());
      !filled.ok()) {
    return WithTag(filled, tag);
  }
  for (std::string& label : metadata) embedding->add_metadata(std::move(label));
  for (std::string& column : metadata_header) embedding->add_metadata_header(std::move(column));
  return Append(std::move(record));
}

absl::Status Writer::custom_scalars(const v1::CustomScalarLayout& layout,
                                    const RecordOptions& at) {
  v1::Record record = BaseRecord("", 0, at);
  *record.mutable_custom_scalars() = layout;
  return Append(std::move(record));
}

absl::Status Writer::record(v1::Record record) {
  if (record.wall_time() == 0) record.set_wall_time(NowSeconds());
  return Append(std::move(record));
}

absl::Status Writer::flush(bool sync) { return impl_->Flush(sync); }
absl::Status Writer::close(v1::SessionStatus status) { return impl_->Close(status); }
absl::Status Writer::status() const { return impl_->status(); }
WriterStats Writer::stats() const { return impl_->stats(); }
std::string Writer::run_id() const { return impl_->run_id(); }
std::string Writer::run_path() const { return impl_->run_path(); }
const std::string& Writer::writer_id() const { return impl_->writer_id(); }

}  // namespace tblog
