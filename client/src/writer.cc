// Writer: the training thread appends to a BatchBuilder under a mutex; one
// sender thread owns the connection (OpenRun, the Write stream, reconnects,
// CloseRun) and a reader thread per stream applies the daemon's acks.
//
// Sequence numbers are assigned when a batch is sealed. A sealed batch stays
// in `unacked_` until acknowledged; after a reconnect everything after the
// acknowledged sequence is sent again, and the daemon drops what it already
// wrote. Flush is a sealed batch carrying FLUSH_MODE, so it is ordered with
// the data.
#include <grpcpp/grpcpp.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/dtype.h"
#include "base/sync.h"
#include "batch_builder.h"
#include "tblog/client.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog {
namespace {

// Debian's abseil has its own string_view: convert before StrCat / Status.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

double NowSeconds() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

absl::Status FromGrpc(const grpc::Status& status, std::string_view context) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(Sv(context), ": ", status.error_message()));
}

// Errors that a later attempt may not see: the daemon is restarting, the
// network broke, the run was closed by someone else (a resume reopens it).
bool IsRetryable(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

std::string RandomWriterId() {
  std::random_device device;
  std::mt19937_64 generator((uint64_t{device()} << 32) ^ device());
  return absl::StrCat(absl::Hex(generator(), absl::kZeroPad16),
                      absl::Hex(generator(), absl::kZeroPad16));
}

size_t DTypeSize(v1::DType dtype) { return ElementSizeOfDataType(static_cast<int>(dtype)); }

// Fills `tensor` with a copy of `data`; checks that data holds whole
// elements, and product(shape) of them when a shape is given. The copy goes
// into `buffer` when given (a spare one, see Writer::Impl::TakeSpareBuffer),
// which the tensor then owns: no allocation when its capacity suffices.
absl::Status FillTensor(v1::DType dtype, std::span<const std::byte> data,
                        const std::vector<int64_t>* shape, v1::Tensor* tensor,
                        std::string* buffer = nullptr) {
  const size_t element_size = DTypeSize(dtype);
  if (element_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported dtype ", static_cast<int>(dtype)));
  }
  if (data.size() % element_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(data.size(), " bytes is not a whole number of ",
                                                   element_size, "-byte elements"));
  }
  const auto elements = static_cast<int64_t>(data.size() / element_size);
  if (shape != nullptr) {
    int64_t product = 1;
    for (int64_t dim : *shape) {
      if (dim < 0) return absl::InvalidArgumentError(absl::StrCat("negative dimension ", dim));
      product *= dim;
    }
    if (product != elements) {
      return absl::InvalidArgumentError(absl::StrCat("shape holds ", product, " elements but ",
                                                     elements, " were given"));
    }
    tensor->mutable_shape()->Assign(shape->begin(), shape->end());
  } else {
    tensor->add_shape(elements);
  }
  tensor->set_dtype(dtype);
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

absl::Status WithTag(const absl::Status& status, std::string_view tag) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat("tag '", Sv(tag), "': ", status.message()));
}

}  // namespace

// ---------------------------------------------------------------------------
// Options helpers

