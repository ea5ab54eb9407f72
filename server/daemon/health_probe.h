// `tblogd health`: a gRPC health check client, so a container image needs no
// extra tool for its HEALTHCHECK.
#ifndef TBLOG_DAEMON_HEALTH_PROBE_H_
#define TBLOG_DAEMON_HEALTH_PROBE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tblog/connection.h"

namespace tblog::daemon {

// Asks `address` (host:port or unix:/path) for the health of `service` ("" =
// the whole server) over the TLS and token settings of `connection`. OK when
// SERVING; UNAVAILABLE with the reported status otherwise, or the RPC's error
// (DEADLINE_EXCEEDED after `timeout`; INVALID_ARGUMENT for unusable TLS files).
absl::Status CheckHealth(const std::string& address, const std::string& service,
                         absl::Duration timeout, const ConnectionOptions& connection = {});

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_HEALTH_PROBE_H_
