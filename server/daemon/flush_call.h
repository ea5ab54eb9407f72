// The Flush RPC: a barrier over one run (or every open run of the caller).
// Each run queues a flush entry behind the batches it waits for
// (Run::Flush); the call finishes when the last one is done, or on its
// cancellation or deadline (then the flushes still waiting for batches are
// cancelled). Never blocks a gRPC thread.
#ifndef TBLOG_DAEMON_FLUSH_CALL_H_
#define TBLOG_DAEMON_FLUSH_CALL_H_

#include <string_view>

#include "daemon/metrics.h"
#include "daemon/run_registry.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

// Starts a Flush call for `caller` (run_owner.h: only its runs are flushed)
// and returns its reactor. `context` is gRPC's, valid until the call is done;
// `registry` and `metrics` outlive the call.
grpc::ServerUnaryReactor* StartFlush(grpc::CallbackServerContext* context,
                                     const v1::FlushRequest& request, RunRegistry* registry,
                                     Metrics* metrics, std::string_view caller);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_FLUSH_CALL_H_