std::string DefaultTarget() {
  const char* address = std::getenv("TBLOG_ADDRESS");
  return address != nullptr && *address != '\0' ? std::string(address) : "127.0.0.1:6066";
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

// ---------------------------------------------------------------------------
// Impl

class Writer::Impl {
 public:
  explicit Impl(WriterOptions options)
      : options_(std::move(options)),
        writer_id_(options_.writer_id.empty() ? RandomWriterId() : options_.writer_id),
        builder_(options_.scalar_style) {
    NewChannel();
  }
  ~Impl() {
    if (sender_.joinable()) (void)Close(v1::SESSION_STATUS_SUCCESS);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Starts the sender; unless open_in_background, waits for the first
  // OpenRun and returns its error.
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status AddScalar(std::string_view tag, std::string_view subrun, int64_t step, float value,
                         double wall_time) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status AddRecord(v1::Record&& record, size_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Flush(bool sync) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Close(v1::SessionStatus status) ABSL_LOCKS_EXCLUDED(mu_);
  // A buffer of at least `bytes` capacity from the tensors of acknowledged
  // batches, or an empty string when none is spare: a training loop that logs
  // a large tensor every step copies it into warm memory, not fresh pages.
  std::string TakeSpareBuffer(size_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  absl::Status status() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return error_;
  }
  WriterStats stats() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    WriterStats copy = stats_;
    copy.buffered_bytes = BufferedBytesLocked();
    return copy;
  }
  std::string run_id() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return run_id_;
  }
  std::string run_path() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return run_path_;
  }
  const std::string& writer_id() const { return writer_id_; }

 private:
  // A sealed batch. The request is shared so the sender can write it without
  // the lock while the reader may acknowledge (drop) it.
  struct SealedBatch {
    uint64_t sequence;
    std::shared_ptr<v1::WriteRequest> request;
    size_t bytes;
    size_t records;
  };
  enum class StreamEnd { kBroken, kDrained, kAborted };

  size_t BufferedBytesLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return builder_.bytes() + unacked_bytes_;
  }
  // Waits (kBlock) or refuses (kDropNewest) until `bytes` more fit.
  absl::Status ReserveLocked(size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Seals the open batch (possibly empty) with the next sequence number.
  uint64_t SealLocked(v1::FlushMode flush) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AfterAppendLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AckThroughLocked(uint64_t sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps the tensor data of an acknowledged batch for TakeSpareBuffer,
  // within kMaxSpareBuffers and max_buffer_bytes / 4.
  void ReclaimBuffersLocked(v1::WriteRequest& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleResponseLocked(const v1::WriteResponse& response) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetFatalLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds `base` to every sequence number, sent batches having none yet.
  void RebaseLocked(uint64_t base) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasUnsentLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !unacked_.empty() && unacked_.back().sequence > sent_through_;
  }
  bool NothingPendingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return builder_.empty() && unacked_.empty();
  }

  // A fresh channel (sender thread only). Our backoff decides when to retry:
  // a channel that failed keeps failing fast for its own backoff period
  // (seconds) after the daemon is back, so each attempt after a failure
  // starts on a new channel with its own subchannel.
  void NewChannel();
  void SenderLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // OpenRun (a resume after the first time), then the Flush RPC that
  // completes flushes the daemon already had the batches of.
  absl::Status Connect() ABSL_LOCKS_EXCLUDED(mu_);
  StreamEnd RunStream() ABSL_LOCKS_EXCLUDED(mu_);
  void ReadLoop(grpc::ClientReaderWriter<v1::WriteRequest, v1::WriteResponse>* stream)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status CloseRun() ABSL_LOCKS_EXCLUDED(mu_);
  // Registers the context of a blocking call so an abort can cancel it.
  void SetActiveCall(grpc::ClientContext* context) ABSL_LOCKS_EXCLUDED(mu_);
  // Wakes the sender's wait in RunStream; called after a change that may make
  // it ready (a sealed batch, close, abort, a fatal error, a broken stream,
  // the last ack while closing). May be called with mu_ held.
  void WakeSender() ABSL_LOCKS_EXCLUDED(wake_mu_);
  // The sender's wait: until WakeSender() or `deadline`. Called without mu_.
  void WaitForWake(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_, wake_mu_);

  const WriterOptions options_;
  const std::string writer_id_;
  std::unique_ptr<v1::TBLog::Stub> stub_;
  std::thread sender_;

  mutable Mutex mu_;
  BatchBuilder builder_ ABSL_GUARDED_BY(mu_);
  absl::Time batch_started_ ABSL_GUARDED_BY(mu_);
  std::deque<SealedBatch> unacked_ ABSL_GUARDED_BY(mu_);
  size_t unacked_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t sequence_base_ ABSL_GUARDED_BY(mu_) = 0;  // see RebaseLocked
  uint64_t sent_through_ ABSL_GUARDED_BY(mu_) = 0;     // on the current stream
  uint64_t ever_sent_through_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t durable_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t flushed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t flush_wanted_through_ ABSL_GUARDED_BY(mu_) = 0;  // highest sequence a flush() waits on
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* active_call_ ABSL_GUARDED_BY(mu_) = nullptr;

  std::string run_id_ ABSL_GUARDED_BY(mu_);
  std::string run_path_ ABSL_GUARDED_BY(mu_);
  bool first_open_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status first_open_status_ ABSL_GUARDED_BY(mu_);

  absl::Status error_ ABSL_GUARDED_BY(mu_);  // the first error reported
  bool fatal_ ABSL_GUARDED_BY(mu_) = false;  // error_ ends the writer
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool abort_ ABSL_GUARDED_BY(mu_) = false;  // close_timeout passed: give up
  bool sender_done_ ABSL_GUARDED_BY(mu_) = false;
  v1::SessionStatus close_status_ ABSL_GUARDED_BY(mu_) = v1::SESSION_STATUS_SUCCESS;
  absl::Status close_result_ ABSL_GUARDED_BY(mu_);
  WriterStats stats_ ABSL_GUARDED_BY(mu_);
  // Spare tensor buffers (see TakeSpareBuffer): held beyond max_buffer_bytes,
  // at most a quarter of it.
  static constexpr size_t kMaxSpareBuffers = 4;
  static constexpr size_t kMinSpareBufferBytes = size_t{64} << 10;
  std::vector<std::string> spare_buffers_ ABSL_GUARDED_BY(mu_);
  size_t spare_bytes_ ABSL_GUARDED_BY(mu_) = 0;

  // The sender's wake-up flag (see WaitForWake), set after the state change.
  Mutex wake_mu_ ABSL_ACQUIRED_AFTER(mu_);
  bool wake_ ABSL_GUARDED_BY(wake_mu_) = false;
};

