// A test fixture with a fresh, empty directory per test, for tests that write
// real files. Header-only.
#ifndef TBLOG_TESTS_TEMP_DIR_UTIL_H_
#define TBLOG_TESTS_TEMP_DIR_UTIL_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace tblog {

// SetUp creates dir_, "<TempDir><suite>_<pid>_<test>": unique per test and
// per process, so tests of one binary run by ctest -j do not share files.
// TearDown removes it with everything the test left there.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = ::testing::TempDir() + test->test_suite_name() + "_" + std::to_string(::getpid()) +
           "_" + test->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
};

}  // namespace tblog

#endif  // TBLOG_TESTS_TEMP_DIR_UTIL_H_
