// Who owns a run, and who is calling.
//
// A caller's identity is the name under which it authenticated: with bearer
// tokens (--auth-token-file), the identity of its token; without, "" for
// every caller, so that all callers are one anonymous owner and only the
// writer binding (writer_binding.h) applies. A run records the identity that
// opened it first in this daemon process (its owner, RunRegistry); opening,
// writing to, flushing, closing and reading a run are then limited to that
// identity (PERMISSION_DENIED), and ListRuns lists the caller's runs only.
#ifndef TBLOG_DAEMON_RUN_OWNER_H_
#define TBLOG_DAEMON_RUN_OWNER_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace grpc {
class ServerContextBase;
}

namespace tblog::daemon {

// The seam between authentication and ownership: returns the identity of
// the caller of `context` ("" = anonymous). Called on gRPC's threads: must
// not block. The token authentication (auth.h) provides the daemon's; an
// empty function means "no authentication" (every caller is "").
using CallerIdentityFn = std::function<std::string(const grpc::ServerContextBase& context)>;

// The identity of `context`'s caller under `identify` ("" when it is empty).
std::string IdentifyCaller(const CallerIdentityFn& identify,
                           const grpc::ServerContextBase& context);

// OK when `caller` may use the run `run_id` owned by `owner` (the same
// identity); PERMISSION_DENIED naming the run and `action` ("write to",
// "close") otherwise. Never names either identity: they may be secrets'
// names an attacker should not learn.
absl::Status CheckRunOwner(std::string_view owner, std::string_view caller,
                           std::string_view run_id, std::string_view action);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_RUN_OWNER_H_
