// RunFiles' directory fsyncs: a flush (even the first of a new run, which
// creates the event file, the sub-run directory, .tblogd and the checkpoint)
// never waits on an fsync; the durable sync fsyncs every new name before the
// checkpoint that lets Run report the data durable. Packed events (scalar
// columns) are written as the same events one by one would be. The recovery
// side of RunFiles (markers, resends, torn tails) is in resume_scan_test.cc.
#include "daemon/run_files.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/sync.h"
#include "daemon/checkpoint.h"
#include "daemon_test_util.h"
#include "gtest/gtest.h"
#include "support/fault_file_system.h"
#include "support/forwarding_file_system.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;
using testing::FreshTempDir;

// Logs, in order, every directory fsync ("dir <path>") and file fsync
// ("file <path>") that reaches the file system below it.
class SyncLog : public ::tblog::testing::ForwardingFileSystem {
 public:
  explicit SyncLog(FileSystem* base) : ForwardingFileSystem(base) {}

  std::vector<std::string> Take() {
    MutexLock lock(&mu_);
    return std::exchange(log_, {});
  }

  absl::Status SyncDir(const std::string& path) override {
    absl::Status status = ForwardingFileSystem::SyncDir(path);
    if (status.ok()) Note("dir " + path);
    return status;
  }

 private:
  class File : public ::tblog::testing::ForwardingWritableFile {
   public:
    File(SyncLog* log, std::string path, std::unique_ptr<WritableFile> base)
        : ForwardingWritableFile(std::move(base)), log_(log), path_(std::move(path)) {}
    absl::Status Sync() override {
      absl::Status status = ForwardingWritableFile::Sync();
      if (status.ok()) log_->Note("file " + path_);
      return status;
    }

   private:
    SyncLog* log_;
    const std::string path_;
  };

  std::unique_ptr<WritableFile> Wrap(const std::string& path,
                                     std::unique_ptr<WritableFile> file) override {
    return std::make_unique<File>(this, path, std::move(file));
  }

  void Note(std::string entry) {
    MutexLock lock(&mu_);
    log_.push_back(std::move(entry));
  }

  Mutex mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
};

EventOut Scalar(const std::string& subrun, int64_t step) {
  tensorboard::Event event;
  event.set_step(step);
  event.set_wall_time(1700000000.0 + static_cast<double>(step));
  auto* value = event.mutable_summary()->add_value();
  value->set_tag("x");
  value->set_simple_value(1.0f);
  EventOut out;
  out.subrun = subrun;
  out.event = event.SerializeAsString();
  return out;
}

class RunFilesSyncTest : public ::testing::Test {
 protected:
  RunFilesSyncTest() : faults_(FileSystem::Default()), log_(&faults_) {
    options_.hostname = "node-1";
    options_.sync = SyncPolicy::kInterval;  // the daemon's policy
    options_.file_system = &log_;
    run_ = (dir_ / "run").string();
    fs::create_directories(run_);
  }

  // One batch of writer "w" with a point in each of `subruns`.
  void Write(RunFiles& files, uint64_t sequence, const std::vector<std::string>& subruns) {
    for (const std::string& subrun : subruns) {
      Converted converted;
      converted.events.push_back(Scalar(subrun, static_cast<int64_t>(sequence)));
      size_t part = 0;
      bool io = false;
      ASSERT_TRUE(files.WriteParts(converted, &part, &io, BatchKey{"w", sequence}).ok());
    }
    files.NoteBatchWritten("w", sequence);
  }

  // What Run does for a flush: FlushAll, then the checkpoint; true when the
  // flush made the data durable.
  static bool Flush(RunFiles& files, bool sync) {
    bool durable = false;
    absl::Status status = files.FlushAll(sync, &durable);
    if (status.ok()) status = files.WriteCheckpoint(durable);
    return status.ok() && durable;
  }

