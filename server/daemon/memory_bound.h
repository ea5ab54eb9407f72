// Process-wide settings that make --max-inflight-bytes a bound on the
// daemon's memory rather than on its bookkeeping (README, "Memory"):
//   - gRPC's transport: no BDP probing, so a stream that is not reading (it
//     waits for budget) lets its client send no more than the 64 KiB HTTP/2
//     stream window ahead; with probing, gRPC grows that window to megabytes
//     per stream, all held outside the budget. A stream that reads still
//     gets its whole message in one go (gRPC opens the window for it).
//   - the allocator: blocks of 1 MiB and more (messages, pixels, PNGs,
//     events) are mapped and unmapped on their own, so freed ones go back to
//     the system at once instead of staying in glibc's per-thread arenas
//     (whose dynamic threshold otherwise keeps them after the first large free).
#ifndef TBLOG_DAEMON_MEMORY_BOUND_H_
#define TBLOG_DAEMON_MEMORY_BOUND_H_

#include "grpcpp/server_builder.h"

namespace tblog::daemon {

// Sets the allocator's thresholds. Call once, early, before threads start.
void ReturnLargeBlocksToTheSystem();

// The transport settings above, on the server being built.
void BoundTransportBuffers(grpc::ServerBuilder& builder);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_MEMORY_BOUND_H_
