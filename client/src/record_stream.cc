// RecordStream: see record_stream.h for the contract and the threads.
#include "record_stream.h"

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_util.h"

namespace tblog {

absl::Status FromGrpc(const grpc::Status& status, std::string_view context) {
  return Annotate(absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                               status.error_message()),
                  context);
}

namespace {

std::string RandomWriterId() {
  std::random_device device;
  std::mt19937_64 generator((uint64_t{device()} << 32) ^ device());
  return absl::StrCat(absl::Hex(generator(), absl::kZeroPad16),
                      absl::Hex(generator(), absl::kZeroPad16));
}

}  // namespace

// The transient codes of tblog.proto's "Retries" comment (service TBLog),
// where each one's reason is given. Keep this list and that comment in step.
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

RecordStream::RecordStream(WriterOptions options)
    : options_(std::move(options)),
      writer_id_(options_.writer_id.empty() ? RandomWriterId() : options_.writer_id),
      builder_(options_.scalar_style),
      spare_buffers_(options_.max_buffer_bytes / 4) {
  max_record_bytes_.store(options_.max_record_bytes, std::memory_order_relaxed);
  {
    MutexLock lock(&mu_);
    batch_limit_ = std::min(options_.max_batch_bytes, message_room_);
  }
  NewChannel();
}

void RecordStream::LearnMessageLimitLocked(uint64_t max_message_bytes) {
  // 0: a daemon older than the field, with the default that
  // WriterOptions' defaults fit. The rest of a request (its head, the tag
  // definitions) gets 1 MiB, as in max_record_bytes' default; tblogd
  // accepts no limit below 4 MiB.
  if (max_message_bytes == 0) return;
  message_room_ = max_message_bytes - std::min<uint64_t>(max_message_bytes / 4, 1 << 20);
  max_record_bytes_.store(std::min(options_.max_record_bytes, message_room_),
                          std::memory_order_relaxed);
  batch_limit_ = std::min(options_.max_batch_bytes, message_room_);
}

RecordStream::~RecordStream() {
  if (sender_.joinable()) (void)Close(v1::SESSION_STATUS_SUCCESS);  // errors: see status()
}

absl::Status RecordStream::status() const {
  MutexLock lock(&mu_);
  return error_;
}

WriterStats RecordStream::stats() const {
  MutexLock lock(&mu_);
  WriterStats copy = stats_;
  copy.buffered_bytes = BufferedBytesLocked();
  if (const ShmRing* ring = shm_ring(); ring != nullptr) {
    copy.shm_tensors = ring->tensors();
    copy.shm_error = std::string(ring->attach_status().message());
    copy.shm_ring_bytes = ring->size();
  }
  return copy;
}

std::string RecordStream::run_id() const {
  MutexLock lock(&mu_);
  return run_id_;
}

std::string RecordStream::run_path() const {
  MutexLock lock(&mu_);
  return run_path_;
}

