// The gRPC edge: tblog.v1.TBLog on gRPC's callback API. Reactions never block
// and do no file I/O: they validate, charge the ByteBudget, and hand work to
// the run registry, the runs' queues and the worker pool.
#ifndef TBLOG_DAEMON_TBLOG_SERVICE_H_
#define TBLOG_DAEMON_TBLOG_SERVICE_H_

#include <atomic>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "daemon/rejection_log.h"
#include "daemon/run_owner.h"
#include "daemon/run_registry.h"
#include "daemon/shm_rings.h"
#include "daemon/write_batch_call.h"  // kWriteResponseTrailer
#include "daemon/write_batch_method.h"
#include "base/sync.h"

// gRPC's generated CallbackService overrides the callback signatures of
// methods whose sync signatures stay in the base class: hiding them is its
// design, not a mistake here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverloaded-virtual"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::daemon {

class WriteStream;

// TBLog::CallbackService with the Write stream served raw (grpc::ByteBuffer):
// the stream parses each message itself, so a message that does not parse is
// INVALID_ARGUMENT, not the end of the stream (malformed_requests.h); and
// WriteBatch served as a streamed unary method, its request read once the
// budget has room (write_batch_method.h).
using TBLogServiceBase = v1::TBLog::WithCallbackMethod_OpenRun<
    v1::TBLog::WithRawCallbackMethod_Write<WithStreamedRawCallbackMethod_WriteBatch<
        v1::TBLog::WithCallbackMethod_Flush<v1::TBLog::WithCallbackMethod_CloseRun<
            v1::TBLog::WithCallbackMethod_ListRuns<
                v1::TBLog::WithCallbackMethod_GetRun<v1::TBLog::Service>>>>>>>;

class TBLogService final : public TBLogServiceBase {
 public:
  // `registry` and `context`'s parts are borrowed: they outlive the service,
  // and the service outlives the grpc::Server that calls it. `identify`
  // names each call's caller for run ownership (run_owner.h; empty = no
  // authentication).
  TBLogService(RunRegistry* registry, RunContext context, CallerIdentityFn identify = nullptr);
  ~TBLogService() override;
  TBLogService(const TBLogService&) = delete;
  TBLogService& operator=(const TBLogService&) = delete;

  // Refuses new calls with UNAVAILABLE; open Write streams stop reading and
  // finish with UNAVAILABLE once their submitted batches are acknowledged.
  void BeginShutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until every Write stream is done, or `deadline`; false on timeout.
  bool WaitForStreams(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // Write streams open now (the tblogd_active_streams gauge).
  int ActiveStreams() const ABSL_LOCKS_EXCLUDED(mu_);
  // Turns shared memory on (WriteRequest.shm_ring): `rings` is borrowed and
  // outlives the service. Before the server serves.
  void set_shm_rings(ShmRings* rings) { shm_rings_ = rings; }

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
  friend class WriteStream;
  // While shutting down: the call's reactor, already finished UNAVAILABLE
  // (for a unary RPC to return); otherwise nullptr.
  grpc::ServerUnaryReactor* RefuseIfShuttingDown(grpc::CallbackServerContext* context);
  // A new stream counts against max_streams; false (with the status to
  // finish with) when refused.
  bool RegisterStream(WriteStream* stream, grpc::Status* refusal) ABSL_LOCKS_EXCLUDED(mu_);
  void UnregisterStream(WriteStream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  bool shutting_down() const { return shutting_down_.load(std::memory_order_acquire); }

  // The caller of `context` (run_owner.h).
  std::string Caller(const grpc::CallbackServerContext& context) const {
    return IdentifyCaller(identify_, context);
  }

  RunRegistry* const registry_;
  const RunContext context_;
  const CallerIdentityFn identify_;
  ShmRings* shm_rings_ = nullptr;  // null: no shared memory
  std::atomic<bool> shutting_down_{false};
  mutable Mutex mu_;
  std::set<WriteStream*> streams_ ABSL_GUARDED_BY(mu_);
  RejectionLog rejection_log_;  // rejected records and dropped streams, with their peers
  WriteBatchReadSizes write_batch_sizes_;  // what a WriteBatch caller's next call reserves
};
#pragma GCC diagnostic pop

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_TBLOG_SERVICE_H_
