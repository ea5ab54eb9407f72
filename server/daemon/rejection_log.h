// The log lines of refused work: records answered with an error and Write
// streams that end with one. Each line names the peer, the run, the writer and
// the reason, so that an operator can find the client; lines are rate-limited
// per reason (LogRateLimiter), so a client that sends bad records at any rate
// writes at most a few lines a second, and the next line written says how many
// were left out. The counters in Metrics count every one.
#ifndef TBLOG_DAEMON_REJECTION_LOG_H_
#define TBLOG_DAEMON_REJECTION_LOG_H_

#include <functional>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "daemon/log_rate_limit.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

class RejectionLog {
 public:
  // Lines per second and reason for each of the two events.
  static constexpr int kDefaultLinesPerSecond = 10;

  explicit RejectionLog(int lines_per_second = kDefaultLinesPerSecond,
                        std::function<absl::Time()> now = [] { return absl::Now(); });

  // One warning per RecordError of `ack` (none when it has none). `peer` is
  // gRPC's name of the client ("ipv4:127.0.0.1:5555", "unix:..."). Thread-safe.
  void RecordsRejected(absl::string_view peer, absl::string_view run_id, absl::string_view writer_id,
                       const v1::WriteResponse& ack);

  // One warning for a Write stream that ends with `reason` (not OK). `run_id`
  // and `writer_id` may be empty when the stream failed before naming them.
  // Thread-safe.
  void StreamDropped(absl::string_view peer, absl::string_view run_id, absl::string_view writer_id,
                     const absl::Status& reason);

 private:
  LogRateLimiter limiter_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_REJECTION_LOG_H_
