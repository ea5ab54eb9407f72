#include "daemon/log_rate_limit.h"

#include <utility>

namespace tblog::daemon {

LogRateLimiter::LogRateLimiter(int lines_per_second, std::function<absl::Time()> now)
    : lines_per_second_(lines_per_second), now_(std::move(now)) {}

bool LogRateLimiter::Allow(std::string_view key, uint64_t* suppressed) {
  MutexLock lock(&mu_);
  const absl::Time now = now_();
  auto [it, inserted] = windows_.try_emplace(absl::string_view(key.data(), key.size()));
  Window& window = it->second;
  if (inserted || now - window.start >= absl::Seconds(1)) {
    window.start = now;
    window.allowed = 0;
  }
  if (window.allowed >= lines_per_second_) {
    ++window.suppressed;
    return false;
  }
  ++window.allowed;
  *suppressed = std::exchange(window.suppressed, 0);
  return true;
}

}  // namespace tblog::daemon
