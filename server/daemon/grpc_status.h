// Conversions between absl::Status (the daemon's) and grpc::Status (what a
// call finishes with). The codes are the same numbers in both.
#ifndef TBLOG_DAEMON_GRPC_STATUS_H_
#define TBLOG_DAEMON_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace tblog::daemon {

inline grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

inline absl::Status ToAbsl(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_GRPC_STATUS_H_