absl::Status Writer::Impl::Start() {
  sender_ = std::thread([this] { SenderLoop(); });
  if (options_.open_in_background) return absl::OkStatus();
  absl::Status status;
  {
    MutexLock lock(&mu_);
    mu_.Await(Condition(&first_open_done_));
    status = first_open_status_;
  }
  if (!status.ok()) {
    sender_.join();  // the sender exits after a failed first open
  }
  return status;
}

absl::Status Writer::Impl::ReserveLocked(size_t bytes) {
  if (closing_) return absl::FailedPreconditionError("tblog writer is closed");
  if (fatal_) return error_;
  if (bytes > options_.max_buffer_bytes) {
    ++stats_.dropped;
    return absl::ResourceExhaustedError(absl::StrCat(
        "record of ", bytes, " bytes exceeds max_buffer_bytes=", options_.max_buffer_bytes));
  }
  if (BufferedBytesLocked() + bytes <= options_.max_buffer_bytes) return absl::OkStatus();
  if (options_.overflow == OverflowPolicy::kDropNewest) {
    ++stats_.dropped;
    return absl::ResourceExhaustedError(absl::StrCat(
        "tblog buffer full (max_buffer_bytes=", options_.max_buffer_bytes, "): record dropped"));
  }
  ++stats_.blocked_calls;
  auto room = [this, bytes]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closing_ || fatal_ || BufferedBytesLocked() + bytes <= options_.max_buffer_bytes;
  };
  mu_.Await(Condition(&room));
  if (closing_) {
    return absl::FailedPreconditionError("tblog writer closed while the call waited for buffer room");
  }
  if (fatal_) return error_;
  return absl::OkStatus();
}