absl::Status RecordStream::Start() {
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

absl::Status RecordStream::ReserveLocked(size_t bytes) {
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

uint64_t RecordStream::SealLocked(v1::FlushMode flush) {
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

void RecordStream::AfterAppendLocked() {
  ++stats_.enqueued;
  if (builder_.bytes() >= batch_limit_) {
    SealLocked(v1::FLUSH_MODE_NONE);
  } else if (builder_.records() == 1 && !InFlightLocked()) {
    // The first record of a batch while the daemon has nothing of ours to
    // write: send it now (visible in milliseconds). Under load a batch is
    // nearly always in flight, so the training thread seldom pays this wakeup.
    WakeSender();
  }
}

absl::Status RecordStream::AddScalar(std::string_view tag, std::string_view subrun, int64_t step,
                                     float value, double wall_time) {
  MutexLock lock(&mu_);
  if (absl::Status room = ReserveLocked(BatchBuilder::kScalarPointBytes); !room.ok()) return room;
  if (builder_.empty()) batch_started_ = absl::Now();
  builder_.AddScalar(tag, subrun, step, value, wall_time);
  AfterAppendLocked();
  return absl::OkStatus();
}

absl::Status RecordStream::AddRecord(v1::Record&& record, size_t bytes) {
  MutexLock lock(&mu_);
  if (absl::Status room = ReserveLocked(bytes); !room.ok()) return room;
  // A large record that would take the open batch past the limit starts a
  // batch of its own: no request exceeds the daemon's --max-message-size.
  if (!builder_.empty() && builder_.bytes() + bytes > message_room_) {
    SealLocked(v1::FLUSH_MODE_NONE);
  }
  if (builder_.empty()) batch_started_ = absl::Now();
  builder_.AddRecord(std::move(record), bytes);
  AfterAppendLocked();
  return absl::OkStatus();
}

absl::Status RecordStream::Flush(bool sync) {
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

absl::Status RecordStream::Close(v1::SessionStatus status) {
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

void RecordStream::SetFatalLocked(const absl::Status& status) {
  if (error_.ok()) error_ = status;
  fatal_ = true;
  ++stats_.errors;
  WakeSender();
}

void RecordStream::WakeSender() {
  MutexLock lock(&wake_mu_);
  wake_ = true;
}

void RecordStream::WaitForWake(absl::Time deadline) {
  MutexLock lock(&wake_mu_);
  wake_mu_.AwaitWithDeadline(Condition(&wake_), deadline);
  wake_ = false;
}

void RecordStream::AckThroughLocked(uint64_t sequence) {
  while (!unacked_.empty() && unacked_.front().sequence <= sequence) {
    unacked_bytes_ -= unacked_.front().bytes;
    stats_.acknowledged += unacked_.front().records;
    // Only when the sender no longer holds the request (it writes it unlocked).
    if (unacked_.front().request.use_count() == 1) spare_buffers_.Reclaim(*unacked_.front().request);
    if (ShmRing* ring = shm_ring(); ring != nullptr) ring->Release(*unacked_.front().request);
    unacked_.pop_front();
  }
  if (closing_ && unacked_.empty()) WakeSender();  // close() waits for the last ack
}

std::string RecordStream::TakeSpareBuffer(size_t bytes) {
  if (bytes < TensorBufferPool::kMinBufferBytes) return {};
  MutexLock lock(&mu_);
  return spare_buffers_.Take(bytes);
}

void RecordStream::HandleResponseLocked(const v1::WriteResponse& response) {
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
  // What gathered while the last batch was in flight goes out now.
  if (!builder_.empty() && !InFlightLocked()) WakeSender();
}

void RecordStream::ReadLoop(Stream* stream) {
  v1::WriteResponse response;
  while (stream->Read(&response)) {
    MutexLock lock(&mu_);
    HandleResponseLocked(response);
  }
  MutexLock lock(&mu_);
  stream_broken_ = true;
  WakeSender();
}

RecordStream::StreamEnd RecordStream::RunStream() {
  grpc::ClientContext context;
  std::string ring_token = AttachRing();
  RingTried();
  std::unique_ptr<Stream> stream = stub_->Write(&context);
  std::string run_id;
  uint64_t written_before = 0;
  // The bind message defines every tag id so far (batch_builder.h).
  v1::WriteRequest bind;
  std::vector<v1::WriteRequest> more_tags;
  {
    MutexLock lock(&mu_);
    written_before = written_;
    stream_broken_ = false;
    sent_through_ = unacked_.empty() ? next_sequence_ - 1 : unacked_.front().sequence - 1;
    run_id = run_id_;
    StreamTagMessages(builder_, &bind, &more_tags);
  }
  SetActiveCall(&context);
  std::thread reader([this, &stream] { ReadLoop(stream.get()); });
  // Binds the stream to the run at once, so this writer holds the run while
  // it has nothing to log yet (tblog.proto, WriteRequest). A failure shows
  // as a failed write below.
  {
    bind.set_run_id(run_id);
    bind.set_writer_id(writer_id_);
    bind.set_shm_ring(ring_token);
    if (stream->Write(bind)) {
      for (const v1::WriteRequest& tags : more_tags) {
        if (!stream->Write(tags)) break;
      }
    }
  }

  StreamEnd end = StreamEnd::kBroken;
  bool first_message = true;
  std::vector<std::shared_ptr<v1::WriteRequest>> to_send;
  while (true) {
    to_send.clear();
    {
      MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return abort_ || fatal_ || stream_broken_ || HasUnsentLocked() ||
               ring_urgent_.load(std::memory_order_relaxed) ||
               (!builder_.empty() && !InFlightLocked()) ||
               (closing_ && (!builder_.empty() || unacked_.empty()));
      };
      // Records are sent at once when no batch is in flight, else gathered
      // until its ack (AfterAppendLocked, HandleResponseLocked wake us); the
      // sender also wakes every batch_delay and seals batches that are due.
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
      if (!builder_.empty() && (closing_ || !InFlightLocked() ||
                                absl::Now() >= batch_started_ + options_.batch_delay)) {
        SealLocked(v1::FLUSH_MODE_NONE);
      }
      for (const SealedBatch& batch : unacked_) {
        if (batch.sequence <= sent_through_) continue;
        if (ring_token.empty() && ring_ != nullptr) ring_->Inline(*batch.request);
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
    if (ring_token.empty() && ring_ == nullptr &&
        ring_wanted_.load(std::memory_order_relaxed) != 0) {
      // The first large tensor (sent as bytes): a ring for the next ones,
      // bound by a message of its own (tblog.proto, WriteRequest.shm_ring).
      ring_token = AttachRing();
      v1::WriteRequest ring_bind;
      ring_bind.set_shm_ring(ring_token);
      if (!ring_token.empty() && !stream->Write(ring_bind)) write_failed = true;
    } else if (!ring_token.empty()) {
      GrowRingIfWanted();
    }
    RingTried();
    for (const auto& request : to_send) {
      if (write_failed) break;
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

  // Only a stream this client gives up on is cancelled. One the daemon ended
  // (the reader saw its end) or that a failed write showed broken is over
  // already, and Finish() returns the daemon's own status: a final code must
  // not turn into CANCELLED and be retried (tblog.proto, "Retries").
  if (end == StreamEnd::kDrained) {
    stream->WritesDone();
  } else if (end == StreamEnd::kAborted) {
    context.TryCancel();
  }
  reader.join();
  SetActiveCall(nullptr);
  const grpc::Status finish = stream->Finish();
  {
    MutexLock lock(&mu_);
    if (written_ > written_before) stream_run_not_found_ = 0;  // it made progress
  }
  if (!finish.ok() && end != StreamEnd::kAborted) {
    const absl::Status status = FromGrpc(finish, "Write stream");
    // NOT_FOUND on the stream: this daemon does not know the run (it
    // restarted after our OpenRun). Reconnecting reopens it with RESUME; a
    // daemon that keeps not knowing it after that is final.
    const bool reopen = status.code() == absl::StatusCode::kNotFound &&
                        ++stream_run_not_found_ <= kMaxRunNotFoundInARow;
    if (!reopen && !IsRetryable(status.code())) {
      MutexLock lock(&mu_);
      SetFatalLocked(status);
      return StreamEnd::kAborted;
    }
    if (end == StreamEnd::kDrained) end = StreamEnd::kBroken;
  }
  return end;
}

void RecordStream::SenderLoop() {
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
  if (close_run) result = CloseRunRetrying();
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

}  // namespace tblog
