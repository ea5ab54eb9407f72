// Append-only recovery as TensorBoard sees it (issue 8) and many daemons
// writing one run (issue 9), against real tblogd processes killed with
// SIGKILL and restarted: a reader that tails the files the way TensorBoard
// does reads every step of every tag exactly once, in order; so does a fresh
// read of the files.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/checkpoint.h"
#include "daemon/resume_scan.h"
#include "engine/io/event_reader.h"
#include "engine/io/record_reader.h"
#include "support/daemon_process.h"
#include "support/upstream_fixture.h"
#include "tblog/client.h"
#include "tblog/tensorboard/event.pb.h"

namespace tblog {
namespace {

namespace fs = std::filesystem;
using ::tblog::testing::DaemonProcess;
using Points = std::map<std::string, std::vector<int64_t>>;  // tag -> steps, in read order

// Reads one directory of event files the way TensorBoard's reader does: one
// file at a time, kept open, read on from its offset (a torn record is
// retried later from its start), never re-read; once a file that sorts later
// exists and the current one has nothing more, it moves on and never goes
// back. Not thread-safe: one poller.
class TailingReader {
 public:
  explicit TailingReader(std::string dir) : dir_(std::move(dir)) {}

  // Reads what is there now.
  void Poll(Points* points) {
    while (true) {
      if (reader_ != nullptr) {
        std::string payload;
        RecordReader::State state;
        while ((state = reader_->Next(&payload)) == RecordReader::State::kRecord) {
          tensorboard::Event event;
          if (!event.ParseFromString(payload)) {
            errors_.push_back(current_ + ": undecodable event");
            continue;
          }
          for (const auto& value : event.summary().value()) {
            (*points)[value.tag()].push_back(event.step());
          }
        }
        if (state == RecordReader::State::kCorrupt) {
          errors_.push_back(reader_->error());
          return;
        }
      }
      const std::string next = NextFile();
      if (next.empty()) return;
      auto opened = RecordReader::Open(absl::StrCat(dir_, "/", next));
      if (!opened.ok()) return;  // not there yet
      reader_ = std::move(*opened);
      current_ = next;
      ++files_read_;
    }
  }

  const std::vector<std::string>& errors() const { return errors_; }
  int files_read() const { return files_read_; }

 private:
  // The first event file sorting after the current one, or "".
  std::string NextFile() const {
    std::error_code ignored;
    std::string next;
    for (const auto& entry : fs::directory_iterator(dir_, ignored)) {
      const std::string name = entry.path().filename().string();
      if (!IsEventFileName(name) || name <= current_) continue;
      if (next.empty() || name < next) next = name;
    }
    return next;
  }

  const std::string dir_;
  std::string current_;
  std::unique_ptr<RecordReader> reader_;
  std::vector<std::string> errors_;
  int files_read_ = 0;
};

// Every point of the event files directly in `dir`, files in name order.
Points ReadFresh(const std::string& dir) {
  Points points;
  TailingReader reader(dir);
  reader.Poll(&points);
  EXPECT_TRUE(reader.errors().empty()) << reader.errors().front();
  return points;
}

// Each step 0..steps-1 of `tag` once, in order; else says how not, naming
// `what` was read.
void ExpectEachStepOnceInOrder(const Points& points, const std::string& tag, int64_t steps,
                               const std::string& what) {
  SCOPED_TRACE(what);
  ::tblog::testing::ExpectEachStepOnce(points, tag, steps);
}

class RecoveryE2eTest : public ::testing::Test {
 public:
  // Starts (or restarts) daemon `id` on the shared logdir, with its own socket.
  absl::StatusOr<std::unique_ptr<DaemonProcess>> StartDaemon(
      const std::string& id, const std::string& flush_interval = "50ms") {
    DaemonProcess::Options options;
    options.logdir = logdir_.path();
    options.socket_path = absl::StrCat(logdir_.path(), "/../", fs::path(logdir_.path()).filename().string(),
                                       "-", id, ".sock");
    options.log_path = absl::StrCat(options.socket_path, ".log");
    options.extra_args = {"--daemon-id", id, "--flush-interval", flush_interval, "--fsync", "flush"};
    return DaemonProcess::Start(options);
  }

  static WriterOptions Options(const DaemonProcess& daemon, const std::string& run_path) {
    WriterOptions options;
    options.target = daemon.target();
    options.run_path = run_path;
    options.retain_until = AckLevel::kDurable;  // a crash loses nothing acknowledged
    options.initial_backoff = absl::Milliseconds(10);
    options.max_backoff = absl::Milliseconds(100);
    options.batch_delay = absl::Milliseconds(2);
    return options;
  }

  std::string RunDir(const std::string& run_path) const {
    return absl::StrCat(logdir_.path(), "/", run_path);
  }

