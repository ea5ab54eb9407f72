#include "daemon/tblog_service.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_util.h"
#include "daemon/budgeted_read.h"
#include "daemon/malformed_requests.h"
#include "daemon/convert/charge.h"
#include "daemon/flush_call.h"
#include "daemon/grpc_status.h"
#include "daemon/node_reduce.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {
namespace {

constexpr char kShuttingDown[] = "tblogd is shutting down";

grpc::Status Unavailable() { return grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDown); }

// A stream's first message that only names its run and writer (tblog.proto,
// WriteRequest): it binds the stream, so the writer holds the run at once.
bool IsBindOnly(const v1::WriteRequest& request) {
  return request.records_size() == 0 && request.sequence() == 0 &&
         request.flush() == v1::FLUSH_MODE_NONE;
}

// Merges a newer ack into a pending one: sequences only grow, errors and
// duplicates add up (a client that resent a batch learns of each duplicate
// once, however many acks the stream coalesced while it was sending).
void MergeAck(v1::WriteResponse& into, v1::WriteResponse&& from) {
  into.set_written_sequence(std::max(into.written_sequence(), from.written_sequence()));
  into.set_durable_sequence(std::max(into.durable_sequence(), from.durable_sequence()));
  into.set_flushed_sequence(std::max(into.flushed_sequence(), from.flushed_sequence()));
  for (auto& error : *from.mutable_errors()) *into.add_errors() = std::move(error);
  into.mutable_duplicate_sequences()->Add(from.duplicate_sequences().begin(),
                                          from.duplicate_sequences().end());
}

}  // namespace

// One Write stream. Owns its state; deleted in OnDone(). Reading is the flow
// control (budgeted_read.h): each read waits for a ByteBudget reservation for
// the message it reads, and a message's charge includes its conversion
// estimate (the run converts it here).
class WriteStream final : public BudgetedReadStream {
 public:
  // `peer`: the client as gRPC names it (for logs); `caller`: the identity
  // the stream's writes are checked against (run_owner.h).
  WriteStream(TBLogService* service, std::string peer, std::string caller)
      : BudgetedReadStream(service->context_.budget, &convert::BatchCharge, "Write stream"),
        service_(service), peer_(std::move(peer)), caller_(std::move(caller)),
        sink_(std::make_shared<Sink>(this)), shm_ring_(service->shm_rings_) {
    grpc::Status refusal;
    if (!service_->RegisterStream(this, &refusal)) {
      {
        MutexLock lock(&mu_);
        finished_ = true;
      }
      if (refusal.error_code() != grpc::StatusCode::UNAVAILABLE) {  // not the daemon's shutdown
        service_->rejection_log_.StreamDropped(peer_, "", "", ToAbsl(refusal));
      }
      Finish(refusal);
      return;
    }
    bool read = false;
    {
      MutexLock lock(&mu_);
      // Nothing known of this writer yet: room for the largest message gRPC
      // accepts (the budget clamps it to its capacity), so new streams that
      // all send large batches at once cannot overrun the budget together.
      next_reservation_ = service_->context_.options->limits.max_message_bytes;
      read = RequestReadLocked();
    }
    if (read) StartBudgetedRead();
  }

  void OnMessage(Message message) override {
    // The tag definitions are taken in stream order, on the read side (no
    // read is in flight until this returns), before the batch is queued.
    const absl::Status defined = message.parsed.ok() ? DefineStreamTags() : absl::OkStatus();
    size_t release_bytes = 0;
    bool read_on = false;
    {
      MutexLock lock(&mu_);
      if (shutdown_ || !error_.ok()) {
        // Not acknowledged: the client resends it to the next daemon.
        release_bytes = message.charge;
      } else if (!message.parsed.ok() || !defined.ok()) {
        error_ = message.parsed.ok() ? defined : message.parsed;
        release_bytes = message.charge;
      } else if (absl::Status status = AcceptLocked(); !status.ok()) {
        error_ = status;
        release_bytes = message.charge;
      } else if (IsBindOnly(request_)) {
        // Only binds the stream (and its writer's hold); nothing to queue.
        request_.Clear();
        release_bytes = message.charge;
        read_on = RequestReadLocked();
      } else {
        service_->context_.metrics->bytes_received.fetch_add(message.bytes,
                                                             std::memory_order_relaxed);
        for (const auto& record : request_.records()) {
          service_->context_.metrics->AddReceived(record);
        }
        absl::Status submitted = run_->Submit(std::move(request_), sink_, message.charge,
                                              {stream_tags_, messages_read()});
        request_.Clear();
        if (!submitted.ok()) {
          error_ = submitted;
          release_bytes = message.charge;
        } else {
          ++outstanding_;
          next_reservation_ = message.next_reservation();
          read_on = RequestReadLocked();
        }
      }
    }
    if (release_bytes > 0) budget_->Release(release_bytes);
    if (read_on) {
      StartBudgetedRead();
    } else {
      Progress();
    }
  }

