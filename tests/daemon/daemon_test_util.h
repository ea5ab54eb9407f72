// Helpers shared by the daemon's tests: reading a run's events back.
#ifndef TBLOG_TESTS_DAEMON_DAEMON_TEST_UTIL_H_
#define TBLOG_TESTS_DAEMON_DAEMON_TEST_UTIL_H_

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/io/event_reader.h"
#include "golden_util.h"
#include "gtest/gtest.h"
#include "tblog/tensorboard/event.pb.h"

namespace tblog::daemon::testing {

inline std::filesystem::path FreshTempDir(const std::string& name) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                              (name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Every event with a summary in the event files directly in `dir`, files in
// name order (the order TensorBoard reads them). Fails the test on a torn or
// corrupt file.
inline std::vector<tensorboard::Event> ReadSummaryEvents(const std::filesystem::path& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file() && IsEventFileName(entry.path().filename().string())) {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<tensorboard::Event> events;
  for (const std::string& file : files) {
    for (tensorboard::Event& event : ReadEventFile(file)) {
      if (event.has_summary()) events.push_back(std::move(event));
    }
  }
  return events;
}

// Every event file under `dir` (recursively) with its size: what an
// append-only repair must leave as it is, or only lengthen.
inline std::map<std::string, uintmax_t> FileSizes(const std::filesystem::path& dir) {
  std::map<std::string, uintmax_t> sizes;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && IsEventFileName(entry.path().filename().string())) {
      sizes[entry.path().string()] = entry.file_size();
    }
  }
  return sizes;
}

// "tag@step" for every summary value, in file order.
inline std::vector<std::string> TagSteps(const std::vector<tensorboard::Event>& events) {
  std::vector<std::string> out;
  for (const auto& event : events) {
    for (const auto& value : event.summary().value()) {
      out.push_back(value.tag() + "@" + std::to_string(event.step()));
    }
  }
  return out;
}

}  // namespace tblog::daemon::testing

#endif  // TBLOG_TESTS_DAEMON_DAEMON_TEST_UTIL_H_
