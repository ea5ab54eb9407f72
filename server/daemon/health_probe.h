// `tblogd health`: a gRPC health check client, so a container image needs no
// extra tool for its HEALTHCHECK.
#ifndef TBLOG_DAEMON_HEALTH_PROBE_H_
#define TBLOG_DAEMON_HEALTH_PROBE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tblog::daemon {

// Asks `address` (host:port or unix:/path) for the health of `service` ("" =
// the whole server). OK when SERVING; UNAVAILABLE with the reported status
// otherwise, or the RPC's error (DEADLINE_EXCEEDED after `timeout`).
absl::Status CheckHealth(const std::string& address, const std::string& service,
                         absl::Duration timeout);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_HEALTH_PROBE_H_