uint64_t Writer::Impl::SealLocked(v1::FlushMode flush) {
  const size_t bytes = builder_.bytes();
  const size_t records = builder_.records();
  auto request = std::make_shared<v1::WriteRequest>(builder_.TakeBatch());
  const uint64_t sequence = next_sequence_++;
  request->set_sequence(sequence);
  request->set_flush(flush);
  unacked_.push_back(SealedBatch{sequence, std::move(request), bytes, records});
  unacked_bytes_ += bytes;
  WakeSender();
  return sequence;
}

void Writer::Impl::AfterAppendLocked() {
  ++stats_.enqueued;
  if (builder_.bytes() >= options_.max_batch_bytes) SealLocked(v1::FLUSH_MODE_NONE);
}

absl::Status Writer::Impl::AddScalar(std::string_view tag, std::string_view subrun, int64_t step,
                                     float value, double wall_time) {
  MutexLock lock(&mu_);
  if (absl::Status room = ReserveLocked(BatchBuilder::kScalarPointBytes); !room.ok()) return room;
  if (builder_.empty()) batch_started_ = absl::Now();
  builder_.AddScalar(tag, subrun, step, value, wall_time);
  AfterAppendLocked();
  return absl::OkStatus();
}

absl::Status Writer::Impl::AddRecord(v1::Record&& record, size_t bytes) {
  MutexLock lock(&mu_);
  if (absl::Status room = ReserveLocked(bytes); !room.ok()) return room;
  if (builder_.empty()) batch_started_ = absl::Now();
  builder_.AddRecord(std::move(record), bytes);
  AfterAppendLocked();
  return absl::OkStatus();
}

absl::Status Writer::Impl::Flush(bool sync) {
  MutexLock lock(&mu_);
  if (closing_) return absl::FailedPreconditionError("tblog writer is closed");
  if (fatal_) return error_;
  const uint64_t sequence = SealLocked(sync ? v1::FLUSH_MODE_SYNC : v1::FLUSH_MODE_FLUSH);
  flush_wanted_through_ = std::max(flush_wanted_through_, sequence);
  // The batch may be renumbered by the first OpenRun (RebaseLocked).
  const uint64_t unbased = sequence - sequence_base_;
  auto flushed = [this, unbased]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return flushed_ >= unbased + sequence_base_;
  };
  auto done = [this, &flushed]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return flushed() || fatal_ || sender_done_;
  };
  mu_.Await(Condition(&done));
  if (flushed()) return error_;
  if (fatal_) return error_;
  return absl::FailedPreconditionError("tblog writer closed before the flush completed");
}

absl::Status Writer::Impl::Close(v1::SessionStatus status) {
  {
    MutexLock lock(&mu_);
    if (closing_) {
      mu_.Await(Condition(&sender_done_));
      return close_result_;
    }
    closing_ = true;
    close_status_ = status;
    WakeSender();
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return sender_done_; };
    if (!mu_.AwaitWithTimeout(Condition(&done), options_.close_timeout)) {
      abort_ = true;
      WakeSender();
      if (active_call_ != nullptr) active_call_->TryCancel();
    }
  }
  if (sender_.joinable()) sender_.join();
  MutexLock lock(&mu_);
  return close_result_;
}

void Writer::Impl::SetFatalLocked(const absl::Status& status) {
  if (error_.ok()) error_ = status;
  fatal_ = true;
  ++stats_.errors;
  WakeSender();
}

void Writer::Impl::WakeSender() {
  MutexLock lock(&wake_mu_);
  wake_ = true;
}

void Writer::Impl::WaitForWake(absl::Time deadline) {
  MutexLock lock(&wake_mu_);
  wake_mu_.AwaitWithDeadline(Condition(&wake_), deadline);
  wake_ = false;
}

