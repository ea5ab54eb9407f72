// RecordStream's connection: the channel, (re)opening the run, the unary calls
// and the run's close. The stream and its sender loop are in record_stream.cc.

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "record_stream.h"

namespace tblog {

void RecordStream::SetActiveCall(grpc::ClientContext* context) {
  MutexLock lock(&mu_);
  active_call_ = context;
  if (context != nullptr && abort_) context->TryCancel();
}

template <typename Call>
grpc::Status RecordStream::CallUnary(const Call& call) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
  SetActiveCall(&context);
  const grpc::Status status = call(&context);
  SetActiveCall(nullptr);
  return status;
}

absl::Status RecordStream::Connect() {
  if (!channel_status_.ok()) return channel_status_;  // INVALID_ARGUMENT: not retried
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
  request.set_reduce_group_size(options_.reduce_group_size);
  request.set_reduce_timeout_seconds(options_.reduce_timeout_seconds);
  request.set_writer_id(writer_id_);  // this writer holds the run (tblog.proto, "Leases")

  v1::OpenRunResponse response;
  const grpc::Status open_status = CallUnary(
      [&](grpc::ClientContext* context) { return stub_->OpenRun(context, request, &response); });
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
    LearnMessageLimitLocked(response.max_message_bytes());
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
    // Batches the daemon has but that are not known durable are not resent
    // (the new stream starts after daemon_has: tblog.proto, WriteRequest.
    // sequence): a sync Flush through them makes them durable instead.
    if (options_.retain_until == AckLevel::kDurable && !unacked_.empty() &&
        unacked_.front().sequence <= daemon_has) {
      flush_through = daemon_has;
    }
    need_flush_rpc = flush_through > flushed_ ||
                     (!unacked_.empty() && unacked_.front().sequence <= flush_through);
  }
  if (need_flush_rpc) {
    v1::FlushRequest flush;
    flush.set_run_id(response.run_id());
    flush.set_writer_id(writer_id_);
    flush.set_through_sequence(flush_through);
    flush.set_sync(true);
    v1::FlushResponse flushed;
    const grpc::Status flush_status = CallUnary(
        [&](grpc::ClientContext* context) { return stub_->Flush(context, flush, &flushed); });
    if (!flush_status.ok()) return FromGrpc(flush_status, "Flush after reconnect");
    MutexLock lock(&mu_);
    flushed_ = std::max(flushed_, flush_through);
    durable_ = std::max(durable_, flush_through);  // a sync flush
    AckThroughLocked(options_.retain_until == AckLevel::kDurable ? durable_ : written_);
  }
  return absl::OkStatus();
}

void RecordStream::RebaseLocked(uint64_t base) {
  for (SealedBatch& batch : unacked_) {
    batch.sequence += base;
    batch.request->set_sequence(batch.sequence);
  }
  next_sequence_ += base;
  if (flush_wanted_through_ > 0) flush_wanted_through_ += base;
  sequence_base_ = base;
}

absl::Status RecordStream::CloseRun() {
  v1::CloseRunRequest request;
  {
    MutexLock lock(&mu_);
    request.set_run_id(run_id_);
    request.set_status(close_status_);
  }
  // Releases this writer's hold only: the run closes when its last writer has.
  request.set_writer_id(writer_id_);
  v1::CloseRunResponse response;
  const grpc::Status status = CallUnary(
      [&](grpc::ClientContext* context) { return stub_->CloseRun(context, request, &response); });
  return FromGrpc(status, "CloseRun");
}

absl::Status RecordStream::CloseRunRetrying() {
  absl::Duration backoff = options_.initial_backoff;
  for (int tries = 1;; ++tries) {
    const absl::Status closed = CloseRun();
    // Only what it learnt since its restart: this writer's hold died with
    // the process it was taken in, and everything it sent is acknowledged.
    if (tries > 1 && absl::IsNotFound(closed)) return absl::OkStatus();
    if (!absl::IsUnavailable(closed) && !absl::IsDeadlineExceeded(closed)) return closed;
    const absl::Time until = absl::Now() + backoff;
    backoff = std::min(backoff * 2, options_.max_backoff);
    {
      MutexLock lock(&mu_);
      while (!abort_ && absl::Now() < until) {
        mu_.Unlock();
        WaitForWake(until);
        mu_.Lock();
      }
      if (abort_) return closed;  // close_timeout passed
    }
    NewChannel();
  }
}

void RecordStream::NewChannel() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // TLS files are read again for each channel: a rotated client certificate
  // is used from the next reconnect on.
  auto channel = OpenChannel(options_.target, options_.connection, args);
  channel_status_ = channel.status();
  if (channel.ok()) stub_ = v1::TBLog::NewStub(*channel);
}

}  // namespace tblog
