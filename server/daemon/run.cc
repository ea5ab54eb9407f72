#include "daemon/run.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/names.h"
#include "daemon/node_reduce.h"
#include "daemon/run_entry.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {

namespace {

double NowSeconds() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

// The daemon's event file options, with the run's own file name suffix.
EventFileOptions WithSuffix(EventFileOptions options, std::string filename_suffix) {
  if (!filename_suffix.empty()) options.filename_suffix = std::move(filename_suffix);
  return options;
}

// A batch whose tensors hold this much (in the messages or as shared-memory
// slices) has its writer go ahead of the conversions waiting (SubmitFirst):
// its client may be waiting on the ack for ring or buffer room (a 64 MiB
// ring holds at most four), and one more ack costs under 2% of converting
// it. Smaller batches keep the FIFO order, so that their acks merge: an ack
// per 1M-float histogram cost tblogd about 0.07 ms more CPU each
// (bench/README.md, shared memory).
constexpr size_t kLargeBatchTensorBytes = size_t{16} << 20;

// The bytes of the tensors `request` carries that a conversion reads.
size_t TensorBytes(const v1::WriteRequest& request) {
  size_t bytes = 0;
  for (const v1::Record& record : request.records()) {
    const v1::Tensor* tensor = nullptr;
    if (record.has_histogram()) tensor = &record.histogram().values();
    if (record.has_image() && record.image().has_pixels()) tensor = &record.image().pixels();
    if (record.has_embedding()) tensor = &record.embedding().matrix();
    if (tensor == nullptr) continue;
    bytes += tensor->has_shm() ? static_cast<size_t>(tensor->shm().length())
                               : tensor->data().size();
  }
  return bytes;
}

}  // namespace

Run::Run(RunContext context, std::string run_id, std::string directory,
         std::map<std::string, std::string> labels, std::string filename_suffix,
         std::map<std::string, uint64_t> writer_sequences, ResumedFiles resumed)
    : context_(context),
      run_id_(std::move(run_id)),
      directory_(std::move(directory)),
      labels_(std::move(labels)),
      run_files_(run_id_, directory_,
                 WithSuffix(context.options->file, std::move(filename_suffix)),
                 context.options->limits, writer_sequences, std::move(resumed),
                 &context.metrics->steps_back),
      reductions_(context.options->reduce_timeout, &context.metrics->reduce) {
  MutexLock lock(&mu_);
  for (const auto& [writer, sequence] : writer_sequences) {
    WriterState& state = writers_[writer];
    state.enqueued = state.written = state.flushed = state.durable = sequence;
    // The resuming OpenRun reports it (lower while a node's partials hold
    // the writer's batches: node_reduce.h).
    state.contract = SequenceContract(
        context_.node_reduce ? context_.node_reduce->CapReported(run_id_, writer, sequence)
                             : sequence);
  }
}

Run::~Run() = default;  // run_files_ closes the files if Close() did not

absl::Status Run::Submit(v1::WriteRequest request, std::shared_ptr<AckSink> sink,
                         size_t charged_bytes, convert::StreamTagsRef stream_tags) {
  auto entry = std::make_unique<Entry>();
  Entry* raw = entry.get();
  bool convert = false;
  {
    MutexLock lock(&mu_);
    if (closed_) {
      return absl::FailedPreconditionError(
          absl::StrCat("run \"", run_id_, "\" is closed; open it again to resume it"));
    }
    if (!sticky_error_.ok()) {
      return absl::UnavailableError(absl::StrCat("run \"", run_id_, "\" cannot write: ",
                                                 sticky_error_.message(), "; retrying"));
    }
    WriterState& writer = writers_[request.writer_id()];
    const uint64_t sequence = request.sequence();
    if (sequence != 0) {
      if (absl::Status status =
              writer.contract.Admit(request.writer_id(), sequence, writer.enqueued, sink);
          !status.ok()) {
        return status;
      }
    }
    if (sequence != 0 && sequence <= writer.enqueued) {
      entry->type = Entry::Type::kDuplicate;
      // A node forwarding reductions still takes a resent batch's
      // contributions (node_reduce.h): they are converted, not written.
      convert = context_.node_reduce != nullptr &&
                std::any_of(request.records().begin(), request.records().end(),
                            [](const v1::Record& record) { return record.has_reduce(); });
      entry->ready = !convert;
      ++batches_duplicate_;
      context_.metrics->batches_duplicate.fetch_add(1, std::memory_order_relaxed);
    } else {
      if (sequence != 0) writer.enqueued = sequence;
      entry->type = Entry::Type::kBatch;
      convert = true;
    }
    if (convert) entry->receive_time = NowSeconds();
    entry->request = std::move(request);
    entry->sink = std::move(sink);
    entry->charged_bytes = charged_bytes;
    entry->stream_tags = std::move(stream_tags);
    Enqueue(std::move(entry));
    // Flushes that waited for this writer's batches can go now, behind them.
    const std::string& writer_id = raw->request.writer_id();
    for (auto it = parked_flushes_.begin(); it != parked_flushes_.end();) {
      if (it->second.writer_id == writer_id && it->second.through_sequence <= writer.enqueued) {
        auto flush = std::make_unique<Entry>();
        flush->type = Entry::Type::kFlush;
        flush->ready = true;
        flush->sync = it->second.sync;
        flush->done = std::move(it->second.done);
        Enqueue(std::move(flush));
        it = parked_flushes_.erase(it);
      } else {
        ++it;
      }
    }
    MaybeScheduleWriter();
  }
  if (convert) {
    context_.workers->Submit([self = shared_from_this(), raw] { self->ConvertBatch(raw); });
  }
  return absl::OkStatus();
}