void Writer::Impl::AckThroughLocked(uint64_t sequence) {
  while (!unacked_.empty() && unacked_.front().sequence <= sequence) {
    unacked_bytes_ -= unacked_.front().bytes;
    stats_.acknowledged += unacked_.front().records;
    // Only when the sender no longer holds the request (it writes it unlocked).
    if (unacked_.front().request.use_count() == 1) ReclaimBuffersLocked(*unacked_.front().request);
    unacked_.pop_front();
  }
  if (closing_ && unacked_.empty()) WakeSender();  // close() waits for the last ack
}

void Writer::Impl::ReclaimBuffersLocked(v1::WriteRequest& request) {
  for (v1::Record& record : *request.mutable_records()) {
    v1::Tensor* tensor = nullptr;
    if (record.has_histogram()) {
      tensor = record.mutable_histogram()->mutable_values();
    } else if (record.has_image() && record.image().has_pixels()) {
      tensor = record.mutable_image()->mutable_pixels();
    }
    if (tensor == nullptr) continue;
    const size_t capacity = tensor->data().capacity();
    if (capacity < kMinSpareBufferBytes || spare_buffers_.size() >= kMaxSpareBuffers ||
        spare_bytes_ + capacity > options_.max_buffer_bytes / 4) {
      continue;
    }
    spare_bytes_ += capacity;
    spare_buffers_.push_back(std::move(*tensor->mutable_data()));
  }
}

std::string Writer::Impl::TakeSpareBuffer(size_t bytes) {
  if (bytes < kMinSpareBufferBytes) return {};
  MutexLock lock(&mu_);
  // The smallest that fits, so a small tensor does not take a large buffer.
  auto best = spare_buffers_.end();
  for (auto it = spare_buffers_.begin(); it != spare_buffers_.end(); ++it) {
    if (it->capacity() >= bytes && (best == spare_buffers_.end() || it->capacity() < best->capacity())) {
      best = it;
    }
  }
  if (best == spare_buffers_.end()) return {};
  std::string buffer = std::move(*best);
  spare_bytes_ -= buffer.capacity();
  spare_buffers_.erase(best);
  return buffer;
}

void Writer::Impl::HandleResponseLocked(const v1::WriteResponse& response) {
  written_ = std::max(written_, response.written_sequence());
  durable_ = std::max(durable_, response.durable_sequence());
  flushed_ = std::max(flushed_, response.flushed_sequence());
  for (const v1::RecordError& record_error : response.errors()) {
    ++stats_.errors;
    if (error_.ok()) {
      error_ = absl::Status(
          static_cast<absl::StatusCode>(record_error.code()),
          absl::StrCat("tblogd rejected record ", record_error.index(), " of batch ",
                       record_error.sequence(), " (tag '", record_error.tag(),
                       "'): ", record_error.message()));
    }
  }
  AckThroughLocked(options_.retain_until == AckLevel::kDurable ? durable_ : written_);
}

void Writer::Impl::SetActiveCall(grpc::ClientContext* context) {
  MutexLock lock(&mu_);
  active_call_ = context;
  if (context != nullptr && abort_) context->TryCancel();
}

