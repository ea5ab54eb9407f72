// Rate limiting for log lines that a client can cause at any rate (rejected
// records, dropped streams): an operator needs to see that they happen, why,
// and from whom, but a client sending a million bad records must not write a
// million lines. Modelled on spdlog's rate-limited error reports: a fixed
// number of lines per key and second, then one line saying how many were left
// out.
#ifndef TBLOG_DAEMON_LOG_RATE_LIMIT_H_
#define TBLOG_DAEMON_LOG_RATE_LIMIT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/sync.h"

namespace tblog::daemon {

// Decides which lines of a kind to write: at most `lines_per_second` lines per
// key in each one-second window. Keys must come from a small, fixed set (a
// status code, a kind of event), never from client data: one window is kept
// per key for the limiter's lifetime. Thread-safe.
class LogRateLimiter {
 public:
  // `now` is the clock (tests pass a fake one); it is called under the
  // limiter's lock and must not block.
  explicit LogRateLimiter(int lines_per_second,
                          std::function<absl::Time()> now = [] { return absl::Now(); });
  LogRateLimiter(const LogRateLimiter&) = delete;
  LogRateLimiter& operator=(const LogRateLimiter&) = delete;

  // Whether to write the line for `key` that is about to be written. When
  // true, *suppressed is the number of lines for `key` that were refused
  // since the last one allowed (0 most of the time), for the line to say so.
  bool Allow(std::string_view key, uint64_t* suppressed) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Window {
    absl::Time start;
    int allowed = 0;          // lines allowed in this window
    uint64_t suppressed = 0;  // lines refused since the last allowed one
  };

  const int lines_per_second_;
  const std::function<absl::Time()> now_;
  Mutex mu_;
  absl::flat_hash_map<std::string, Window> windows_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_LOG_RATE_LIMIT_H_