void Run::Subscribe(const std::string& writer_id, std::weak_ptr<AckSink> sink) {
  MutexLock lock(&mu_);
  writers_[writer_id].subscriber = std::move(sink);
}

uint64_t Run::Flush(const std::string& writer_id, uint64_t through_sequence, bool sync,
                    Done done) {
  if (context_.node_reduce != nullptr && !writer_id.empty()) {
    // Done only once the upstream has the writer's contributions too: a
    // client takes the flush as an ack of its batches (node_reduce.h).
    done = [node_reduce = context_.node_reduce, run_id = run_id_, writer_id, through_sequence,
            done = std::move(done)](absl::Status status) mutable {
      if (!status.ok()) return std::move(done)(status);
      node_reduce->WhenReleased(run_id, writer_id, through_sequence,
                                [done = std::move(done)]() mutable {
                                  std::move(done)(absl::OkStatus());
                                });
    };
  }
  ReleasableMutexLock lock(&mu_);
  if (closed_) {
    lock.Release();
    std::move(done)(absl::FailedPreconditionError(absl::StrCat("run \"", run_id_, "\" is closed")));
    return 0;
  }
  if (!writer_id.empty()) {
    auto it = writers_.find(writer_id);
    const uint64_t enqueued = it == writers_.end() ? 0 : it->second.enqueued;
    if (through_sequence > enqueued) {
      const uint64_t ticket = next_ticket_++;
      parked_flushes_.emplace(ticket,
                              ParkedFlush{writer_id, through_sequence, sync, std::move(done)});
      return ticket;
    }
  }
  auto entry = std::make_unique<Entry>();
  entry->type = Entry::Type::kFlush;
  entry->ready = true;
  entry->sync = sync;
  entry->done = std::move(done);
  Enqueue(std::move(entry));
  MaybeScheduleWriter();
  return 0;
}

bool Run::CancelFlush(uint64_t ticket) {
  MutexLock lock(&mu_);
  return parked_flushes_.erase(ticket) > 0;
}

void Run::SubmitEvents(Converted events, Done done) {
  ReleasableMutexLock lock(&mu_);
  if (closed_) {
    lock.Release();
    std::move(done)(absl::FailedPreconditionError(absl::StrCat("run \"", run_id_, "\" is closed")));
    return;
  }
  EnqueueEvents(std::move(events), std::move(done));
}

void Run::WriteDueReductions(absl::Time now) {
  MutexLock lock(&mu_);
  if (closed_ || !reductions_.HasDue(now)) return;  // a close writes every pending point
  if (due_reductions_queued_) return;  // one at a time: it takes every due point
  due_reductions_queued_ = true;
  // The writer takes the due points when it writes the entry (WriteGroup), so
  // the reductions' state changes in file order: a checkpoint never counts a
  // point whose event is not in the files yet. An I/O error retries the entry
  // like any other (run.h).
  auto entry = std::make_unique<Entry>();
  entry->type = Entry::Type::kEvents;
  entry->ready = true;
  entry->take_due_reductions = true;
  entry->done = [](absl::Status) {};
  Enqueue(std::move(entry));
  MaybeScheduleWriter();
}

void Run::EnqueueEvents(Converted events, Done done) {
  auto entry = std::make_unique<Entry>();
  entry->type = Entry::Type::kEvents;
  entry->ready = true;
  entry->events = std::move(events);
  entry->done = std::move(done);
  Enqueue(std::move(entry));
  MaybeScheduleWriter();
}

