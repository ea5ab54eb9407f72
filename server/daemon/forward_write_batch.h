// A WriteBatch call a node daemon forwards upstream (upstream mode,
// upstream_service.h), under the node's own in-flight budget.
//
// The call is served as the daemon's own WriteBatch is (write_batch_call.h,
// BudgetedWriteBatch): its request is read only once the node's
// --max-inflight-bytes has room for it, parked meanwhile, so many unary
// callers through a node hold at most the budget (plus what their transports
// buffer) however large their batches. Once read and parsed it is sent
// upstream unchanged; its charge is held until the upstream answers: the
// parsed message and the copy gRPC serializes for the upstream (twice its
// size). The upstream's answer (the WriteResponse, or its status and the
// refused batch's WriteResponse trailer) goes back as it came, its status
// passed through RelayedStatus. Counted in the tblogd_upstream_* metrics.
#ifndef TBLOG_DAEMON_FORWARD_WRITE_BATCH_H_
#define TBLOG_DAEMON_FORWARD_WRITE_BATCH_H_

#include "daemon/byte_budget.h"
#include "daemon/write_batch_call.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"

namespace tblog::daemon {

class UpstreamChannel;
class UpstreamMetrics;

// Starts a forwarded WriteBatch call and returns its reactor. `channel`,
// `metrics`, `budget` and `read_sizes` are borrowed and outlive the call; `context` and
// `response` are gRPC's. A non-OK `refusal` (the node is shutting down)
// finishes the call with it, unread.
grpc::ServerReadReactor<grpc::ByteBuffer>* StartForwardedWriteBatch(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response, UpstreamChannel* channel,
    UpstreamMetrics* metrics, ByteBudget* budget, WriteBatchReadSizes* read_sizes,
    grpc::Status refusal);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_FORWARD_WRITE_BATCH_H_
