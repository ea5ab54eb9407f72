// RecordStream: the engine behind tblog::Writer. It buffers records, cuts
// them into sequenced batches, streams the batches to tblogd on one Write
// stream, keeps each batch until the daemon acknowledges it, and after a
// broken stream or a daemon restart reconnects (OpenRun RESUME) and resends
// what was not acknowledged. It knows nothing of record kinds: the Writer
// facade (writer.cc) builds the v1::Records and hands them over; the Writer
// owns its RecordStream (as Writer::Impl) and outlives its threads.
//
// Contract:
//   - Sequence numbers are assigned when a batch is sealed, consecutive from
//     1 (or after what the daemon already has of this writer_id). A sealed
//     batch stays in `unacked_` until acknowledged at options.retain_until;
//     a reconnect resends everything after the acknowledged sequence, and the
//     daemon drops what it already wrote: each record is written once, in
//     the order of the calls.
//   - Flush() seals a batch carrying FLUSH_MODE, so it is ordered with the
//     data, and waits for the daemon's flushed_sequence; Close() seals what
//     is left, waits up to close_timeout for the acks, ends the stream and
//     (options.close_run) the run.
//   - Errors are values: a rejected record or a failure that is not retried
//     becomes status() (the first one); a non-retried failure is sticky and
//     fails later calls. Which gRPC codes are retried is written once, in
//     proto/tblog/v1/tblog.proto ("Retries", on service TBLog).
//   - The buffer (open batch + unacknowledged batches) is bounded by
//     max_buffer_bytes; a full buffer blocks or drops (OverflowPolicy).
//
// Threads and locks:
//   - Any number of caller threads use the public methods. The record path
//     (AddScalar, AddRecord) takes mu_ once and never waits on I/O (only,
//     under kBlock, for buffer room): it appends to the BatchBuilder and, at
//     max_batch_bytes, seals a batch. It wakes the sender only when its
//     record starts a batch while none is in flight (InFlightLocked): then
//     the record goes out at once; otherwise the reader's ack wakes it.
//   - One sender thread (started by Start, joined by Close or the
//     destructor) owns the channel and the blocking calls: OpenRun, the
//     Write stream's writes, Flush after a reconnect, CloseRun. It holds no
//     lock across a call; it writes a sealed request unlocked, sharing it
//     through a shared_ptr with the reader, which may acknowledge it meanwhile.
//   - One reader thread per stream (spawned and joined by the sender) applies
//     the daemon's WriteResponses under mu_.
//   - mu_ guards all the shared state below. wake_mu_ (taken after mu_)
//     guards only the sender's wake-up flag: the sender sleeps on it rather
//     than on a condition of mu_, so that a record call's unlock does not
//     evaluate the sender's condition (absl's slow unlock path).
#ifndef TBLOG_CLIENT_RECORD_STREAM_H_
#define TBLOG_CLIENT_RECORD_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "batch_builder.h"
#include "shm_ring.h"
#include "tensor_buffer_pool.h"
#include "tblog/client.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog {

// Whether a failed call or stream is tried again (backoff, reconnect,
// resume, resend) rather than ending the writer: the transient codes listed
// in tblog.proto ("Retries", on service TBLog). Python's _RETRYABLE
// (client/python/tblog/_stream.py) is the same set. A Write stream that ends
// NOT_FOUND is reopened too (a few times in a row), as the proto says.
bool IsRetryable(absl::StatusCode code);

// A gRPC status as an absl::Status, its message prefixed with `context`.
absl::Status FromGrpc(const grpc::Status& status, std::string_view context);

class RecordStream {
 public:
  // Creates the channel; starts nothing. options must have non-zero
  // max_batch_bytes and max_buffer_bytes (Writer::Open checks).
  explicit RecordStream(WriterOptions options);
  // Close(SUCCESS) if the sender runs: flushes, then joins the threads.
  ~RecordStream();
  RecordStream(const RecordStream&) = delete;
  RecordStream& operator=(const RecordStream&) = delete;

