// A real "disk full" for tests: lowers RLIMIT_FSIZE for this process, so a
// write() past `bytes` fails with EFBIG (SIGXFSZ ignored); restores the limit
// and the signal on Lift() or destruction. Process-wide: not for tests that
// run in parallel threads of one process.
#ifndef TBLOG_TESTS_FILE_SIZE_LIMIT_H_
#define TBLOG_TESTS_FILE_SIZE_LIMIT_H_

#include <sys/resource.h>

#include <csignal>

namespace tblog {

class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    saved_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = bytes;
    ok_ = ::setrlimit(RLIMIT_FSIZE, &lowered) == 0;
  }
  ~FileSizeLimit() { Lift(); }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

  void Lift() {
    if (lifted_) return;
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, saved_handler_);
    lifted_ = true;
  }
  // False when the limit could not be set (the test should fail, not pass).
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  void (*saved_handler_)(int) = nullptr;
  bool ok_ = false;
  bool lifted_ = false;
};

}  // namespace tblog

#endif  // TBLOG_TESTS_FILE_SIZE_LIMIT_H_