  fs::path dir_ = FreshTempDir("run_files_sync");
  FaultFileSystem faults_;
  SyncLog log_;
  EventFileOptions options_;
  Limits limits_;
  std::string run_;
};

TEST_F(RunFilesSyncTest, FlushOfANewRunWaitsOnNoFsync) {
  RunFiles files("run", run_, options_, limits_, {});
  Write(files, 1, {"", "train", "eval/a"});
  EXPECT_FALSE(Flush(files, /*sync=*/false));
  EXPECT_TRUE(log_.Take().empty()) << "a flush fsynced something";
  EXPECT_TRUE(fs::exists(CheckpointPath(run_, "node-1")));
  // WriteOutAll (after every group) neither.
  Write(files, 2, {"", "other"});
  ASSERT_TRUE(files.WriteOutAll().ok());
  EXPECT_TRUE(log_.Take().empty());
}

TEST_F(RunFilesSyncTest, DurableSyncFsyncsEveryNewNameBeforeTheCheckpoint) {
  RunFiles files("run", run_, options_, limits_, {});
  Write(files, 1, {"", "train", "eval/a"});
  ASSERT_FALSE(Flush(files, /*sync=*/false));
  log_.Take();
  ASSERT_TRUE(Flush(files, /*sync=*/true));
  const std::vector<std::string> log = log_.Take();
  const std::string checkpoint = "file " + CheckpointPath(run_, "node-1");
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back(), checkpoint) << "the checkpoint's sync is what makes the data durable";
  auto before_checkpoint = [&](const std::string& entry) {
    auto it = std::find(log.begin(), log.end(), entry);
    return it != log.end() && it < log.end() - 1;
  };
  // Every directory holding a new entry: the event files' directories, the
  // sub-run directories' parents, .tblogd's parent and .tblogd.
  for (const std::string& dir : {run_, run_ + "/train", run_ + "/eval", run_ + "/eval/a",
                                 run_ + "/" + kCheckpointDir}) {
    EXPECT_TRUE(before_checkpoint("dir " + dir)) << dir << " not fsynced before the checkpoint";
  }
  // Each event file's data too.
  const int files_synced = static_cast<int>(std::count_if(
      log.begin(), log.end(), [](const std::string& e) { return e.find("tfevents") != e.npos; }));
  EXPECT_EQ(files_synced, 3);

  // Nothing new: a later durable sync fsyncs no directory again.
  Write(files, 2, {"", "train"});
  ASSERT_TRUE(Flush(files, /*sync=*/true));
  for (const std::string& entry : log_.Take()) {
    EXPECT_EQ(entry.rfind("dir ", 0), std::string::npos) << entry;
  }
  // A new sub-run's names wait for the next durable sync again.
  Write(files, 3, {"late"});
  ASSERT_FALSE(Flush(files, /*sync=*/false));
  EXPECT_TRUE(log_.Take().empty());
  ASSERT_TRUE(Flush(files, /*sync=*/true));
  const std::vector<std::string> later = log_.Take();
  EXPECT_NE(std::find(later.begin(), later.end(), "dir " + run_), later.end());
  EXPECT_NE(std::find(later.begin(), later.end(), "dir " + run_ + "/late"), later.end());
}

TEST_F(RunFilesSyncTest, FailedDirectoryFsyncIsNotDurableAndIsRetried) {
  RunFiles files("run", run_, options_, limits_, {});
  Write(files, 1, {"train"});
  ASSERT_FALSE(Flush(files, /*sync=*/false));
  faults_.Inject(Fault(FileOp::kSyncDir, EIO).OnPathsWith(kCheckpointDir));
  EXPECT_FALSE(Flush(files, /*sync=*/true)) << "durable although .tblogd's fsync failed";
  log_.Take();
  ASSERT_TRUE(Flush(files, /*sync=*/true));
  const std::vector<std::string> log = log_.Take();
  EXPECT_NE(std::find(log.begin(), log.end(), "dir " + run_ + "/" + kCheckpointDir), log.end());
}

