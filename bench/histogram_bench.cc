// Histogram throughput (elements/s) for float32 inputs of 1M and 100M
// elements, both layouts, on 1 thread and on all hardware threads, next to a
// plain sum over the same buffer: the memory-bandwidth bound. Each histogram
// benchmark reports the sum's rate on the same threads and the ratio
// histogram/sum as counters, in wall time and in process CPU time (on a
// loaded machine the CPU-time rates say what the code costs, the wall-time
// ones what the box gave it). The CPU model, thread count and load average
// are printed in the context header; the load average again at the end.
//
//   histogram_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "engine/histogram/histogram.h"
#include "engine/histogram/parallel.h"

namespace tblog {
namespace {

constexpr int64_t kSmall = 1'000'000;
constexpr int64_t kLarge = 100'000'000;

int HardwareThreads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::string CpuModel() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

std::string LoadAverage() {
  std::ifstream loadavg("/proc/loadavg");
  std::string one, five, fifteen;
  loadavg >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

// CPU seconds used by all threads of this process so far.
double ProcessCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// Roughly normal data (sum of four uniforms, scaled), made once per size
// with a cheap generator so that the 100M buffer is ready in well under a
// second.
const std::vector<float>& Data(int64_t n) {
  static std::vector<float> small, large;
  std::vector<float>& data = n == kSmall ? small : large;
  if (static_cast<int64_t>(data.size()) != n) {
    data.resize(static_cast<size_t>(n));
    uint64_t state = 0x9E3779B97F4A7C15u;
    const auto uniform = [&state] {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      return static_cast<float>(state >> 40) * (1.0f / 16777216.0f);
    };
    for (float& v : data) v = (uniform() + uniform() + uniform() + uniform() - 2.0f) * 1.7f;
  }
  return data;
}

// Sum of floats with 8 independent accumulators, so the loop is bound by
// memory rather than by add latency.
float SumRange(const float* data, int64_t begin, int64_t end) {
  float acc[8] = {};
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += data[i + j];
  }
  for (; i < end; ++i) acc[0] += data[i];
  float total = 0;
  for (float a : acc) total += a;
  return total;
}

// The plain sum split over the runner the way the histograms split their input.
float ParallelSum(const std::vector<float>& data, ParallelRunner& runner) {
  const int tasks = 4 * runner.Concurrency();
  const int64_t n = static_cast<int64_t>(data.size());
  std::vector<float> partial(static_cast<size_t>(tasks));
  runner.ParallelFor(tasks, [&](int t) {
    partial[static_cast<size_t>(t)] = SumRange(data.data(), n * t / tasks, n * (t + 1) / tasks);
  });
  float total = 0;
  for (float p : partial) total += p;
  return total;
}

void BM_Sum(benchmark::State& state) {
  const std::vector<float>& data = Data(state.range(0));
  ThreadParallelRunner runner(static_cast<int>(state.range(1)));
  const double cpu_start = ProcessCpuSeconds();
  for (auto _ : state) benchmark::DoNotOptimize(ParallelSum(data, runner));
  const double cpu_seconds = ProcessCpuSeconds() - cpu_start;
  state.SetItemsProcessed(state.iterations() * state.range(0));
  // Elements per CPU second of all threads together.
  state.counters["cpu_items_per_second"] =
      static_cast<double>(state.iterations() * state.range(0)) / cpu_seconds;
}

// kUniformWithRange: the uniform layout given the values' range (as a
// shared-memory client sends it, HistogramBuilder::Uniform's range_hint):
// one pass over the data instead of two.
enum class Layout { kUniform, kUniformWithRange, kExponential };

template <Layout kLayout>
void BM_Histogram(benchmark::State& state) {
  const std::vector<float>& data = Data(state.range(0));
  ThreadParallelRunner runner(static_cast<int>(state.range(1)));
  const int64_t shape[] = {state.range(0)};
  const TensorView view{
      DType::kFloat32, shape,
      std::string_view(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float))};
  const HistogramBuilder builder({.runner = &runner});
  const auto [lowest, highest] = std::minmax_element(data.begin(), data.end());
  const HistogramRangeHint range{*lowest, *highest};
  // The sum runs right after each histogram, on the same threads and under
  // the same machine load, outside the timed region.
  double histogram_seconds = 0, sum_seconds = 0, histogram_cpu = 0, sum_cpu = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = ProcessCpuSeconds();
    auto built = kLayout == Layout::kUniform            ? builder.Uniform("w", view)
                 : kLayout == Layout::kUniformWithRange ? builder.Uniform("w", view, range)
                                                        : builder.Exponential("w", view);
    benchmark::DoNotOptimize(built);
    const double histogram_cpu_end = ProcessCpuSeconds();
    const auto histogram_end = std::chrono::steady_clock::now();
    state.PauseTiming();
    const double sum_cpu_start = ProcessCpuSeconds();
    benchmark::DoNotOptimize(ParallelSum(data, runner));
    sum_cpu += ProcessCpuSeconds() - sum_cpu_start;
    sum_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - histogram_end).count();
    histogram_seconds += std::chrono::duration<double>(histogram_end - start).count();
    histogram_cpu += histogram_cpu_end - cpu_start;
    state.ResumeTiming();
    if (!built.ok()) {
      state.SkipWithError(std::string(built.status().message()).c_str());
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  const double elements = static_cast<double>(state.iterations() * state.range(0));
  state.counters["sum_items_per_second"] = elements / sum_seconds;
  // Histogram rate / sum rate: 1.0 would mean as fast as reading the buffer.
  state.counters["ratio_vs_sum"] = sum_seconds / histogram_seconds;
  // The same in CPU seconds of all threads: elements per CPU second.
  state.counters["cpu_items_per_second"] = elements / histogram_cpu;
  state.counters["sum_cpu_items_per_second"] = elements / sum_cpu;
  state.counters["cpu_ratio_vs_sum"] = sum_cpu / histogram_cpu;
}

std::vector<int> ThreadCounts() {
  return HardwareThreads() > 1 ? std::vector<int>{1, HardwareThreads()} : std::vector<int>{1};
}

void SmallInput(benchmark::internal::Benchmark* b) {
  for (int threads : ThreadCounts()) b->Args({kSmall, threads});
  b->ArgNames({"n", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

// A few iterations only: one pass over 400 MB already takes a while.
void LargeInput(benchmark::internal::Benchmark* b) {
  for (int threads : ThreadCounts()) b->Args({kLarge, threads});
  b->ArgNames({"n", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(3);
}

BENCHMARK(BM_Sum)->Apply(SmallInput);
BENCHMARK(BM_Sum)->Apply(LargeInput);
BENCHMARK(BM_Histogram<Layout::kUniform>)->Apply(SmallInput);
BENCHMARK(BM_Histogram<Layout::kUniform>)->Apply(LargeInput);
BENCHMARK(BM_Histogram<Layout::kUniformWithRange>)->Apply(SmallInput);
BENCHMARK(BM_Histogram<Layout::kUniformWithRange>)->Apply(LargeInput);
BENCHMARK(BM_Histogram<Layout::kExponential>)->Apply(SmallInput);
BENCHMARK(BM_Histogram<Layout::kExponential>)->Apply(LargeInput);

}  // namespace
}  // namespace tblog

int main(int argc, char** argv) {
  benchmark::AddCustomContext("cpu_model", tblog::CpuModel());
  benchmark::AddCustomContext("hardware_threads", std::to_string(tblog::HardwareThreads()));
  benchmark::AddCustomContext("load_average_at_start", tblog::LoadAverage());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  std::cout << "load_average_at_end: " << tblog::LoadAverage() << std::endl;
  benchmark::Shutdown();
  return 0;
}
