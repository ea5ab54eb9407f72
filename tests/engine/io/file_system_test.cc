// The POSIX file system's modes (engine/io/file_system.h FileModes): what it
// creates gets exactly the configured modes under a restrictive umask, what
// exists keeps its own, and Posix() hands out one object per modes.
#include "engine/io/file_system.h"

#include <sys/stat.h>

#include <string>

#include "gtest/gtest.h"
#include "temp_dir_util.h"

namespace tblog {
namespace {

// Runs the test body under umask 077, as a daemon started by a cautious
// service manager would be, and restores the umask afterwards.
class FileSystemModesTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    previous_umask_ = ::umask(077);
  }
  void TearDown() override {
    ::umask(previous_umask_);
    TempDirTest::TearDown();
  }

  static uint32_t ModeOf(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }

  mode_t previous_umask_ = 0;
};

TEST_F(FileSystemModesTest, DefaultCreatesReadableByEveryoneWhateverTheUmask) {
  FileSystem& fs = *FileSystem::Default();
  ASSERT_TRUE(fs.CreateDir(dir_ + "/run").ok());
  EXPECT_EQ(ModeOf(dir_ + "/run"), 0755u);
  for (auto mode : {FileSystem::OpenMode::kCreateNew, FileSystem::OpenMode::kAppend,
                    FileSystem::OpenMode::kOverwrite}) {
    const std::string path = dir_ + "/run/file" + std::to_string(static_cast<int>(mode));
    auto file = fs.OpenWritable(path, mode);
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_TRUE((*file)->Close().ok());
    EXPECT_EQ(ModeOf(path), 0644u) << path;
  }
}

TEST_F(FileSystemModesTest, PosixCreatesWithTheGivenModes) {
  FileSystem& fs = *FileSystem::Posix({.file = 0640, .dir = 0750});
  ASSERT_TRUE(fs.CreateDir(dir_ + "/run").ok());
  EXPECT_EQ(ModeOf(dir_ + "/run"), 0750u);
  ASSERT_TRUE(RewriteFile(fs, dir_ + "/run/checkpoint", "data", /*sync=*/false).ok());
  EXPECT_EQ(ModeOf(dir_ + "/run/checkpoint"), 0640u);
}

TEST_F(FileSystemModesTest, AnExistingFileKeepsItsMode) {
  const std::string path = dir_ + "/existing";
  ASSERT_TRUE(RewriteFile(*FileSystem::Default(), path, "old", false).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  FileSystem& fs = *FileSystem::Posix({.file = 0664, .dir = 0775});
  for (auto mode : {FileSystem::OpenMode::kAppend, FileSystem::OpenMode::kOverwrite}) {
    auto file = fs.OpenWritable(path, mode);
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_TRUE((*file)->Append("x").ok());
    ASSERT_TRUE((*file)->Close().ok());
    EXPECT_EQ(ModeOf(path), 0600u);
  }
  EXPECT_TRUE(absl::IsAlreadyExists(
      fs.OpenWritable(path, FileSystem::OpenMode::kCreateNew).status()));
  EXPECT_EQ(ModeOf(path), 0600u);
}

TEST_F(FileSystemModesTest, ASymlinkIsStillRefusedAndNotChanged) {
  const std::string target = dir_ + "/target";
  ASSERT_TRUE(RewriteFile(*FileSystem::Default(), target, "t", false).ok());
  ASSERT_EQ(::chmod(target.c_str(), 0600), 0);
  ASSERT_EQ(::symlink(target.c_str(), (dir_ + "/link").c_str()), 0);
  FileSystem& fs = *FileSystem::Posix({.file = 0666, .dir = 0777});
  for (auto mode : {FileSystem::OpenMode::kCreateNew, FileSystem::OpenMode::kAppend,
                    FileSystem::OpenMode::kOverwrite}) {
    const auto file = fs.OpenWritable(dir_ + "/link", mode);
    EXPECT_FALSE(file.ok());
    if (mode != FileSystem::OpenMode::kCreateNew) {
      EXPECT_EQ(file.status().code(), absl::StatusCode::kFailedPrecondition) << file.status();
    }
  }
  EXPECT_EQ(ModeOf(target), 0600u);
}

TEST(FileSystemPosixTest, OneObjectPerModesAndTheOwnerKeepsItsBits) {
  EXPECT_EQ(FileSystem::Posix(FileModes{}), FileSystem::Default());
  FileSystem* group_only = FileSystem::Posix({.file = 0640, .dir = 0750});
  EXPECT_EQ(FileSystem::Posix({.file = 0640, .dir = 0750}), group_only);
  EXPECT_NE(group_only, FileSystem::Default());
  // 0040/0050 become 0640/0750: the file system must read back what it made.
  EXPECT_EQ(FileSystem::Posix({.file = 0040, .dir = 0050}), group_only);
  // Bits above 0777 are dropped.
  EXPECT_EQ(FileSystem::Posix({.file = 04644, .dir = 01755}), FileSystem::Default());
}

}  // namespace
}  // namespace tblog