  void OnWriteDone(bool ok) override {
    {
      MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) reads_done_ = true;  // the client is gone
    }
    Progress();
  }

  void OnCancel() override { StopReading(/*shutdown=*/false); }

  void OnDone() override {
    ReleaseReservation();
    if (stream_tags_ != nullptr) service_->context_.budget->Unpin(stream_tags_->held_bytes());
    sink_->Detach();
    {
      MutexLock lock(&mu_);
      hold_.reset();  // the writer's lease runs from now unless it has other streams
    }
    service_->UnregisterStream(this);
    delete this;
  }

  // From TBLogService::BeginShutdown: stop reading, finish once acknowledged.
  void StopForShutdown() { StopReading(/*shutdown=*/true); }

 private:
  // Takes request_'s tag definitions into the stream's dictionary, pinning
  // what it grows by in the budget until the stream ends. Read side only.
  absl::Status DefineStreamTags() {
    if (request_.stream_tags_size() == 0) return absl::OkStatus();
    if (stream_tags_ == nullptr) {
      stream_tags_ = std::make_shared<convert::StreamTags>(service_->context_.options->limits);
    }
    size_t added = 0;
    absl::Status status = stream_tags_->Define(request_, messages_read(), &added);
    service_->context_.budget->Pin(added);
    return status;
  }

  // Stops reading for good (the client cancelled, or the daemon drains): a
  // stream parked for budget leaves the queue, and Progress() finishes the
  // stream once what it sent is acknowledged.
  void StopReading(bool shutdown) {
    {
      MutexLock lock(&mu_);
      if (shutdown) {
        shutdown_ = true;
      } else {
        reads_done_ = true;
        writer_claim_.reset();  // the client is gone: a reconnect may take the writer id
      }
    }
    StopWaiting();
    Progress();
  }

  bool ReadsLocked() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !reads_done_ && !shutdown_ && error_.ok() && !finished_;
  }

  void ReadsOverLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { reads_done_ = true; }

  // Forwards acks from runs to the stream while it lives. Runs hold it by
  // shared_ptr, so it may outlive the stream; Detach() cuts the link.
  class Sink final : public AckSink {
   public:
    explicit Sink(WriteStream* stream) : stream_(stream) {}
    void OnAck(v1::WriteResponse ack, int completed_batches) override {
      MutexLock lock(&mu_);
      if (stream_ != nullptr) stream_->OnAck(std::move(ack), completed_batches);
    }
    void Detach() {
      MutexLock lock(&mu_);
      stream_ = nullptr;
    }

   private:
    Mutex mu_;
    WriteStream* stream_ ABSL_GUARDED_BY(mu_);  // null once the stream is done
  };

  // Checks the message just read and binds the stream to its run and writer.
  absl::Status AcceptLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!run_) {
      if (request_.run_id().empty()) {
        return absl::InvalidArgumentError("run_id: required in the first WriteRequest of a stream");
      }
      if (request_.writer_id().empty()) {
        return absl::InvalidArgumentError(
            "writer_id: required in the first WriteRequest of a stream");
      }
      run_id_ = request_.run_id();  // for the log, should the stream fail from here on
      auto guarded = service_->registry_->FindFor(request_.run_id(), caller_, "write to");
      if (!guarded.ok()) return guarded.status();
      // One live stream per writer id (writer_binding.h).
      auto claim = WriterClaim::Acquire(guarded->writers, request_.run_id(),
                                        request_.writer_id(), caller_);
      if (!claim.ok()) return claim.status();
      writer_claim_ = *std::move(claim);
      run_ = std::move(guarded->run);
      writer_id_ = request_.writer_id();
      run_->Subscribe(writer_id_, sink_);
      hold_ = service_->registry_->AttachStream(run_, writer_id_);
    } else {
      if (!request_.run_id().empty() && request_.run_id() != run_->run_id()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "run_id: a stream writes to one run (\"", run_->run_id(), "\"), got \"",
            request_.run_id(), "\"; open another stream"));
      }
      if (!request_.writer_id().empty() && request_.writer_id() != writer_id_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "writer_id: a stream belongs to one writer (\"", writer_id_, "\")"));
      }
      request_.set_writer_id(writer_id_);
    }
    return shm_ring_.Accept(request_);
  }

  void OnAck(v1::WriteResponse ack, int completed_batches) {
    if (ack.errors_size() > 0) {
      service_->rejection_log_.RecordsRejected(peer_, run_id_, writer_id_, ack);
    }
    {
      MutexLock lock(&mu_);
      outstanding_ -= completed_batches;
      if (pending_ack_) {
        MergeAck(*pending_ack_, std::move(ack));
      } else {
        pending_ack_ = std::move(ack);
      }
    }
    Progress();
  }

  // Sends the pending ack, or finishes when nothing is left to wait for.
  void Progress() override {
    bool write = false;
    std::optional<grpc::Status> finish;
    {
      MutexLock lock(&mu_);
      if (finished_ || writing_) return;
      if (pending_ack_) {
        response_ = *std::move(pending_ack_);
        pending_ack_.reset();
        writing_ = write = true;
      } else if (outstanding_ == 0 && !WaitingLocked() &&
                 (reads_done_ || shutdown_ || !error_.ok())) {
        // A read still in flight is cancelled by Finish.
        finished_ = true;
        writer_claim_.reset();  // before Finish: a reconnect may follow at once
        if (!error_.ok()) {
          finish = ToGrpc(error_);
        } else if (shutdown_) {
          finish = Unavailable();
        } else {
          finish = grpc::Status::OK;
        }
      }
    }
    if (write) {
      write_buffer_ = SerializeMessage(response_);
      StartWrite(&write_buffer_);
    }
    if (finish) {
      if (!finish->ok() && finish->error_code() != grpc::StatusCode::UNAVAILABLE) {
        const absl::Status dropped = ToAbsl(*finish);
        service_->context_.metrics->AddStreamDropped(dropped.code());
        service_->rejection_log_.StreamDropped(peer_, run_id_, writer_id_, dropped);
      }
      Finish(*finish);
    }
  }

  TBLogService* const service_;              // outlives every stream
  const std::string peer_;                   // the client, as gRPC names it (for logs)
  const std::string caller_;                 // run_owner.h
  const std::shared_ptr<Sink> sink_;
  // Raw writes (malformed_requests.h): touched only while no write is in
  // flight (the read side is BudgetedReadStream's).
  // The stream's tag dictionary (convert/stream_tags.h), made by the first
  // message that defines a tag; read side, like request_.
  std::shared_ptr<convert::StreamTags> stream_tags_;
  grpc::ByteBuffer write_buffer_;
  v1::WriteResponse response_;

  // mu_ (BudgetedReadStream's) guards the stream's state.
  std::shared_ptr<Run> run_ ABSL_GUARDED_BY(mu_);
  // The stream's share in its writer's hold on run_ (null: not bound yet).
  std::unique_ptr<RunRegistry::StreamHold> hold_ ABSL_GUARDED_BY(mu_);
  // This stream's hold on its writer id, from the first message until it
  // stops reading.
  std::optional<WriterClaim> writer_claim_ ABSL_GUARDED_BY(mu_);
  // The stream's shared-memory ring, if it binds one; dropped with the
  // stream, after every batch that read it was acknowledged.
  StreamShmRing shm_ring_ ABSL_GUARDED_BY(mu_);
  std::string writer_id_;  // set once, before any ack can arrive
  std::string run_id_;     // set before writer_id_, once
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;  // client done, cancelled or gone
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // batches submitted, not yet acknowledged
  std::optional<v1::WriteResponse> pending_ack_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};