  testing::TempDir logdir_;
};

// Issue 8: TensorBoard open during training, the daemon killed and restarted
// 20 times.
TEST_F(RecoveryE2eTest, ATailingReaderReadsEveryStepOnceThroughTwentyKills) {
  constexpr int64_t kSteps = 3000;
  const std::vector<std::string> tags = {"loss", "acc", "lr"};
  auto daemon = StartDaemon("node-a");
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  auto opened = Writer::Open(Options(**daemon, "e2e/tail"));
  ASSERT_TRUE(opened.ok()) << opened.status();
  Writer& writer = **opened;

  std::atomic<bool> done{false};
  std::thread trainer([&] {
    for (int64_t step = 0; step < kSteps; ++step) {
      for (const std::string& tag : tags) (void)writer.scalar(tag, step, 1.0f);
      (void)writer.scalar("acc", step, 1.0f, {.subrun = "train"});
      if (step % 10 == 0) absl::SleepFor(absl::Milliseconds(5));
    }
    done = true;
  });
  Points tailed, tailed_train;
  TailingReader reader(RunDir("e2e/tail"));
  TailingReader train_reader(RunDir("e2e/tail") + "/train");
  std::mt19937 random(20261130);
  int kills = 0;
  for (; kills < 20; ++kills) {
    const absl::Time until =
        absl::Now() + absl::Milliseconds(std::uniform_int_distribution<int>(50, 300)(random));
    while (absl::Now() < until) {
      reader.Poll(&tailed);
      train_reader.Poll(&tailed_train);
      absl::SleepFor(absl::Milliseconds(10));
    }
    EXPECT_FALSE((*daemon)->Stop(SIGKILL).ok());  // killed by signal 9
    reader.Poll(&tailed);
    train_reader.Poll(&tailed_train);
    daemon = StartDaemon("node-a");
    ASSERT_TRUE(daemon.ok()) << daemon.status();
  }
  trainer.join();
  ASSERT_TRUE(writer.flush(/*sync=*/true).ok()) << writer.status();
  ASSERT_TRUE(writer.close().ok()) << writer.status();
  EXPECT_GE(writer.stats().reconnects, 10u);
  reader.Poll(&tailed);
  train_reader.Poll(&tailed_train);
  EXPECT_TRUE(reader.errors().empty()) << reader.errors().front();
  for (const std::string& tag : tags) {
    ExpectEachStepOnceInOrder(tailed, tag, kSteps, "tailing reader");
  }
  ExpectEachStepOnceInOrder(tailed_train, "acc", kSteps, "tailing reader, train/");
  const Points fresh = ReadFresh(RunDir("e2e/tail"));
  for (const std::string& tag : tags) ExpectEachStepOnceInOrder(fresh, tag, kSteps, "fresh read");
  ExpectEachStepOnceInOrder(ReadFresh(RunDir("e2e/tail") + "/train"), "acc", kSteps,
                            "fresh read, train/");
  // It went on to the new files of later daemon lives (how many got data
  // depends on how fast the trainer runs: under TSan it is done sooner).
  EXPECT_GT(reader.files_read(), 1);
  ASSERT_TRUE((*daemon)->Stop(SIGTERM).ok());
}

// Issue 8 case 2: the batch was acknowledged as written, the daemon killed
// before the run's first checkpoint, the client resends: no duplicate.
TEST_F(RecoveryE2eTest, ACrashBeforeTheFirstCheckpointDuplicatesNothing) {
  constexpr int64_t kSteps = 20000;  // several 256 KiB buffers reach the OS
  // No flush, hence no checkpoint, for an hour.
  auto daemon = StartDaemon("node-a", "1h");
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  WriterOptions options = Options(**daemon, "e2e/first");
  options.retain_until = AckLevel::kWritten;
  auto opened = Writer::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Writer& writer = **opened;
  for (int64_t step = 0; step < kSteps; ++step) ASSERT_TRUE(writer.scalar("x", step, 1.0f).ok());
  // Wait until every batch is acknowledged as written; much of it is in the
  // files (the rest in the daemon's buffers).
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (writer.stats().acknowledged < static_cast<uint64_t>(kSteps) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(writer.stats().acknowledged, static_cast<uint64_t>(kSteps));
  ASSERT_FALSE(fs::exists(daemon::CheckpointPath(RunDir("e2e/first"), "node-a")) &&
               fs::file_size(daemon::CheckpointPath(RunDir("e2e/first"), "node-a")) > 0);
  const Points before = ReadFresh(RunDir("e2e/first"));
  ASSERT_GT(before.at("x").size(), 0u);
  EXPECT_FALSE((*daemon)->Stop(SIGKILL).ok());
  daemon = StartDaemon("node-a");
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  // Written-acknowledged batches that were still in the daemon's buffers are
  // lost with kWritten; what reached the files is there once, and the
  // client's steps after the crash follow it.
  for (int64_t step = kSteps; step < kSteps + 100; ++step) {
    ASSERT_TRUE(writer.scalar("x", step, 1.0f).ok());
  }
  ASSERT_TRUE(writer.flush(/*sync=*/true).ok()) << writer.status();
  ASSERT_TRUE(writer.close().ok()) << writer.status();
  const std::vector<int64_t> steps = ReadFresh(RunDir("e2e/first")).at("x");
  std::vector<int64_t> sorted = steps;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << "a step twice";
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()));
  EXPECT_GE(steps.size(), before.at("x").size() + 100);
  ASSERT_TRUE((*daemon)->Stop(SIGTERM).ok());
}

// The same with the client keeping batches until durable: everything, once.
TEST_F(RecoveryE2eTest, ACrashBeforeTheFirstCheckpointLosesNothingWhenRetainedUntilDurable) {
  constexpr int64_t kSteps = 20000;
  auto daemon = StartDaemon("node-a", "1h");
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  auto opened = Writer::Open(Options(**daemon, "e2e/durable"));
  ASSERT_TRUE(opened.ok()) << opened.status();
  Writer& writer = **opened;
  for (int64_t step = 0; step < kSteps; ++step) ASSERT_TRUE(writer.scalar("x", step, 1.0f).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (ReadFresh(RunDir("e2e/durable"))["x"].size() < kSteps / 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE((*daemon)->Stop(SIGKILL).ok());
  daemon = StartDaemon("node-a");
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  ASSERT_TRUE(writer.flush(/*sync=*/true).ok()) << writer.status();
  ASSERT_TRUE(writer.close().ok()) << writer.status();
  ExpectEachStepOnceInOrder(ReadFresh(RunDir("e2e/durable")), "x", kSteps, "fresh read");
  ASSERT_TRUE((*daemon)->Stop(SIGTERM).ok());
}

// Issue 8 case 5: a torn record in a 0-byte file (a crash inside a file's
// first record) is repaired, and the run goes on after it.
TEST_F(RecoveryE2eTest, ATornZeroByteFileIsRepaired) {
  auto daemon = StartDaemon("node-a");
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  auto opened = Writer::Open(Options(**daemon, "e2e/torn"));
  ASSERT_TRUE(opened.ok()) << opened.status();
  Writer& writer = **opened;
  for (int64_t step = 0; step < 100; ++step) ASSERT_TRUE(writer.scalar("x", step, 1.0f).ok());
  ASSERT_TRUE(writer.flush(/*sync=*/true).ok()) << writer.status();
  EXPECT_FALSE((*daemon)->Stop(SIGKILL).ok());
  // What a crash inside a new file's first record leaves; and an empty one.
  const std::string torn = RunDir("e2e/torn") + "/events.out.tfevents.1999999990.node-a.1.000001";
  const std::string empty = RunDir("e2e/torn") + "/events.out.tfevents.1999999991.node-a.1.000002";
  { std::ofstream(torn, std::ios::binary) << std::string("\x18\0\0\0\0\0\0\0\x01", 9); }
  { std::ofstream(empty, std::ios::binary); }
  daemon = StartDaemon("node-a");
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  for (int64_t step = 100; step < 200; ++step) ASSERT_TRUE(writer.scalar("x", step, 1.0f).ok());
  ASSERT_TRUE(writer.close().ok()) << writer.status();
  EXPECT_EQ(fs::file_size(torn), 0u);
  EXPECT_EQ(fs::file_size(empty), 0u);
  ExpectEachStepOnceInOrder(ReadFresh(RunDir("e2e/torn")), "x", 200, "fresh read");
  ASSERT_TRUE((*daemon)->Stop(SIGTERM).ok());
}

// Issue 9: `daemons` tblogd processes (one per node, say) on one log
// directory, each with its own writer into one run, killed and restarted at
// random. Every writer's points are there once and in order; no daemon cuts
// another's files; each daemon's checkpoint agrees with what the engine's
// reader finds in its files.
void ManyDaemonsOneRun(RecoveryE2eTest& test, int daemons) {
  constexpr int64_t kSteps = 1500;
  const std::string run = "e2e/multi";
  std::vector<std::string> ids;
  std::vector<std::unique_ptr<DaemonProcess>> processes;
  std::vector<std::unique_ptr<Writer>> writers;
  for (int i = 0; i < daemons; ++i) {
    ids.push_back(absl::StrCat("node-", i));
    auto daemon = test.StartDaemon(ids.back());
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    auto writer = Writer::Open(RecoveryE2eTest::Options(**daemon, run));
    ASSERT_TRUE(writer.ok()) << writer.status();
    processes.push_back(std::move(*daemon));
    writers.push_back(std::move(*writer));
  }
  std::vector<std::thread> trainers;
  for (int i = 0; i < daemons; ++i) {
    trainers.emplace_back([&writers, i] {
      // The tag rule: one tag, one writer.
      const std::string tag = absl::StrCat("rank", i, "/loss");
      for (int64_t step = 0; step < kSteps; ++step) {
        (void)writers[static_cast<size_t>(i)]->scalar(tag, step, 1.0f);
        (void)writers[static_cast<size_t>(i)]->scalar("acc", step, 1.0f,
                                                      {.subrun = absl::StrCat("rank", i)});
        if (step % 10 == 0) absl::SleepFor(absl::Milliseconds(5));
      }
    });
  }
  const std::string run_dir = test.RunDir(run);
  // Sizes of the event files of every daemon but `id`.
  const auto others = [&](const std::string& id) {
    std::map<std::string, uintmax_t> sizes;
    for (const auto& entry : fs::recursive_directory_iterator(run_dir)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && IsEventFileName(name) && !daemon::IsOwnEventFile(name, id)) {
        sizes[entry.path().string()] = entry.file_size();
      }
    }
    return sizes;
  };
  std::mt19937 random(static_cast<unsigned>(daemons));
  for (int kill = 0; kill < 6 * daemons; ++kill) {
    absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(30, 200)(random)));
    const size_t victim = std::uniform_int_distribution<size_t>(0, ids.size() - 1)(random);
    EXPECT_FALSE(processes[victim]->Stop(SIGKILL).ok());
    const auto before = others(ids[victim]);
    auto restarted = test.StartDaemon(ids[victim]);
    ASSERT_TRUE(restarted.ok()) << restarted.status();
    processes[victim] = std::move(*restarted);
    absl::SleepFor(absl::Milliseconds(50));  // its writer resumes the run (and it repairs)
    const auto after = others(ids[victim]);
    for (const auto& [path, size] : before) {
      ASSERT_TRUE(after.count(path)) << ids[victim] << " removed " << path;
      EXPECT_GE(after.at(path), size) << ids[victim] << " cut " << path;
    }
  }
  for (std::thread& trainer : trainers) trainer.join();
  for (auto& writer : writers) {
    ASSERT_TRUE(writer->flush(/*sync=*/true).ok()) << writer->status();
    ASSERT_TRUE(writer->close().ok()) << writer->status();
  }
  for (auto& process : processes) ASSERT_TRUE(process->Stop(SIGTERM).ok());