void Run::Close(Converted final_events, Done done) {
  std::vector<ParkedFlush> orphans;
  {
    ReleasableMutexLock lock(&mu_);
    if (closed_) {
      lock.Release();
      std::move(done)(
          absl::FailedPreconditionError(absl::StrCat("run \"", run_id_, "\" is already closed")));
      return;
    }
    closed_ = true;
    for (auto& [ticket, flush] : parked_flushes_) orphans.push_back(std::move(flush));
    parked_flushes_.clear();
    auto entry = std::make_unique<Entry>();
    entry->type = Entry::Type::kClose;
    entry->ready = true;
    entry->sync = true;
    entry->events = std::move(final_events);
    entry->done = [this, done = std::move(done)](absl::Status status) mutable {
      std::vector<Done> waiters;
      {
        MutexLock closed_lock(&mu_);
        close_status_ = status;
        waiters.swap(close_waiters_);
      }
      for (Done& waiter : waiters) std::move(waiter)(status);
      std::move(done)(std::move(status));
    };
    Enqueue(std::move(entry));
    MaybeScheduleWriter();
  }
  for (ParkedFlush& flush : orphans) {
    std::move(flush.done)(absl::FailedPreconditionError(absl::StrCat(
        "run \"", run_id_, "\" was closed before writer \"", flush.writer_id, "\" sent batch ",
        flush.through_sequence)));
  }
}

void Run::WhenClosed(Done done) {
  absl::Status status;
  {
    MutexLock lock(&mu_);
    if (closed_ && !close_status_.has_value()) {
      close_waiters_.push_back(std::move(done));
      return;
    }
    status = closed_ ? *close_status_
                     : absl::FailedPreconditionError(absl::StrCat("run \"", run_id_, "\" is open"));
  }
  std::move(done)(std::move(status));
}

v1::RunInfo Run::Info() const {
  v1::RunInfo info;
  info.set_run_id(run_id_);
  info.set_run_path(run_id_);
  MutexLock lock(&mu_);
  info.set_open(!closed_);
  for (const auto& [key, value] : labels_) (*info.mutable_labels())[key] = value;
  info.set_records_written(records_written_);
  info.set_records_rejected(records_rejected_);
  info.set_batches_duplicate(batches_duplicate_);
  info.set_bytes_written(bytes_written_);
  info.set_writers(static_cast<uint32_t>(writers_.size()));
  info.set_files(files_);
  if (!sticky_error_.ok()) info.set_last_error(std::string(sticky_error_.message()));
  reductions_.AddTo(info);
  return info;
}

std::map<std::string, uint64_t> Run::WriterSequences() {
  std::map<std::string, uint64_t> sequences;
  MutexLock lock(&mu_);
  for (auto& [id, writer] : writers_) {
    const uint64_t reported =
        context_.node_reduce ? context_.node_reduce->CapReported(run_id_, id, writer.written)
                             : writer.written;
    sequences[id] = reported;
    // Whoever asked, the writer learns no less than this when it reopens.
    writer.contract.NoteReported(reported);
  }
  return sequences;
}

bool Run::open() const {
  MutexLock lock(&mu_);
  return !closed_;
}

bool Run::has_unflushed() const {
  MutexLock lock(&mu_);
  return unflushed_ || !sticky_error_.ok();
}

bool Run::sync_due(absl::Time now) const {
  const EventFileOptions& file = context_.options->file;
  if (file.sync != SyncPolicy::kInterval) return false;  // kOnFlush: every flush syncs
  MutexLock lock(&mu_);
  return now - unsynced_since_ >= file.sync_interval;
}

void Run::Enqueue(std::unique_ptr<Entry> entry) { queue_.push_back(std::move(entry)); }

void Run::MaybeScheduleWriter(bool first) {
  if (writing_ || queue_.empty() || !queue_.front()->ready) return;
  writing_ = true;
  auto write = [self = shared_from_this()] { self->WriteGroups(); };
  if (first) {
    context_.workers->SubmitFirst(std::move(write));
  } else {
    context_.workers->Submit(std::move(write));
  }
}

void Run::ConvertBatch(Entry* entry) {
  // The records' payloads are dropped as they are converted; the batch's
  // charge (message + conversion estimate) becomes what it now holds.
  const bool large = TensorBytes(entry->request) >= kLargeBatchTensorBytes;
  BatchConversion conversion =
      context_.converter->ConvertBatch(entry->request, entry->receive_time, &entry->stream_tags);
  entry->converted = std::move(conversion.converted);
  for (const auto& converted : entry->converted) {
    if (!converted.ok()) continue;
    for (const std::string& warning : converted->warnings) {
      spdlog::debug("run={} writer={} {}", run_id_, entry->request.writer_id(), warning);
    }
  }
  context_.budget->Settle(entry->charged_bytes, conversion.held_bytes);
  entry->charged_bytes = conversion.held_bytes;
  MutexLock lock(&mu_);
  entry->ready = true;
  MaybeScheduleWriter(/*first=*/large);
}


}  // namespace tblog::daemon