absl::Status Writer::Impl::Connect() {
  v1::OpenRunRequest request;
  bool first_open;
  {
    MutexLock lock(&mu_);
    first_open = run_path_.empty();
    if (first_open) {
      request.set_experiment(options_.experiment);
      request.set_name(options_.name);
      request.set_run_path(options_.run_path);
      request.set_mode(options_.mode);
      if (!options_.hparams.empty()) *request.mutable_hparams() = options_.hparams.ToProto();
    } else {
      // Same run, whatever happened to the daemon: the run_path is stable.
      request.set_run_path(run_path_);
      request.set_mode(v1::OPEN_MODE_RESUME);
    }
  }
  for (const auto& [key, value] : options_.labels) (*request.mutable_labels())[key] = value;

  v1::OpenRunResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
  SetActiveCall(&context);
  const grpc::Status open_status = stub_->OpenRun(&context, request, &response);
  SetActiveCall(nullptr);
  if (!open_status.ok()) {
    return FromGrpc(open_status, absl::StrCat(first_open ? "OpenRun" : "OpenRun (resume) ",
                                              first_open ? "" : request.run_path()));
  }

  uint64_t flush_through = 0;
  bool need_flush_rpc = false;
  {
    MutexLock lock(&mu_);
    run_id_ = response.run_id();
    run_path_ = response.run_path();
    auto it = response.writer_sequences().find(writer_id_);
    const uint64_t daemon_has = it == response.writer_sequences().end() ? 0 : it->second;
    // A writer id the run already knows (a restarted trainer that passes a
    // fixed writer_id): continue after its sequences, or the daemon would
    // drop our batches as duplicates. Nothing was sent yet, so renumbering
    // the sealed batches is safe.
    if (first_open && daemon_has > 0) RebaseLocked(daemon_has);
    written_ = std::max(written_, daemon_has);
    if (options_.retain_until == AckLevel::kWritten) AckThroughLocked(daemon_has);
    // A flush whose batch the daemon already has was perhaps never reported
    // done on the old stream: ask for it explicitly.
    flush_through = std::min(daemon_has, flush_wanted_through_);
    need_flush_rpc = flush_through > flushed_;
  }
  if (need_flush_rpc) {
    v1::FlushRequest flush;
    flush.set_run_id(response.run_id());
    flush.set_writer_id(writer_id_);
    flush.set_through_sequence(flush_through);
    flush.set_sync(true);
    v1::FlushResponse flushed;
    grpc::ClientContext flush_context;
    flush_context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
    SetActiveCall(&flush_context);
    const grpc::Status flush_status = stub_->Flush(&flush_context, flush, &flushed);
    SetActiveCall(nullptr);
    if (!flush_status.ok()) return FromGrpc(flush_status, "Flush after reconnect");
    MutexLock lock(&mu_);
    flushed_ = std::max(flushed_, flush_through);
  }
  return absl::OkStatus();
}

void Writer::Impl::RebaseLocked(uint64_t base) {
  for (SealedBatch& batch : unacked_) {
    batch.sequence += base;
    batch.request->set_sequence(batch.sequence);
  }
  next_sequence_ += base;
  if (flush_wanted_through_ > 0) flush_wanted_through_ += base;
  sequence_base_ = base;
}

void Writer::Impl::ReadLoop(
    grpc::ClientReaderWriter<v1::WriteRequest, v1::WriteResponse>* stream) {
  v1::WriteResponse response;
  while (stream->Read(&response)) {
    MutexLock lock(&mu_);
    HandleResponseLocked(response);
  }
  MutexLock lock(&mu_);
  stream_broken_ = true;
  WakeSender();
}

