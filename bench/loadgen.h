// Shared between the two halves of tblog-loadgen. The client side
// (tblog_loadgen.cc, tblog/client.h) and the engine side
// (loadgen_in_process.cc, engine/*.h) live in separate files so that each
// half compiles against one API only; this header includes neither.
#ifndef TBLOG_BENCH_LOADGEN_H_
#define TBLOG_BENCH_LOADGEN_H_

#include <chrono>
#include <cstdint>
#include <latch>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tblog::loadgen {

// Workload sizes, from the command line.
struct Config {
  int64_t scalars = 1'000'000;
  int tags = 8;
  int64_t histograms = 16;
  int64_t histogram_elements = 1'000'000;
  int64_t images = 64;
  int image_side = 256;
  int writers = 2;
  int64_t writer_scalars = 250'000;  // per writer thread
};

// The data both sides log: the same tags, values and pixels.
struct Inputs {
  std::vector<std::string> scalar_tags;  // "scalars/t<k>"
  std::vector<float> histogram_values;   // histogram_elements normal values
  std::vector<uint8_t> image_pixels;     // image_side x image_side x 3, HWC
  std::vector<int64_t> image_shape;
};
Inputs MakeInputs(const Config& config);

inline constexpr std::string_view kHistogramTag = "hist/values";
inline constexpr std::string_view kImageTag = "img/pixels";
// Tags of writer thread `w` in workload (d): "multi/w<w>/t<k>".
std::vector<std::string> MultiWriterTags(const Config& config, int w);
// The value of scalar call i (bounded, exactly representable).
inline float ScalarValueAt(int64_t i) { return static_cast<float>(i % 1000) * 0.5f; }

// One side (through tblogd, or in-process) of one workload.
struct Side {
  absl::Status status;
  double seconds = 0;          // first call until the flush returned
  double caller_seconds = 0;   // inside the record calls (summed over threads)
  int64_t calls = 0;
  double units = 0;            // scalars, histogram elements or images
  double cpu_seconds = 0;      // this process, plus the daemon's when known
  uint64_t blocked_calls = 0;  // client calls that waited for buffer room

  double rate() const { return seconds > 0 ? units / seconds : 0; }
  double per_call() const { return calls > 0 ? caller_seconds / static_cast<double>(calls) : 0; }
};

// CPU seconds (user + system) used so far by this process, all threads.
double OwnCpuSeconds();

using Clock = std::chrono::steady_clock;
inline double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// What the threads of workload (d) did, thread by thread.
struct WriterThreads {
  std::vector<absl::Status> statuses;  // thread w: its first failed call, else its finish
  double caller_seconds = 0;           // inside the calls, summed over the threads

  // The first thread's error, in thread order; OK when none failed.
  absl::Status FirstError() const {
    for (const absl::Status& status : statuses) {
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
};

// Workload (d), the same on both sides: config.writers threads are started
// and made ready (tags built) before `at_start()` runs on this thread, where
// the caller starts its clocks; then all are released at once. Thread w makes
// config.writer_scalars calls `call(w, tag, step, value)`: scalar i goes to
// MultiWriterTags(config, w)[i % tags] at step i / tags with ScalarValueAt(i).
// A thread stops at its first error; otherwise, outside the timed calls, it
// records `finish(w)`. Returns once every thread is joined. `call` and
// `finish` run on all threads at once and must be safe for that.
template <typename Call, typename Finish, typename AtStart>
WriterThreads RunWriterThreads(const Config& config, Call call, Finish finish, AtStart at_start) {
  const size_t count = static_cast<size_t>(config.writers);
  std::vector<absl::Status> statuses(count);
  std::vector<double> caller_seconds(count);
  std::latch start_line(config.writers + 1);
  std::vector<std::thread> threads;
  for (int w = 0; w < config.writers; ++w) {
    threads.emplace_back([&, w] {
      const std::vector<std::string> tags = MultiWriterTags(config, w);
      start_line.arrive_and_wait();
      const Clock::time_point start = Clock::now();
      for (int64_t i = 0; i < config.writer_scalars; ++i) {
        if (absl::Status status = call(w, tags[i % config.tags], i / config.tags, ScalarValueAt(i));
            !status.ok()) {
          statuses[w] = status;
          return;
        }
      }
      caller_seconds[w] = SecondsBetween(start, Clock::now());
      statuses[w] = finish(w);
    });
  }
  at_start();
  start_line.arrive_and_wait();
  for (std::thread& thread : threads) thread.join();
  WriterThreads done;
  done.statuses = std::move(statuses);
  for (double seconds : caller_seconds) done.caller_seconds += seconds;
  return done;
}

// The in-process side: the engine on the calling thread(s), writing one run
// directory with one EventFileWriter. Not thread-safe; one owner.
class InProcessRun {
 public:
  // Creates `dir` and its event file (the daemon's default fsync policy).
  static absl::StatusOr<std::unique_ptr<InProcessRun>> Create(const std::string& dir);
  ~InProcessRun();

  // (a)-(c): ScalarValue / HistogramBuilder::Uniform (one thread per core) /
  // MakeImageSummaryV2 + Event + Write per call, then Flush().
  Side Scalars(const Config& config, const Inputs& inputs);
  Side Histograms(const Config& config, const Inputs& inputs);
  Side Images(const Config& config, const Inputs& inputs);
  // (d): config.writers threads sharing the file under a mutex.
  Side MultiWriterScalars(const Config& config);
  // Flushes and closes the file.
  absl::Status Close();

 private:
  class Impl;
  explicit InProcessRun(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What a run should hold: tag -> number of events.
using TagCounts = std::map<std::string, int64_t>;
// Adds n scalars logged over `tags` tags "<prefix><k>" in rotation.
void ExpectScalars(std::string_view prefix, int64_t n, int tags, TagCounts* expected);

// Reads the run whose event files are directly in `dir` with the engine's
// reader and compares each tag's event count with `expected`; prints
// "read-back <label>: OK|MISMATCH ..." and the differences. True on a match
// with every file readable to its end.
bool VerifyRun(std::string_view label, const std::string& dir, const TagCounts& expected);

}  // namespace tblog::loadgen

#endif  // TBLOG_BENCH_LOADGEN_H_
