// Run's writer: the one thread at a time that takes groups of ready entries
// off the queue and writes them (run.h). The queueing half is run.cc.
#include "daemon/run.h"

#include <algorithm>
#include <utility>
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/names.h"
#include "daemon/node_reduce.h"
#include "spdlog/spdlog.h"
#include "daemon/run_entry.h"

namespace tblog::daemon {

namespace {

v1::RecordError MakeRecordError(uint64_t sequence, int index, const v1::Record& record,
                                const absl::Status& status) {
  v1::RecordError error;
  error.set_sequence(sequence);
  error.set_index(static_cast<uint32_t>(index));
  error.set_tag(record.tag());
  error.set_code(static_cast<int32_t>(status.code()));
  error.set_message(absl::StrCat("batch ", sequence, ", record ", index, " (tag \"",
                                 EscapeForMessage(record.tag()), "\"): ", status.message()));
  return error;
}

}  // namespace

void Run::WriteGroups() {
  while (true) {
    std::vector<std::unique_ptr<Entry>> group;
    bool recovering = false;
    {
      MutexLock lock(&mu_);
      recovering = !sticky_error_.ok();
      while (!queue_.empty() && queue_.front()->ready) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (group.empty()) {
        writing_ = false;
        return;
      }
    }

    GroupResult result;
    WriteGroup(group, recovering, result);
    // What was not written goes back to the front of the queue, in order
    // (never acknowledged: the clients keep it), unless the run is closing.
    std::vector<std::unique_ptr<Entry>> requeue;
    uint64_t requeued_records_written = 0;  // the part of a batch written before the error
    if (result.stuck != GroupResult::kNone && result.close_index == GroupResult::kNone) {
      for (size_t i = result.stuck; i < group.size(); ++i) {
        if (group[i]->type == Entry::Type::kFlush) continue;
        requeued_records_written += result.records_written[i];
        requeue.push_back(std::move(group[i]));
      }
    }
    auto abandoned = [&](size_t i) {
      return result.stuck != GroupResult::kNone && result.close_index != GroupResult::kNone &&
             i >= result.stuck && i < result.close_index;
    };

    // Publish, and gather the acks to send once the lock is dropped.
    struct PendingAck {
      std::shared_ptr<AckSink> sink;
      v1::WriteResponse response;
      int completed = 0;
    };
    std::map<AckSink*, PendingAck> acks;
    size_t release_bytes = 0;
    bool stop = false;  // entries wait for the I/O error to clear
    {
      MutexLock lock(&mu_);
      records_written_ += requeued_records_written;
      std::vector<std::string> touched;
      for (size_t i = 0; i < group.size(); ++i) {
        if (group[i] == nullptr) continue;  // requeued
        Entry& entry = *group[i];
        if (entry.type != Entry::Type::kBatch && entry.type != Entry::Type::kDuplicate) continue;
        WriterState& writer = writers_[entry.request.writer_id()];
        if (entry.type == Entry::Type::kBatch) {
          if (!abandoned(i)) writer.written = std::max(writer.written, entry.request.sequence());
          records_written_ += result.records_written[i];
          records_rejected_ += entry.errors.size();
          if (result.records_written[i] > 0) unflushed_ = true;
        }
        touched.push_back(entry.request.writer_id());
      }
      for (const auto& entry : group) {
        if (entry != nullptr && entry->type == Entry::Type::kEvents) unflushed_ = true;
      }
      // Whatever this group wrote waits for an fsync from now on (sync_due).
      if (unflushed_ && unsynced_since_ == absl::InfiniteFuture()) unsynced_since_ = absl::Now();
      for (size_t i = 0; i < group.size(); ++i) {
        if (!abandoned(i) || group[i]->type != Entry::Type::kBatch) continue;
        spdlog::warn("run={} closing with I/O error: batch {} of writer {} not written; the "
                     "writer resends it to the reopened run",
                     run_id_, group[i]->request.sequence(), group[i]->request.writer_id());
      }
      if (result.flushed) {
        unflushed_ = false;
        for (auto& [id, writer] : writers_) {
          const bool advanced = writer.flushed != writer.written ||
                                (result.durable && writer.durable != writer.written);
          writer.flushed = writer.written;
          if (result.durable) writer.durable = writer.written;
          if (advanced) touched.push_back(id);
        }
        if (result.durable) unsynced_since_ = absl::InfiniteFuture();
      }
      context_.metrics->event_bytes_written.fetch_add(result.bytes_written - bytes_written_,
                                                      std::memory_order_relaxed);
      bytes_written_ = result.bytes_written;
      files_ = result.files;
      if (!result.io_error.ok()) {
        if (sticky_error_.ok()) {
          spdlog::error("run={} I/O error, writes refused until a flush succeeds: {}", run_id_,
                        std::string(result.io_error.message()));
        }
        sticky_error_ = result.io_error;
        context_.metrics->io_errors.fetch_add(1, std::memory_order_relaxed);
      } else if ((result.flushed || result.recovered) && !sticky_error_.ok()) {
        spdlog::info("run={} recovered from I/O error: {}", run_id_,
                     std::string(sticky_error_.message()));
        sticky_error_ = absl::OkStatus();
      }
      auto fill = [this](v1::WriteResponse& response, const std::string& writer_id,
                         const WriterState& writer) {
        response.set_written_sequence(writer.written);
        response.set_durable_sequence(writer.durable);
        response.set_flushed_sequence(writer.flushed);
        if (context_.node_reduce) context_.node_reduce->Cap(run_id_, writer_id, response);
      };
      for (size_t i = 0; i < group.size(); ++i) {
        if (group[i] == nullptr) continue;  // requeued
        Entry& entry = *group[i];
        if (entry.type != Entry::Type::kBatch && entry.type != Entry::Type::kDuplicate) continue;
        release_bytes += entry.charged_bytes;
        // Held by partials not yet acknowledged upstream: NodeReduce acks it.
        const bool deferred =
            context_.node_reduce && entry.request.sequence() != 0 &&
            context_.node_reduce->Defer(run_id_, entry.request.writer_id(), entry.request.sequence());
        if (!entry.sink) continue;
        PendingAck& ack = acks[entry.sink.get()];
        ack.sink = entry.sink;
        if (!deferred) ++ack.completed;
        fill(ack.response, entry.request.writer_id(), writers_[entry.request.writer_id()]);
        if (deferred) {
          for (auto& error : entry.errors) *ack.response.add_errors() = std::move(error);
          continue;
        }
        if (entry.type == Entry::Type::kBatch) {
          for (auto& error : entry.errors) *ack.response.add_errors() = std::move(error);
        } else {
          ack.response.add_duplicate_sequences(entry.request.sequence());
        }
      }
      // Requeued entries wait for the next attempt: the flusher's next tick
      // while the error lasts (has_unflushed() stays true), or at once once
      // it cleared.
      for (auto it = requeue.rbegin(); it != requeue.rend(); ++it) {
        queue_.push_front(std::move(*it));
      }
      // Stop only when nothing arrived behind them while we wrote: a flush or
      // close enqueued meanwhile found writing_ set and relies on this loop
      // (without a flusher tick it would wait forever). Batches are refused
      // while the error lasts, so this goes round at most once more.
      if (!requeue.empty() && !sticky_error_.ok() && queue_.size() == requeue.size()) {
        writing_ = false;
        stop = true;
      }
      for (const std::string& id : touched) {
        const WriterState& writer = writers_[id];
        std::shared_ptr<AckSink> subscriber = writer.subscriber.lock();
        if (!subscriber || acks.count(subscriber.get()) > 0) continue;
        PendingAck& ack = acks[subscriber.get()];
        ack.sink = std::move(subscriber);
        fill(ack.response, id, writer);
      }
    }

    if (release_bytes > 0) {
      context_.budget->Release(release_bytes);
    }
    for (auto& [key, ack] : acks) ack.sink->OnAck(std::move(ack.response), ack.completed);
    for (size_t i = 0; i < group.size(); ++i) {
      if (group[i] != nullptr && group[i]->done) std::move(group[i]->done)(result.status[i]);
    }
    if (stop) return;
  }
}

void Run::WriteGroup(std::vector<std::unique_ptr<Entry>>& group, bool recovering,
                     GroupResult& result) {
  result.records_written.assign(group.size(), 0);
  result.status.assign(group.size(), absl::OkStatus());
  bool flush = false;
  bool sync = false;
  bool close = false;
  const absl::Time start = absl::Now();
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i]->type == Entry::Type::kClose) {
      result.close_index = i;
      break;
    }
  }
  if (recovering) {
    // Retry after an I/O error: the files must take data again first (each
    // writer carries what it still buffers into a fresh file).
    bool synced = false;
    result.io_error = run_files_.FlushAll(/*sync=*/false, &synced);
    if (result.io_error.ok()) {
      result.recovered = true;
    } else {
      result.stuck = 0;
    }
  }
  for (size_t i = 0; i < group.size() && result.stuck == GroupResult::kNone; ++i) {
    Entry& entry = *group[i];
    switch (entry.type) {
      case Entry::Type::kBatch: {
        const uint64_t sequence = entry.request.sequence();
        for (int j = entry.next_record; j < entry.request.records_size(); ++j) {
          entry.next_record = j;
          const v1::Record& record = entry.request.records(j);
          auto& converted = entry.converted[static_cast<size_t>(j)];
          if (converted.ok() && converted->contribution != nullptr) {
            // Merged once: the result (kept value, completed point) replaces it.
            converted = context_.node_reduce
                            ? context_.node_reduce->Take(run_id_, entry.request.writer_id(),
                                                         sequence, /*resent=*/false, entry.sink,
                                                         *std::move(converted))
                            : reductions_.Absorb(entry.request.writer_id(),
                                                 *std::move(converted), absl::Now());
          }
          bool io = false;
          absl::Status status =
              converted.ok()
                  ? run_files_.WriteParts(*converted, &entry.next_part, &io,
                                          BatchKey{entry.request.writer_id(), sequence})
                  : converted.status();
          if (io) {
            result.io_error = status;
            result.stuck = i;
            break;
          }
          entry.next_part = 0;
          if (status.ok()) {
            ++result.records_written[i];
            context_.metrics->AddWritten(record);
          } else {
            context_.metrics->AddRejected(run_id_, status.code());
            entry.errors.push_back(MakeRecordError(sequence, j, record, status));
          }
        }
        if (result.stuck == i) break;
        entry.next_record = entry.request.records_size();
        if (sequence != 0) run_files_.NoteBatchWritten(entry.request.writer_id(), sequence);
        if (entry.request.flush() != v1::FLUSH_MODE_NONE) flush = true;
        if (entry.request.flush() == v1::FLUSH_MODE_SYNC) sync = true;
        context_.metrics->batches_written.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      case Entry::Type::kDuplicate:
        // Converted only for a node forwarding reductions: the contributions
        // go upstream again (the upstream drops what it has); nothing is
        // written.
        for (auto& converted : entry.converted) {
          if (converted.ok() && converted->contribution != nullptr) {
            (void)context_.node_reduce->Take(run_id_, entry.request.writer_id(),
                                             entry.request.sequence(), /*resent=*/true,
                                             entry.sink, *std::move(converted));
          }
        }
        entry.converted.clear();
        break;
      case Entry::Type::kEvents: {
        if (entry.take_due_reductions) {
          entry.take_due_reductions = false;
          entry.events = reductions_.TakeDue(absl::Now());
          MutexLock lock(&mu_);
          due_reductions_queued_ = false;
        }
        bool io = false;
        result.status[i] = run_files_.WriteParts(entry.events, &entry.next_part, &io);
        if (io) {
          result.io_error = result.status[i];
          result.stuck = i;
        }
        break;
      }
      case Entry::Type::kFlush:
        flush = true;
        sync = sync || entry.sync;
        break;
      case Entry::Type::kClose:
        break;  // below
    }
  }
  if (result.stuck != GroupResult::kNone) {
    // Nothing from the stuck entry on is flushed now: flushes among them fail
    // (the others are retried, or given up by a close).
    flush = false;
    for (size_t i = result.stuck; i < group.size(); ++i) {
      if (group[i]->type == Entry::Type::kFlush || group[i]->type == Entry::Type::kEvents) {
        result.status[i] = absl::UnavailableError(absl::StrCat(
            "run \"", run_id_, "\" cannot write: ", result.io_error.message(), "; retrying"));
      }
    }
  }
  if (result.close_index != GroupResult::kNone) {
    Entry& entry = *group[result.close_index];
    if (entry.next_part == 0) {  // the pending reduced points, before the session end
      Converted points = reductions_.TakeAll(absl::Now());
      for (EventOut& event : entry.events.events) points.events.push_back(std::move(event));
      entry.events.events = std::move(points.events);
    }
    bool io = false;
    result.status[result.close_index] = run_files_.WriteParts(entry.events, &entry.next_part, &io);
    if (io && result.io_error.ok()) result.io_error = result.status[result.close_index];
    flush = sync = close = true;
  }

  if (!flush && result.stuck == GroupResult::kNone) {
    // A batch acknowledged as written is in the files (written_sequence):
    // visible to TensorBoard at once and safe from a kill of the daemon, so a
    // client that forgets it then loses nothing. Batching comes from the
    // group (whatever queued while the last one was written); fsync and the
    // checkpoint stay with the flusher's ticks.
    if (absl::Status status = run_files_.WriteOutAll(); !status.ok() && result.io_error.ok()) {
      result.io_error = status;
    }
  }
  if (flush) {
    bool durable = false;
    absl::Status status = run_files_.FlushAll(sync, &durable);
    // After the flush, so the lengths it records are in the files.
    if (status.ok()) {
      status = run_files_.WriteCheckpoint(durable, reductions_.WrittenSteps(),
                                          reductions_.PendingRecords());
    }
    if (status.ok()) context_.metrics->checkpoint_writes.fetch_add(1, std::memory_order_relaxed);
    result.flushed = status.ok();
    result.durable = status.ok() && durable;
    if (!status.ok() && result.io_error.ok()) result.io_error = status;
    for (size_t i = 0; i < group.size(); ++i) {
      if (group[i]->type == Entry::Type::kFlush || group[i]->type == Entry::Type::kClose) {
        if (result.status[i].ok()) result.status[i] = status;
      }
    }
    context_.metrics->AddFlush(absl::Now() - start);
  }
  if (close) {
    const absl::Status status = run_files_.CloseAll();
    for (size_t i = 0; i < group.size(); ++i) {
      if (group[i]->type == Entry::Type::kClose && result.status[i].ok()) result.status[i] = status;
    }
  }
  const RunFileTotals totals = run_files_.Totals();
  result.bytes_written = totals.bytes_written;
  result.files = totals.files;
}

}  // namespace tblog::daemon