Writer::Impl::StreamEnd Writer::Impl::RunStream() {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WriteRequest, v1::WriteResponse>> stream =
      stub_->Write(&context);
  std::string run_id;
  {
    MutexLock lock(&mu_);
    stream_broken_ = false;
    sent_through_ = unacked_.empty() ? next_sequence_ - 1 : unacked_.front().sequence - 1;
    run_id = run_id_;
  }
  SetActiveCall(&context);
  std::thread reader([this, &stream] { ReadLoop(stream.get()); });

  StreamEnd end = StreamEnd::kBroken;
  bool first_message = true;
  std::vector<std::shared_ptr<v1::WriteRequest>> to_send;
  while (true) {
    to_send.clear();
    {
      MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return abort_ || fatal_ || stream_broken_ || HasUnsentLocked() ||
               (closing_ && (!builder_.empty() || unacked_.empty()));
      };
      // Records arriving in an empty batch do not wake the sender (that
      // would cost the training thread a wakeup per batch); it wakes at least
      // every batch_delay and seals batches that are due.
      const absl::Time wake =
          builder_.empty() ? absl::Now() + options_.batch_delay : batch_started_ + options_.batch_delay;
      // Waits on wake_mu_, not mu_: a waiter with a condition on mu_ would
      // make every unlock by a record call evaluate it (absl's slow unlock).
      while (!ready() && absl::Now() < wake) {
        mu_.Unlock();
        WaitForWake(wake);
        mu_.Lock();
      }
      if (abort_ || fatal_) {
        end = StreamEnd::kAborted;
        break;
      }
      if (stream_broken_) break;
      if (!builder_.empty() &&
          (closing_ || absl::Now() >= batch_started_ + options_.batch_delay)) {
        SealLocked(v1::FLUSH_MODE_NONE);
      }
      for (const SealedBatch& batch : unacked_) {
        if (batch.sequence <= sent_through_) continue;
        to_send.push_back(batch.request);
        if (batch.sequence > ever_sent_through_) {
          stats_.sent += batch.records;
          ever_sent_through_ = batch.sequence;
        } else {
          ++stats_.resent_batches;
        }
        sent_through_ = batch.sequence;
      }
      if (to_send.empty() && closing_ && NothingPendingLocked()) {
        end = StreamEnd::kDrained;
        break;
      }
    }
    bool write_failed = false;
    for (const auto& request : to_send) {
      if (first_message) {
        // Only the sender touches a sealed request's contents.
        request->set_run_id(run_id);
        request->set_writer_id(writer_id_);
        first_message = false;
      }
      if (!stream->Write(*request)) {
        write_failed = true;
        break;
      }
    }
    to_send.clear();  // so an ack finds the batch unshared and reclaims its buffers
    if (write_failed) break;
  }

  if (end == StreamEnd::kDrained) {
    stream->WritesDone();
  } else {
    context.TryCancel();
  }
  reader.join();
  SetActiveCall(nullptr);
  const grpc::Status finish = stream->Finish();
  if (!finish.ok() && end != StreamEnd::kAborted) {
    const absl::Status status = FromGrpc(finish, "Write stream");
    if (!IsRetryable(status.code())) {
      MutexLock lock(&mu_);
      SetFatalLocked(status);
      return StreamEnd::kAborted;
    }
    if (end == StreamEnd::kDrained) end = StreamEnd::kBroken;
  }
  return end;
}

absl::Status Writer::Impl::CloseRun() {
  v1::CloseRunRequest request;
  {
    MutexLock lock(&mu_);
    request.set_run_id(run_id_);
    request.set_status(close_status_);
  }
  v1::CloseRunResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
  SetActiveCall(&context);
  const grpc::Status status = stub_->CloseRun(&context, request, &response);
  SetActiveCall(nullptr);
  return FromGrpc(status, "CloseRun");
}

void Writer::Impl::NewChannel() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  stub_ = v1::TBLog::NewStub(
      grpc::CreateCustomChannel(options_.target, grpc::InsecureChannelCredentials(), args));
}

