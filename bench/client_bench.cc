// What a record call costs the training thread: tblog::Writer::scalar and
// ::histogram, next to the same work done in-process (a locked append of the
// point, a copy of the values). The target is a socket nothing listens on, so
// this measures the call alone: nothing is drained or acknowledged.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "tblog/client.h"

namespace {

std::unique_ptr<tblog::Writer> OpenUnreachable() {
  tblog::WriterOptions options;
  options.target = "unix:/nonexistent-dir-for-tblog-bench/tblogd.sock";
  options.open_in_background = true;
  options.max_buffer_bytes = size_t{1} << 40;  // never full: no drops, no waits
  options.close_timeout = absl::Milliseconds(1);
  auto writer = tblog::Writer::Open(options);
  return writer.ok() ? std::move(*writer) : nullptr;
}

void BM_WriterScalar(benchmark::State& state) {
  std::unique_ptr<tblog::Writer> writer = OpenUnreachable();
  if (writer == nullptr) return state.SkipWithError("Open failed");
  int64_t step = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(writer->scalar("loss", step, 0.5f));
    ++step;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["dropped"] = static_cast<double>(writer->stats().dropped);
}
BENCHMARK(BM_WriterScalar)->Iterations(5'000'000);

// Four tags in rotation, as a training loop logs loss/acc/lr/grad_norm.
void BM_WriterScalarFourTags(benchmark::State& state) {
  std::unique_ptr<tblog::Writer> writer = OpenUnreachable();
  if (writer == nullptr) return state.SkipWithError("Open failed");
  const char* tags[] = {"train/loss", "train/accuracy", "train/lr", "train/grad_norm"};
  int64_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(writer->scalar(tags[i & 3], i >> 2, 0.5f));
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WriterScalarFourTags)->Iterations(5'000'000);

// In-process baseline: the point appended to a vector under a mutex.
void BM_BaselineLockedAppend(benchmark::State& state) {
  struct Point {
    int64_t step;
    float value;
    double wall_time;
  };
  std::mutex mu;
  std::vector<Point> points;
  int64_t step = 0;
  for (auto _ : state) {
    std::lock_guard<std::mutex> lock(mu);
    points.push_back({step++, 0.5f, 0.0});
  }
  benchmark::DoNotOptimize(points.data());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BaselineLockedAppend)->Iterations(5'000'000);

// Handing over a histogram of n floats: one copy into the record.
void BM_WriterHistogram(benchmark::State& state) {
  const std::vector<float> values(static_cast<size_t>(state.range(0)), 0.25f);
  std::unique_ptr<tblog::Writer> writer = OpenUnreachable();
  if (writer == nullptr) return state.SkipWithError("Open failed");
  int64_t step = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(writer->histogram("weights", step++, values));
    if (step % 64 == 0) {  // bound the memory held by undelivered records
      state.PauseTiming();
      writer.reset();
      writer = OpenUnreachable();
      state.ResumeTiming();
    }
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * 4);
}
BENCHMARK(BM_WriterHistogram)->Arg(1 << 20)->Unit(benchmark::kMicrosecond);

// In-process baseline: copying the same values into fresh memory that is
// kept, as a buffer that is not yet drained keeps it.
void BM_BaselineCopy(benchmark::State& state) {
  const std::vector<float> values(static_cast<size_t>(state.range(0)), 0.25f);
  std::vector<std::vector<float>> kept;
  for (auto _ : state) {
    kept.emplace_back(values);
    benchmark::DoNotOptimize(kept.back().data());
    if (kept.size() == 64) {
      state.PauseTiming();
      kept.clear();
      state.ResumeTiming();
    }
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * 4);
}
BENCHMARK(BM_BaselineCopy)->Arg(1 << 20)->Unit(benchmark::kMicrosecond);

// End to end, when $TBLOG_ADDRESS names a running tblogd: 100k scalars then
// a flush barrier per iteration, so the rate is what the daemon wrote.
void BM_WriterScalarsThroughDaemon(benchmark::State& state) {
  if (std::getenv("TBLOG_ADDRESS") == nullptr) {
    return state.SkipWithError("set TBLOG_ADDRESS to a running tblogd");
  }
  tblog::WriterOptions options;
  options.experiment = "client_bench";
  auto writer = tblog::Writer::Open(options);
  if (!writer.ok()) return state.SkipWithError("Open failed");
  constexpr int64_t kPerFlush = 100'000;
  int64_t step = 0;
  for (auto _ : state) {
    for (int64_t i = 0; i < kPerFlush; ++i) (void)(*writer)->scalar("loss", step++, 0.5f);
    if (!(*writer)->flush().ok()) return state.SkipWithError("flush failed");
  }
  state.SetItemsProcessed(state.iterations() * kPerFlush);
}
BENCHMARK(BM_WriterScalarsThroughDaemon)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
