#include "daemon/rejection_log.h"

#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {
namespace {

// A value from a client, quoted and escaped: a newline in a tag must not
// forge a log line.
std::string Quoted(absl::string_view value) {
  return absl::StrCat("\"", absl::CHexEscape(value), "\"");
}

std::string Suppressed(uint64_t n) {
  return n == 0 ? std::string() : absl::StrCat(" (", n, " similar lines suppressed)");
}

}  // namespace

RejectionLog::RejectionLog(int lines_per_second, std::function<absl::Time()> now)
    : limiter_(lines_per_second, std::move(now)) {}

void RejectionLog::RecordsRejected(absl::string_view peer, absl::string_view run_id,
                                   absl::string_view writer_id, const v1::WriteResponse& ack) {
  for (const v1::RecordError& error : ack.errors()) {
    const auto code = static_cast<absl::StatusCode>(error.code());
    const std::string reason = absl::StatusCodeToString(code);
    uint64_t suppressed = 0;
    if (!limiter_.Allow(absl::StrCat("record ", reason), &suppressed)) continue;
    spdlog::warn("{}", absl::StrCat("record rejected: peer=", peer, " run=", Quoted(run_id),
                                    " writer=", Quoted(writer_id), " sequence=", error.sequence(),
                                    " index=", error.index(), " tag=", Quoted(error.tag()),
                                    " reason=", reason, " message=", Quoted(error.message()),
                                    Suppressed(suppressed)));
  }
}

void RejectionLog::StreamDropped(absl::string_view peer, absl::string_view run_id,
                                 absl::string_view writer_id, const absl::Status& reason) {
  const std::string code = absl::StatusCodeToString(reason.code());
  uint64_t suppressed = 0;
  if (!limiter_.Allow(absl::StrCat("stream ", code), &suppressed)) return;
  spdlog::warn("{}", absl::StrCat("write stream dropped: peer=", peer, " run=", Quoted(run_id),
                                  " writer=", Quoted(writer_id), " reason=", code,
                                  " message=", Quoted(reason.message()), Suppressed(suppressed)));
}

}  // namespace tblog::daemon
