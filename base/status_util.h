// Small helpers for errors as values (absl::Status) across the engine.
//
// Debian builds abseil with its own absl::string_view (not std::string_view),
// so std::string_view must be converted before it meets absl::StrCat or a
// Status constructor: use Sv().
#ifndef TBLOG_BASE_STATUS_UTIL_H_
#define TBLOG_BASE_STATUS_UTIL_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tblog {

// std::string_view -> absl::string_view, without copying.
inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Returns `status` with "<context>: " put before its message; OK stays OK.
// Adds context where the failure happened, e.g. Annotate(s, "writing <path>").
inline absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(Sv(context), ": ", status.message()));
}

}  // namespace tblog

// Returns from the current function when `expr` (an absl::Status) is not OK.
#define TBLOG_RETURN_IF_ERROR(expr)                  \
  do {                                               \
    ::absl::Status tblog_status_ = (expr);           \
    if (!tblog_status_.ok()) return tblog_status_;   \
  } while (0)

#endif  // TBLOG_BASE_STATUS_UTIL_H_