TBLogService::TBLogService(RunRegistry* registry, RunContext context, CallerIdentityFn identify)
    : registry_(registry), context_(context), identify_(std::move(identify)),
      write_batch_sizes_(context.options->limits.max_message_bytes) {}

TBLogService::~TBLogService() = default;

bool TBLogService::RegisterStream(WriteStream* stream, grpc::Status* refusal) {
  MutexLock lock(&mu_);
  if (shutting_down()) {
    *refusal = Unavailable();
  } else if (static_cast<int>(streams_.size()) >= context_.options->limits.max_streams) {
    *refusal = grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("tblogd has ", streams_.size(),
                     " open Write streams, the limit (--max-streams); retry later"));
  } else {
    streams_.insert(stream);
    return true;
  }
  context_.metrics->streams_refused.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void TBLogService::UnregisterStream(WriteStream* stream) {
  MutexLock lock(&mu_);
  streams_.erase(stream);
}

int TBLogService::ActiveStreams() const {
  MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

void TBLogService::BeginShutdown() {
  shutting_down_.store(true, std::memory_order_release);
  // Held while stopping: a stream's OnDone (which unregisters) runs on
  // gRPC's threads after Finish, never inline, so it just waits for us.
  MutexLock lock(&mu_);
  for (WriteStream* stream : streams_) stream->StopForShutdown();
}

bool TBLogService::WaitForStreams(absl::Time deadline) {
  MutexLock lock(&mu_);
  auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return streams_.empty(); };
  return mu_.AwaitWithDeadline(Condition(&none), deadline);
}