  // Starts the sender; unless open_in_background, waits for the first
  // OpenRun and returns its error (the sender has then exited). Call once.
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);

  // The record path. Each reserves room (ReserveLocked: may block under
  // kBlock, or return RESOURCE_EXHAUSTED under kDropNewest), appends, and
  // returns OK; FAILED_PRECONDITION after Close; the sticky error after a
  // fatal one. `bytes` is record.ByteSizeLong(), computed by the caller
  // before the lock.
  absl::Status AddScalar(std::string_view tag, std::string_view subrun, int64_t step, float value,
                         double wall_time) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status AddRecord(v1::Record&& record, size_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  // The barrier of Writer::flush: waits until the daemon reports the flush
  // batch done; returns status().
  absl::Status Flush(bool sync) ABSL_LOCKS_EXCLUDED(mu_);
  // Writer::close: idempotent; a second caller waits for the first.
  absl::Status Close(v1::SessionStatus status) ABSL_LOCKS_EXCLUDED(mu_);

  // A buffer of at least `bytes` capacity from the tensors of acknowledged
  // batches, or an empty string (see TensorBufferPool).
  std::string TakeSpareBuffer(size_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  // The shared-memory ring, once the sender has made it (null before, or
  // without shared memory: ShmRing::SocketFor). Lives as long as this.
  ShmRing* shm_ring() const { return ring_view_.load(std::memory_order_acquire); }
  // shm_ring() for a tensor of `bytes`; when there is no ring yet and the
  // tensor is large, asks the sender to make one (RunStream), so that only
  // writers that log large tensors pay for a ring. Lock-free, except for a
  // tensor too large to travel as bytes (more than max_record_bytes), which
  // has no other way than the ring: ShmRingForOversize.
  ShmRing* ShmRingFor(size_t bytes) {
    if (bytes > max_record_bytes()) return ShmRingForOversize(bytes);
    ShmRing* ring = shm_ring();
    if (ring == nullptr && bytes >= ShmRing::kMinSliceBytes) {
      size_t wanted = ring_wanted_.load(std::memory_order_relaxed);
      while (wanted < bytes &&
             !ring_wanted_.compare_exchange_weak(wanted, bytes, std::memory_order_relaxed)) {
      }
    }
    return ring;
  }

  // Asks the sender to make the ring, or grow it to hold a tensor of
  // `bytes` (ShmRing::WantGrowthFor), and waits until it has tried, at most
  // kOversizeRingWait: the ring then, or null. Only for a tensor that
  // cannot travel as bytes.
  ShmRing* ShmRingForOversize(size_t bytes) ABSL_LOCKS_EXCLUDED(mu_, ring_mu_);
  static constexpr absl::Duration kOversizeRingWait = absl::Seconds(5);
  // Why a tensor did not go through the ring, for the error that refuses it.
  std::string ShmMissReason() const;

  // Whether a record call waits (bounded) for room in a full ring rather
  // than send bytes: under OverflowPolicy::kBlock only.
  bool shm_waits_for_room() const { return options_.overflow == OverflowPolicy::kBlock; }

  absl::Status status() const ABSL_LOCKS_EXCLUDED(mu_);
  WriterStats stats() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string run_id() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string run_path() const ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& writer_id() const { return writer_id_; }
  v1::ScalarStyle scalar_style() const { return options_.scalar_style; }
  // The largest record a record call accepts: WriterOptions::
  // max_record_bytes, or less when the daemon's --max-message-size
  // (OpenRunResponse.max_message_bytes) is smaller (LearnMessageLimit).
  size_t max_record_bytes() const { return max_record_bytes_.load(std::memory_order_relaxed); }

 private:
  using Stream = grpc::ClientReaderWriter<v1::WriteRequest, v1::WriteResponse>;
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
  void HandleResponseLocked(const v1::WriteResponse& response) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetFatalLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds `base` to every sequence number, sent batches having none yet.
  void RebaseLocked(uint64_t base) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasUnsentLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !unacked_.empty() && unacked_.back().sequence > sent_through_;
  }
  // A batch was sent on this stream and not yet acknowledged as written: the
  // next one waits (gathering records) until then or batch_delay.
  bool InFlightLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return sent_through_ > written_;
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
  void ReadLoop(Stream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status CloseRun() ABSL_LOCKS_EXCLUDED(mu_);
  // CloseRun, tried again on a fresh channel after the reconnect backoff
  // while the daemon is unreachable or slow (UNAVAILABLE, DEADLINE_EXCEEDED:
  // restarting), until close_timeout cancels it (abort_). A daemon that
  // answers NOT_FOUND to a try after the first was restarted and holds
  // nothing of this writer: released.
  absl::Status CloseRunRetrying() ABSL_LOCKS_EXCLUDED(mu_);
  // At the start of each Write stream, and within one once a large tensor
  // asked for a ring (sender thread): makes the ring the first time it is
  // wanted and hands it to the daemon (record_stream_shm.cc). The token for
  // the stream's WriteRequest.shm_ring, or "" when the stream goes without
  // one (its batches' slices are then sent as bytes: ShmRing::Inline).
  std::string AttachRing() ABSL_LOCKS_EXCLUDED(mu_);
  // Within a stream whose ring is attached (sender thread): grows the ring
  // when a tensor asked (ShmRing::growth_wanted; record_stream_shm.cc).
  void GrowRingIfWanted() ABSL_LOCKS_EXCLUDED(mu_);
  // Runs call(&context), a unary RPC on stub_, with the rpc_timeout deadline
  // and registered as the active call (sender thread only).
  template <typename Call>
  grpc::Status CallUnary(const Call& call) ABSL_LOCKS_EXCLUDED(mu_);
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
  // Sender thread only (NewChannel replaces them): the stub, or why the
  // channel could not be made (TLS files), which Connect() returns.
  std::unique_ptr<v1::TBLog::Stub> stub_;
  absl::Status channel_status_;
  std::thread sender_;
  // Sender thread only: Write streams in a row that ended NOT_FOUND (the
  // daemon did not know the run) with no batch acknowledged; each is followed
  // by a reopen (RESUME), and past kMaxRunNotFoundInARow the writer fails
  // with that status.
  static constexpr int kMaxRunNotFoundInARow = 3;
  int stream_run_not_found_ = 0;

  mutable Mutex mu_;
  BatchBuilder builder_ ABSL_GUARDED_BY(mu_);
  absl::Time batch_started_ ABSL_GUARDED_BY(mu_);
  std::deque<SealedBatch> unacked_ ABSL_GUARDED_BY(mu_);
  size_t unacked_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t sequence_base_ ABSL_GUARDED_BY(mu_) = 0;  // see RebaseLocked
  uint64_t sent_through_ ABSL_GUARDED_BY(mu_) = 0;   // on the current stream
  uint64_t ever_sent_through_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t durable_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t flushed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t flush_wanted_through_ ABSL_GUARDED_BY(mu_) = 0;  // highest sequence a flush() waits on
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;
  // The blocking call in progress on the sender (borrowed: it lives on the
  // sender's stack and is unregistered before it goes).
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
  // Tensor buffers of acknowledged batches, for TakeSpareBuffer.
  TensorBufferPool spare_buffers_ ABSL_GUARDED_BY(mu_);
  // The shared-memory ring: made by the sender (AttachRing) and then
  // published in ring_view_ for the record path and the reader; destroyed
  // with this. ring_failed_ (set by the sender): making it failed, never
  // retried.
  std::unique_ptr<ShmRing> ring_;
  std::atomic<ShmRing*> ring_view_{nullptr};
  // The largest tensor ShmRingFor saw before the ring was made (0: none).
  std::atomic<size_t> ring_wanted_{0};
  std::atomic<bool> ring_failed_{false};
  // ShmRingForOversize's call to the sender, which wakes for it and, once
  // it has tried to make or grow the ring (RingTried), counts ring_tries_.
  std::atomic<bool> ring_urgent_{false};
  Mutex ring_mu_ ABSL_ACQUIRED_AFTER(mu_);
  uint64_t ring_tries_ ABSL_GUARDED_BY(ring_mu_) = 0;
  void RingTried() ABSL_LOCKS_EXCLUDED(ring_mu_);

  // What the daemon's --max-message-size leaves for a request's records
  // (LearnMessageLimitLocked; 63 MiB until known): record calls refuse a
  // larger record (max_record_bytes_, at most this), a batch is sealed
  // before a record would take it past this, and at batch_limit_.
  size_t message_room_ ABSL_GUARDED_BY(mu_) = (size_t{64} << 20) - (size_t{1} << 20);
  std::atomic<size_t> max_record_bytes_{0};
  size_t batch_limit_ ABSL_GUARDED_BY(mu_) = 0;
  void LearnMessageLimitLocked(uint64_t max_message_bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The sender's wake-up flag (see WaitForWake), set after the state change.
  Mutex wake_mu_ ABSL_ACQUIRED_AFTER(mu_);
  bool wake_ ABSL_GUARDED_BY(wake_mu_) = false;
};

}  // namespace tblog

#endif  // TBLOG_CLIENT_RECORD_STREAM_H_
