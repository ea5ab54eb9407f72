// Upstream mode's gRPC edge (README "Upstream mode"): tblog.v1.TBLog served
// by forwarding every call to the upstream tblogd, which writes the runs.
// This daemon is then a writer of the upstream like any client:
//   - OpenRun, WriteBatch, Flush, CloseRun, ListRuns and GetRun go upstream
//     as they are, with this daemon's credentials (upstream_channel.h), and
//     their answers (and the WriteBatch trailer) come back unchanged.
//   - Each Write stream is forwarded as one upstream Write stream
//     (forward_stream.h): every client batch keeps its writer_id and sequence
//     number, and the upstream's acks (written, durable, flushed, duplicates,
//     record errors) come back to the client as they are. A client's ack
//     thus means "in the upstream's files", the client keeps what is not
//     acknowledged, and after a restart of either daemon it resends from what
//     OpenRun reports (forwarded too): the upstream drops what it already
//     has, so nothing is lost or written twice across the hop. This daemon
//     keeps no copy, so a restart of it loses nothing.
//   - Flow control: a stream's next message is read only once the previous
//     one was handed to the upstream and the in-flight budget has room
//     (byte_budget.h); a WriteBatch call's request only once the budget has
//     room, and its charge is held until the upstream answers. So a slow upstream slows the clients down and this
//     daemon's memory stays within --max-inflight-bytes plus the transports'
//     buffers. While the upstream is down, calls fail with UNAVAILABLE
//     (naming the upstream) and the clients retry with backoff: they block
//     once their own buffers are full, and resume when it is back.
// Run ownership and tokens are the upstream's: there, every client of this
// daemon is this daemon's identity; this daemon's own --auth-token-file and
// TLS still decide who may call it.
#ifndef TBLOG_DAEMON_UPSTREAM_SERVICE_H_
#define TBLOG_DAEMON_UPSTREAM_SERVICE_H_

#include <atomic>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "daemon/byte_budget.h"
#include "daemon/metrics_upstream.h"
#include "daemon/write_batch_call.h"
#include "daemon/write_batch_method.h"

// gRPC's generated CallbackService hides the sync signatures by design (see
// tblog_service.h); the warning points into the generated header, so the
// pragma covers its inclusion.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverloaded-virtual"
#include "tblog/v1/tblog.grpc.pb.h"
#include "daemon/upstream_channel.h"


namespace tblog::daemon {

class ForwardedStream;

// The Write stream served raw and WriteBatch as a streamed unary method, as
// TBLogService serves them: both read their requests only once this
// daemon's in-flight budget has room (forward_stream.h,
// forward_write_batch.h).
using UpstreamServiceBase = v1::TBLog::WithCallbackMethod_OpenRun<
    v1::TBLog::WithRawCallbackMethod_Write<WithStreamedRawCallbackMethod_WriteBatch<
        v1::TBLog::WithCallbackMethod_Flush<v1::TBLog::WithCallbackMethod_CloseRun<
            v1::TBLog::WithCallbackMethod_ListRuns<
                v1::TBLog::WithCallbackMethod_GetRun<v1::TBLog::Service>>>>>>>;

class UpstreamService final : public UpstreamServiceBase {
 public:
  // `channel` and `budget` are borrowed and outlive the service, which
  // outlives the grpc::Server that calls it. `max_streams` and
  // `max_message_bytes` are the daemon's limits (options.h).
  UpstreamService(UpstreamChannel* channel, ByteBudget* budget, int max_streams,
                  size_t max_message_bytes);
  ~UpstreamService() override;
  UpstreamService(const UpstreamService&) = delete;
  UpstreamService& operator=(const UpstreamService&) = delete;

  // Refuses new calls with UNAVAILABLE and ends the forwarded streams with
  // UNAVAILABLE (their clients resend what the upstream has not acknowledged).
  void BeginShutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until every Write stream is done, or `deadline`; false on timeout.
  bool WaitForStreams(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // Forwarded Write streams open now (the tblogd_active_streams gauge).
  int ActiveStreams() const ABSL_LOCKS_EXCLUDED(mu_);
  // The tblogd_upstream_* metrics (thread-safe), counted by the forwarded
  // streams and calls.
  UpstreamMetrics& metrics() { return metrics_; }

  grpc::ServerUnaryReactor* OpenRun(grpc::CallbackServerContext* context,
                                    const v1::OpenRunRequest* request,
                                    v1::OpenRunResponse* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Write(
      grpc::CallbackServerContext* context) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* WriteBatch(grpc::CallbackServerContext* context,
                                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Flush(grpc::CallbackServerContext* context,
                                  const v1::FlushRequest* request,
                                  v1::FlushResponse* response) override;
  grpc::ServerUnaryReactor* CloseRun(grpc::CallbackServerContext* context,
                                     const v1::CloseRunRequest* request,
                                     v1::CloseRunResponse* response) override;
  grpc::ServerUnaryReactor* ListRuns(grpc::CallbackServerContext* context,
                                     const v1::ListRunsRequest* request,
                                     v1::ListRunsResponse* response) override;
  grpc::ServerUnaryReactor* GetRun(grpc::CallbackServerContext* context,
                                   const v1::GetRunRequest* request,
                                   v1::RunInfo* response) override;

 private:
  friend class ForwardedStream;
  // Forwards one unary call: `call(async, client_context, done)` starts it on
  // the upstream stub; the upstream's status (and the WriteBatch trailer)
  // finishes the client's call.
  template <typename Call>
  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* context, Call call);
  // A new stream counts against max_streams; false (with the status to
  // finish with) when refused.
  bool RegisterStream(ForwardedStream* stream, grpc::Status* refusal) ABSL_LOCKS_EXCLUDED(mu_);
  void UnregisterStream(ForwardedStream* stream) ABSL_LOCKS_EXCLUDED(mu_);

  UpstreamChannel* const channel_;
  ByteBudget* const budget_;
  const int max_streams_;
  const size_t max_message_bytes_;
  WriteBatchReadSizes write_batch_sizes_;  // forwarded WriteBatch calls' reservations
  UpstreamMetrics metrics_;
  std::atomic<bool> shutting_down_{false};
  mutable Mutex mu_;
  std::set<ForwardedStream*> streams_ ABSL_GUARDED_BY(mu_);
};

// The status a forwarded call ends with: the upstream's, except that a
// failure to reach the upstream (UNAVAILABLE, DEADLINE_EXCEEDED) names it
// ("upstream tblogd <address>: ..."), so a client's log says which hop failed.
// The code is kept, so clients retry exactly as they would talking to it.
grpc::Status RelayedStatus(const grpc::Status& upstream, const std::string& address);

}  // namespace tblog::daemon

#pragma GCC diagnostic pop

#endif  // TBLOG_DAEMON_UPSTREAM_SERVICE_H_
