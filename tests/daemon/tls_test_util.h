// Helpers of the TLS and token tests: certificates made at test time by
// tests/support/make_test_certs.sh (Debian's openssl), files written
// atomically, and a daemon started in-process with security options.
#ifndef TBLOG_TESTS_DAEMON_TLS_TEST_UTIL_H_
#define TBLOG_TESTS_DAEMON_TLS_TEST_UTIL_H_

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tblog::daemon::testing {

// Runs make_test_certs.sh into `dir` (see the script for the files it makes).
inline ::testing::AssertionResult MakeTestCerts(const std::filesystem::path& dir) {
  const std::string command =
      absl::StrCat("bash '", TBLOG_CERT_SCRIPT, "' '", dir.string(), "' >&2");
  const int rc = std::system(command.c_str());
  if (rc != 0) return ::testing::AssertionFailure() << command << " exited " << rc;
  return ::testing::AssertionSuccess();
}

// Replaces `path` with `contents` in one rename, as a careful operator (or
// Kubernetes' symlink swap) does: a reader sees the old file or the new one.
inline void WriteFileAtomically(const std::filesystem::path& path, const std::string& contents) {
  const std::filesystem::path temp = path.string() + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << contents;
  }
  std::filesystem::rename(temp, path);
}

inline std::string ReadFileOrEmpty(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  if (in) contents << in.rdbuf();
  return contents.str();
}

}  // namespace tblog::daemon::testing

#endif  // TBLOG_TESTS_DAEMON_TLS_TEST_UTIL_H_
