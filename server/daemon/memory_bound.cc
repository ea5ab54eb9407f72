#include "daemon/memory_bound.h"

#include <malloc.h>

namespace tblog::daemon {

void ReturnLargeBlocksToTheSystem() {
#ifdef M_MMAP_THRESHOLD
  // A fixed threshold also turns off glibc's dynamic one (which rises to the
  // largest block freed, up to 32 MiB, and then keeps such blocks).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_TRIM_THRESHOLD, 2 << 20);
#endif
}

void BoundTransportBuffers(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
}

}  // namespace tblog::daemon