TEST_F(RunFilesSyncTest, NeverPolicyFsyncsNothing) {
  options_.sync = SyncPolicy::kNever;
  RunFiles files("run", run_, options_, limits_, {});
  Write(files, 1, {"", "train"});
  bool synced = false;
  ASSERT_TRUE(files.FlushAll(/*sync=*/true, &synced).ok());
  ASSERT_TRUE(files.WriteCheckpoint(/*sync=*/false).ok());
  for (const std::string& entry : log_.Take()) {
    EXPECT_EQ(entry.rfind("dir ", 0), std::string::npos) << entry;
  }
}

// The bytes of every event file under `dir` (sub-runs included), by sub-run,
// in name order.
std::map<std::string, std::string> EventFileBytes(const fs::path& dir) {
  std::map<std::string, std::vector<fs::path>> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.path().filename().string().find("tfevents") == std::string::npos) continue;
    files[fs::relative(entry.path().parent_path(), dir).string()].push_back(entry.path());
  }
  std::map<std::string, std::string> bytes;
  for (auto& [subrun, paths] : files) {
    std::sort(paths.begin(), paths.end());
    for (const fs::path& path : paths) {
      std::ifstream in(path, std::ios::binary);
      std::stringstream contents;
      contents << in.rdbuf();
      bytes[subrun] += contents.str();
    }
  }
  return bytes;
}

TEST_F(RunFilesSyncTest, PackedEventsAreWrittenAsTheSameEventsOneByOne) {
  options_.clock = [] { return absl::FromUnixSeconds(1700000000); };  // same file_version, markers
  // Points of two series, one of them going back in step once.
  const std::vector<std::pair<std::string, int64_t>> points = {
      {"", 1}, {"val", 1}, {"", 2}, {"val", 2}, {"", 1}, {"", 3}};
  Converted one_by_one;
  Converted packed;
  packed.packed.series = {{"", "x"}, {"val", "x"}};
  for (const auto& [subrun, step] : points) {
    EventOut event = Scalar(subrun, step);
    packed.packed.bytes += event.event;
    packed.packed.events.push_back(
        {packed.packed.bytes.size(), step, subrun.empty() ? 0u : 1u});
    one_by_one.events.push_back(std::move(event));
  }
  std::map<std::string, std::string> written[2];
  uint64_t steps_back[2] = {0, 0};
  for (int form = 0; form < 2; ++form) {
    const fs::path run = dir_ / (form == 0 ? "one_by_one" : "packed");
    fs::create_directories(run);
    std::atomic<uint64_t> back{0};
    RunFiles files("run", run.string(), options_, limits_, {}, {}, &back);
    const Converted& converted = form == 0 ? one_by_one : packed;
    const size_t parts = points.size();
    size_t part = 0;
    bool io = false;
    ASSERT_TRUE(files.WriteParts(converted, &part, &io, BatchKey{"w", 1}).ok());
    ASSERT_EQ(part, parts);
    files.NoteBatchWritten("w", 1);
    // A later batch from its 4th part on, as a retry after an I/O error
    // resumes at the failing part.
    part = 3;
    ASSERT_TRUE(files.WriteParts(converted, &part, &io, BatchKey{"w", 2}).ok());
    EXPECT_EQ(part, parts);
    files.NoteBatchWritten("w", 2);
    ASSERT_TRUE(files.CloseAll().ok());
    written[form] = EventFileBytes(run);
    steps_back[form] = back.load();
  }
  EXPECT_EQ(written[0].size(), 2u);
  EXPECT_EQ(written[0], written[1]);
  // Batch 1: step 1 after 2 in ""; batch 2 (points 3..5): 2 after 2 in
  // "val", 1 after 3 in "".
  EXPECT_EQ(steps_back[0], 3u);
  EXPECT_EQ(steps_back[1], steps_back[0]);
}

}  // namespace
}  // namespace tblog::daemon