  // Every file of the directory, in name order, read to its end (what
  // TensorBoard's data server reads).
  const Points all = ReadFresh(run_dir);
  for (int i = 0; i < daemons; ++i) {
    ExpectEachStepOnceInOrder(all, absl::StrCat("rank", i, "/loss"), kSteps, "all files");
    ExpectEachStepOnceInOrder(ReadFresh(absl::StrCat(run_dir, "/rank", i)), "acc", kSteps,
                              absl::StrCat("rank", i, "/"));
  }
  for (const std::string& id : ids) {
    auto checkpoint = daemon::ReadCheckpoint(run_dir, id);
    ASSERT_TRUE(checkpoint.ok() && checkpoint->has_value()) << id;
    EXPECT_TRUE((*checkpoint)->batches.empty()) << id;
    for (const auto& file : (*checkpoint)->files) {
      EXPECT_TRUE(daemon::IsOwnEventFile(file.file_name, id)) << id << " lists " << file.file_name;
      const fs::path path = fs::path(run_dir) / file.subrun / file.file_name;
      EXPECT_EQ(fs::file_size(path), file.length) << path;
    }
    // What the files say (batch markers, read with the engine's reader)
    // is what the checkpoint says.
    auto scan = daemon::RepairRunForResume(run_dir, id);
    ASSERT_TRUE(scan.ok()) << scan.status();
    EXPECT_EQ(scan->files_truncated, 0) << id;
    EXPECT_TRUE(scan->resumed.batches.empty()) << id;
    EXPECT_EQ(scan->writer_sequences, (*checkpoint)->writer_sequences) << id;
    EXPECT_EQ((*checkpoint)->writer_sequences.size(), 1u) << id;
  }
}

TEST_F(RecoveryE2eTest, TwoDaemonsOneRunKilledAtRandom) { ManyDaemonsOneRun(*this, 2); }
TEST_F(RecoveryE2eTest, ThreeDaemonsOneRunKilledAtRandom) { ManyDaemonsOneRun(*this, 3); }

}  // namespace
}  // namespace tblog
