// One client Write stream forwarded to the upstream tblogd as one upstream
// Write stream (upstream mode; upstream_service.h says what the hop
// guarantees). Each message the client sends is parsed (a message that does
// not parse ends the stream with INVALID_ARGUMENT, malformed_requests.h) and
// sent upstream unchanged: same run_id, writer_id and sequence. Each upstream
// WriteResponse goes back to the client unchanged, in order. The client's
// stream ends with the upstream stream's status (RelayedStatus), once every
// response before it has been sent.
//
// Flow control (budgeted_read.h): one message at a time. The next message is
// read only after the previous one was handed to the upstream stream (its
// write completed) and a ByteBudget reservation for it was granted, so the
// memory a stream holds is one message plus what gRPC buffers. A message is
// charged as it is (it is not converted here) until its write completes.
//
// Threads: gRPC's callback threads run both reactors' reactions, possibly at
// once; mu_ (BudgetedReadStream's) guards the state they share. No gRPC operation is started with
// mu_ held (Progress() decides under the lock and acts after it). The object
// deletes itself in the server's OnDone, which comes after Finish, which is
// called only once the upstream stream is done (or was never started).
#ifndef TBLOG_DAEMON_FORWARD_STREAM_H_
#define TBLOG_DAEMON_FORWARD_STREAM_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "base/sync.h"
#include "daemon/budgeted_read.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/client_callback.h"
#include "grpcpp/support/server_callback.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

class UpstreamService;

class ForwardedStream final : public BudgetedReadStream {
 public:
  // Registers with `service` (borrowed; it outlives every stream) and starts
  // the upstream stream and the first read; a refused stream (--max-streams,
  // shutdown) is finished at once.
  explicit ForwardedStream(UpstreamService* service);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // From UpstreamService::BeginShutdown: stop reading, cancel the upstream
  // stream, finish with UNAVAILABLE.
  void StopForShutdown();

 private:
  // The upstream half: its reactions call back into the stream.
  class Upstream final : public grpc::ClientBidiReactor<v1::WriteRequest, v1::WriteResponse> {
   public:
    explicit Upstream(ForwardedStream* stream) : stream_(stream) {}
    void OnReadDone(bool ok) override { stream_->OnUpstreamReadDone(ok); }
    void OnWriteDone(bool ok) override { stream_->OnUpstreamWriteDone(ok); }
    void OnDone(const grpc::Status& status) override { stream_->OnUpstreamDone(status); }

   private:
    ForwardedStream* const stream_;
  };

  void OnUpstreamReadDone(bool ok);
  void OnUpstreamWriteDone(bool ok);
  void OnUpstreamDone(const grpc::Status& status);

  // BudgetedReadStream: a message read goes upstream once the previous one
  // is written there.
  void OnMessage(Message message) override;
  bool ReadsLocked() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !StoppedLocked() && !finished_;
  }
  void ReadsOverLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { reads_done_ = true; }
  // Whether nothing more goes upstream: the client is done or gone, the
  // daemon drains, a message was bad, or the upstream stream ended.
  bool StoppedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return reads_done_ || shutdown_ || !error_.ok() || upstream_reads_over_;
  }
  // Decides under mu_, then acts: ends the upstream side once nothing more
  // goes to it, sends the next response, finishes when all is done.
  void Progress() override ABSL_LOCKS_EXCLUDED(mu_);

  UpstreamService* const service_;
  Upstream upstream_{this};
  std::unique_ptr<grpc::ClientContext> upstream_context_;
  // The read side (request_) is touched only while no client read and no
  // upstream write are in flight; the upstream read side
  // (upstream_response_) only in its own reaction; write_buffer_ only while
  // no client write is in flight.
  v1::WriteResponse upstream_response_;
  grpc::ByteBuffer write_buffer_;

  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;   // the client half-closed, or is gone
  bool client_gone_ ABSL_GUARDED_BY(mu_) = false;  // cancelled, or a write failed
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);        // a message that did not parse
  // The charge of the message being written upstream.
  size_t charged_ ABSL_GUARDED_BY(mu_) = 0;
  bool upstream_writing_ ABSL_GUARDED_BY(mu_) = false;
  // request_, from the reaction that starts an upstream write to its
  // completion on another thread (base/sync.h).
  HandOff to_upstream_;
  // The hold on the upstream call (ClientBidiReactor::AddHold) that lets this
  // stream start writes from the client's reactions; released once nothing
  // more goes upstream, which lets the upstream call complete.
  bool upstream_held_ ABSL_GUARDED_BY(mu_) = false;
  bool upstream_reads_over_ ABSL_GUARDED_BY(mu_) = false;
  bool upstream_done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status upstream_status_ ABSL_GUARDED_BY(mu_);
  // Batches sent upstream and not acknowledged yet (their sequence and
  // size), in order: the tblogd_upstream_* metrics (metrics_upstream.h).
  struct Unacked {
    uint64_t sequence = 0;
    size_t bytes = 0;
  };
  std::deque<Unacked> unacked_ ABSL_GUARDED_BY(mu_);
  // Upstream responses not yet sent to the client, serialized, in order.
  std::deque<grpc::ByteBuffer> replies_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_FORWARD_STREAM_H_