void Writer::Impl::SenderLoop() {
  absl::Duration backoff = options_.initial_backoff;
  std::mt19937_64 jitter_source(std::random_device{}());
  bool connected_before = false;
  bool drained = false;
  while (true) {
    {
      MutexLock lock(&mu_);
      if (abort_ || fatal_) break;
      // Closing with nothing to deliver and no run to close: done.
      if (closing_ && NothingPendingLocked() && run_id_.empty()) break;
    }
    absl::Status connected = Connect();
    bool retry = false;
    {
      MutexLock lock(&mu_);
      if (!first_open_done_) {
        first_open_done_ = true;
        first_open_status_ = connected;
        if (!connected.ok() && !options_.open_in_background) {
          fatal_ = true;
          error_ = connected;
          break;
        }
      }
      if (!connected.ok()) {
        if (abort_) break;
        if (!IsRetryable(connected.code())) {
          SetFatalLocked(connected);
          break;
        }
        // A wait in [backoff/2, backoff]: writers that lost one daemon do not
        // all come back in the same millisecond.
        std::uniform_real_distribution<double> jitter(0.5, 1.0);
        const absl::Duration wait = backoff * jitter(jitter_source);
        backoff = std::min(backoff * 2, options_.max_backoff);
        // On wake_mu_, as in RunStream: record calls go on meanwhile.
        const absl::Time until = absl::Now() + wait;
        while (!abort_ && absl::Now() < until) {
          mu_.Unlock();
          WaitForWake(until);
          mu_.Lock();
        }
        retry = true;
      } else {
        backoff = options_.initial_backoff;
        if (connected_before) ++stats_.reconnects;
        connected_before = true;
      }
    }
    if (retry) {
      NewChannel();
      continue;
    }
    const StreamEnd end = RunStream();
    if (end == StreamEnd::kDrained) {
      drained = true;
      break;
    }
    if (end == StreamEnd::kAborted) break;
    NewChannel();
  }

  absl::Status result;
  bool close_run = false;
  {
    MutexLock lock(&mu_);
    close_run = drained && options_.close_run && !run_id_.empty();
  }
  if (close_run) result = CloseRun();
  // No call follows: drop the channel now, closing its connection. An idle
  // connection that a closed Writer kept open held up the daemon's shutdown
  // (the server waits for its connections to go; nothing here polls it, so
  // the client only noticed the server's GOAWAY at gRPC's 5 s backup poll).
  stub_.reset();
  MutexLock lock(&mu_);
  if (!unacked_.empty() || !builder_.empty()) {
    size_t records = builder_.records();
    for (const SealedBatch& batch : unacked_) records += batch.records;
    const absl::Status lost = absl::DeadlineExceededError(absl::StrCat(
        records, " buffered records were not acknowledged by tblogd at ", options_.target,
        " before the writer closed"));
    if (result.ok()) result = lost;
  }
  close_result_ = !error_.ok() ? error_ : result;
  sender_done_ = true;
}

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
  auto impl = std::make_unique<Impl>(std::move(options));
  if (absl::Status started = impl->Start(); !started.ok()) return started;
  return std::unique_ptr<Writer>(new Writer(std::move(impl)));
}

absl::Status Writer::Append(v1::Record record) {
  const size_t bytes = record.ByteSizeLong();
  return impl_->AddRecord(std::move(record), bytes);
}

absl::Status Writer::scalar(std::string_view tag, int64_t step, float value,
                            const RecordOptions& at) {
  return impl_->AddScalar(tag, at.subrun, step, value,
                          at.wall_time != 0 ? at.wall_time : NowSeconds());
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
  v1::Record record = BaseRecord(tag, step, at);
  v1::Histogram* histogram = record.mutable_histogram();
  histogram->set_layout(options.layout);
  histogram->set_bucket_count(options.bucket_count);
  std::string buffer = impl_->TakeSpareBuffer(data.size());
  if (absl::Status filled =
          FillTensor(dtype, data, nullptr, histogram->mutable_values(), &buffer);
      !filled.ok()) {
    return WithTag(filled, tag);
  }
  return Append(std::move(record));
}

absl::Status Writer::image(std::string_view tag, int64_t step, v1::DType dtype,
                           std::span<const std::byte> data, const std::vector<int64_t>& shape,
                           const ImageOptions& options, const RecordOptions& at) {
  v1::Record record = BaseRecord(tag, step, at);
  v1::Image* image = record.mutable_image();
  image->set_layout(options.layout);
  image->set_style(options.style);
  image->set_max_outputs(options.max_outputs);
  std::string buffer = impl_->TakeSpareBuffer(data.size());
  if (absl::Status filled = FillTensor(dtype, data, &shape, image->mutable_pixels(), &buffer);
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
          FillTensor(v1::DTYPE_FLOAT32, std::as_bytes(matrix), &shape, embedding->mutable_matrix());
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
