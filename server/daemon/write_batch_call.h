// The unary WriteBatch call under the ByteBudget (byte_budget.h).
//
// gRPC has read the whole message before the handler runs, so unlike a Write
// stream a unary call cannot be held back before its bytes arrive. Its batch
// is charged (message + conversion estimate) at once when that fits the
// budget and nobody waits before it. Otherwise the call is parked, no thread
// blocked, in the budget's queue with the streams waiting to read (first come,
// first served), until the charge fits; its message, already in memory,
// counts as waiting bytes meanwhile. A call that is still parked after
// kMaxUnaryWait (or its deadline, or its cancellation) ends with
// RESOURCE_EXHAUSTED (DEADLINE_EXCEEDED, CANCELLED) and nothing written; a
// call that would bring the waiting bytes past a quarter of the budget is
// refused at once with RESOURCE_EXHAUSTED (one call may always wait, however
// large, so that a batch larger than the quarter is not refused forever). Both are transient: clients retry
// with backoff (tblog.proto, "Retries").
#ifndef TBLOG_DAEMON_WRITE_BATCH_CALL_H_
#define TBLOG_DAEMON_WRITE_BATCH_CALL_H_

#include <memory>
#include <optional>

#include "absl/time/time.h"
#include "daemon/rejection_log.h"
#include "daemon/run.h"
#include "daemon/writer_binding.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/server_context.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

// WriteBatch answers a batch with rejected records with the first error's
// status; since gRPC then sends no response message, the serialized
// WriteResponse (every RecordError) is in this binary trailing metadata key.
inline constexpr char kWriteResponseTrailer[] = "tblog-write-response-bin";

// How long a parked WriteBatch call waits for budget room at most (the budget
// expires it at the daemon's next flush tick after that).
inline constexpr absl::Duration kMaxUnaryWait = absl::Seconds(30);

// Starts a WriteBatch call whose request was validated and whose run was
// found; returns its reactor, which finishes the call once the batch is
// written (or refused). The call takes the contents of `*request` (gRPC built
// it, non-const, in the call's arena and reads it no more). `context`,
// `request` and `response` are gRPC's, valid until the call is done;
// `run_context`'s parts and `log` outlive the call. `claim` (if any) holds
// the batch's writer id (writer_binding.h) until the call finishes.
grpc::ServerUnaryReactor* StartWriteBatch(grpc::CallbackServerContext* context,
                                          const v1::WriteRequest* request,
                                          v1::WriteResponse* response, std::shared_ptr<Run> run,
                                          const RunContext& run_context, RejectionLog* log,
                                          std::optional<WriterClaim> claim);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_WRITE_BATCH_CALL_H_