grpc::ServerUnaryReactor* TBLogService::RefuseIfShuttingDown(grpc::CallbackServerContext* context) {
  if (!shutting_down()) return nullptr;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(Unavailable());
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* TBLogService::Write(
    grpc::CallbackServerContext* context) {
  return new WriteStream(this, context->peer(), Caller(*context));
}

grpc::ServerUnaryReactor* TBLogService::OpenRun(grpc::CallbackServerContext* context,
                                                const v1::OpenRunRequest* request,
                                                v1::OpenRunResponse* response) {
  if (grpc::ServerUnaryReactor* refused = RefuseIfShuttingDown(context)) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Directory work and resume repair are file I/O: off the gRPC thread.
  context_.workers->Submit([this, reactor, request, response, caller = Caller(*context)] {
    auto opened = registry_->OpenRun(*request, caller);
    if (opened.ok() && context_.node_reduce) {
      context_.node_reduce->NoteOpen(opened->run_id(), *request);  // settings for the upstream
    }
    if (opened.ok()) {
      *response = *std::move(opened);
      response->set_max_message_bytes(context_.options->limits.max_message_bytes);
      reactor->Finish(grpc::Status::OK);
    } else {
      reactor->Finish(ToGrpc(opened.status()));
    }
  });
  return reactor;
}

grpc::ServerReadReactor<grpc::ByteBuffer>* TBLogService::WriteBatch(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  const WriteBatchShared shared{registry_, context_, &rejection_log_, &write_batch_sizes_};
  return StartWriteBatch(context, response, shared, Caller(*context),
                         shutting_down() ? Unavailable() : grpc::Status::OK);
}

grpc::ServerUnaryReactor* TBLogService::Flush(grpc::CallbackServerContext* context,
                                              const v1::FlushRequest* request,
                                              v1::FlushResponse* /*response*/) {
  return StartFlush(context, *request, registry_, context_.metrics, Caller(*context));
}

grpc::ServerUnaryReactor* TBLogService::CloseRun(grpc::CallbackServerContext* context,
                                                 const v1::CloseRunRequest* request,
                                                 v1::CloseRunResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Only the run's owner closes it (run_owner.h); an unknown run is the
  // registry's NOT_FOUND.
  if (auto guarded = registry_->FindFor(request->run_id(), Caller(*context), "close");
      !guarded.ok() && !absl::IsNotFound(guarded.status())) {
    reactor->Finish(ToGrpc(guarded.status()));
    return reactor;
  }
  registry_->CloseRun(request->run_id(), request->writer_id(), request->status(),
                      [reactor, response](absl::StatusOr<v1::RunInfo> info) {
                        if (!info.ok()) {
                          reactor->Finish(ToGrpc(info.status()));
                          return;
                        }
                        *response->mutable_run() = *std::move(info);
                        reactor->Finish(grpc::Status::OK);
                      });
  return reactor;
}

grpc::ServerUnaryReactor* TBLogService::ListRuns(grpc::CallbackServerContext* context,
                                                 const v1::ListRunsRequest* /*request*/,
                                                 v1::ListRunsResponse* response) {
  // Only the caller's runs: with tokens, others' runs and labels stay hidden.
  for (auto& info : registry_->List(Caller(*context))) *response->add_runs() = std::move(info);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* TBLogService::GetRun(grpc::CallbackServerContext* context,
                                               const v1::GetRunRequest* request,
                                               v1::RunInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (auto guarded = registry_->FindFor(request->run_id(), Caller(*context), "read");
      !guarded.ok()) {
    reactor->Finish(ToGrpc(guarded.status()));
    return reactor;
  }
  auto info = registry_->Info(request->run_id());
  if (info.ok()) *response = *std::move(info);
  reactor->Finish(ToGrpc(info.status()));
  return reactor;
}

}  // namespace tblog::daemon
