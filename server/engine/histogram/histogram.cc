// HistogramBuilder's entry points, and what both layouts share: input
// checks, the split into tasks, the choice between the portable code and the
// AVX2 kernels, the merge of the tasks' results and the non-finite policy.
// The layouts' own code is in histogram_uniform.cc and
// histogram_exponential.cc, the float32 vector code in histogram_avx2.cc.
#include "engine/histogram/histogram.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "engine/histogram/histogram_avx2.h"
#include "engine/histogram/histogram_exponential.h"
#include "engine/histogram/histogram_pass.h"
#include "engine/histogram/histogram_uniform.h"

namespace tblog {
namespace {

using histogram_internal::ExponentialBins;
using histogram_internal::ExponentialTally;
using histogram_internal::FloatUniformBuckets;
using histogram_internal::MinMax;
using histogram_internal::NonFiniteTally;
using histogram_internal::TaskPlan;
using histogram_internal::UniformBoundaries;

// ---- Kernel choice ------------------------------------------------------------
// float32 inputs (the common case) have AVX2 kernels, compiled per function
// (no -march flag in the build) and chosen at run time; every other input,
// and machines without AVX2, take the portable scalar code. Both give the
// same bits: the kernels only change how an index is found, never which.

std::atomic<bool> portable_kernels_only{false};

bool CpuHasAvx2() {
#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS
  static const bool supported = __builtin_cpu_supports("avx2") != 0;
  return supported;
#else
  return false;
#endif
}

bool UseAvx2Kernels() {
  return CpuHasAvx2() && !portable_kernels_only.load(std::memory_order_relaxed);
}

// ---- Splitting into tasks ----------------------------------------------------

// chunks_per_task: the fewest chunks a task should get, unless that would
// leave a thread without a task.
TaskPlan PlanTasks(int64_t num_elements, const ParallelRunner* runner,
                   int64_t chunks_per_task = 1) {
  TaskPlan plan;
  plan.num_elements = num_elements;
  plan.num_chunks =
      (num_elements + HistogramBuilder::kChunkElements - 1) / HistogramBuilder::kChunkElements;
  // A few tasks per thread so that an unlucky slow thread does not hold up
  // the others for long.
  const int64_t threads = runner == nullptr ? 1 : runner->Concurrency();
  const int64_t wanted = runner == nullptr ? 1 : 4 * threads;
  const int64_t fewer = std::max((plan.num_chunks + chunks_per_task - 1) / chunks_per_task,
                                 std::min(plan.num_chunks, threads));
  plan.num_tasks = static_cast<int>(std::clamp<int64_t>(fewer, 1, wanted));
  return plan;
}

void RunTasks(const TaskPlan& plan, ParallelRunner* runner, absl::FunctionRef<void(int)> fn) {
  if (plan.num_tasks == 1 || runner == nullptr) {
    for (int t = 0; t < plan.num_tasks; ++t) fn(t);
  } else {
    runner->ParallelFor(plan.num_tasks, fn);
  }
}

absl::Status CheckNonFinite(std::string_view tag, const NonFiniteTally& tally,
                            NonFinitePolicy policy) {
  if (tally.count == 0 || policy == NonFinitePolicy::kSkip) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "histogram '", Sv(tag), "': ", tally.count,
      " non-finite value(s) (NaN or infinity), the first at flat index ", tally.first_index));
}

absl::Status ValidateInput(std::string_view tag, const TensorView& data) {
  return Annotate(data.Validate(), absl::StrCat("histogram '", Sv(tag), "'"));
}

// Pass 1 of the uniform layout over elements [begin, end).
MinMax ScanRange(DType dtype, const char* base, int64_t begin, int64_t end) {
#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS
  if (dtype == DType::kFloat32 && UseAvx2Kernels()) {
    if (std::optional<MinMax> range = histogram_internal::ScanFloatMinMaxAvx2(base, begin, end)) {
      return *range;
    }
  }
#endif
  return histogram_internal::ScanMinMax(dtype, base, begin, end);
}

// Runs count(begin, end, counts) over every task of `plan` into counts of
// its own, and adds them up: k counts.
std::vector<uint64_t> CountTasks(
    const TaskPlan& plan, ParallelRunner* runner, int k,
    absl::FunctionRef<void(int task, int64_t begin, int64_t end, std::vector<uint64_t>& local)>
        count) {
  std::vector<std::vector<uint64_t>> task_counts(static_cast<size_t>(plan.num_tasks));
  RunTasks(plan, runner, [&](int task) {
    std::vector<uint64_t>& local = task_counts[static_cast<size_t>(task)];
    local.assign(static_cast<size_t>(k), 0);
    count(task, plan.ElementAt(plan.ChunkBegin(task)), plan.ElementAt(plan.ChunkBegin(task + 1)),
          local);
  });
  std::vector<uint64_t> counts(static_cast<size_t>(k));
  for (const std::vector<uint64_t>& local : task_counts) {
    for (size_t i = 0; i < counts.size(); ++i) counts[i] += local[i];
  }
  return counts;
}

// The uniform layout in one pass, from a range hint checked in that pass
// (HistogramBuilder::Uniform): nullopt when the hint does not
// apply or is wrong, and the caller then makes both passes. When the range
// the pass reads is exactly the hint's, every value was finite and in
// [min, max], so the counts are those the second pass would make from the
// first pass's range (which is that range: same width, same buckets), and
// the range itself, zero signs included, is the first pass's.
std::optional<tb::Summary::Value> UniformFromHint(std::string_view tag, const TensorView& data,
                                                  int k, const TaskPlan& plan,
                                                  const HistogramRangeHint& hint,
                                                  ParallelRunner* runner) {
#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS
  // An all-equal input (min == max) has no counting pass to check in.
  if (data.dtype != DType::kFloat32 || !UseAvx2Kernels() || k == 0 || plan.num_elements == 0 ||
      !(hint.min < hint.max) || !std::isfinite(hint.max - hint.min)) {
    return std::nullopt;
  }
  const UniformBoundaries boundaries(k, (hint.max - hint.min) / k);
  const std::optional<FloatUniformBuckets> buckets =
      FloatUniformBuckets::Make(k, hint.min, hint.max, boundaries);
  if (!buckets.has_value()) return std::nullopt;
  const char* base = data.data.data();
  std::vector<std::optional<MinMax>> seen(static_cast<size_t>(plan.num_tasks));
  std::vector<uint64_t> counts = CountTasks(
      plan, runner, k,
      [&](int task, int64_t begin, int64_t end, std::vector<uint64_t>& local) {
        seen[static_cast<size_t>(task)] =
            histogram_internal::CountUniformFloatCheckedAvx2(base, begin, end, *buckets, local);
      });
  MinMax range;
  for (const std::optional<MinMax>& part : seen) {
    if (!part.has_value()) return std::nullopt;  // NaN or Inf
    range.Merge(*part);
  }
  if (range.min != hint.min || range.max != hint.max) return std::nullopt;
  return histogram_internal::UniformValue(tag, k, range, counts);
#else
  (void)tag, (void)data, (void)k, (void)plan, (void)hint, (void)runner;
  return std::nullopt;
#endif
}

}  // namespace

std::span<const double> HistogramBuilder::ExponentialEdges() {
  return ExponentialBins::Get().edges();
}

absl::StatusOr<HistogramSummary> HistogramBuilder::Uniform(
    std::string_view tag, const TensorView& data,
    std::optional<HistogramRangeHint> range_hint) const {
  TBLOG_RETURN_IF_ERROR(ValidateInput(tag, data));
  const int k = options_.bucket_count;
  if (k < 0 || k > kMaxBucketCount) {
    return absl::InvalidArgumentError(absl::StrCat("histogram '", Sv(tag), "': bucket count ", k,
                                                   " is outside [0, ", kMaxBucketCount, "]"));
  }
  const char* base = data.data.data();
  const TaskPlan plan = PlanTasks(data.num_elements(), options_.runner);
  if (range_hint.has_value()) {
    if (std::optional<tb::Summary::Value> value =
            UniformFromHint(tag, data, k, plan, *range_hint, options_.runner)) {
      return HistogramSummary{*std::move(value), 0, true};
    }
  }

  // Pass 1: range and non-finite values.
  std::vector<MinMax> ranges(static_cast<size_t>(plan.num_tasks));
  RunTasks(plan, options_.runner, [&](int task) {
    const int64_t begin = plan.ElementAt(plan.ChunkBegin(task));
    const int64_t end = plan.ElementAt(plan.ChunkBegin(task + 1));
    ranges[static_cast<size_t>(task)] = ScanRange(data.dtype, base, begin, end);
  });
  MinMax range;
  for (const MinMax& part : ranges) range.Merge(part);
  TBLOG_RETURN_IF_ERROR(CheckNonFinite(tag, range.nonfinite, options_.non_finite));

  // Pass 2: counts, only when the buckets have a width.
  std::vector<uint64_t> counts(static_cast<size_t>(k));
  if (k > 0 && range.finite_count > 0 && range.max > range.min) {
    const double width = (range.max - range.min) / k;
    const bool use_boundaries = std::isfinite(range.max - range.min);
    const UniformBoundaries boundaries(use_boundaries ? k : 1, use_boundaries ? width : 1.0);
    // The float kernels need every value in [min, max], so no NaN/Inf.
    const std::optional<FloatUniformBuckets> float_buckets =
        data.dtype == DType::kFloat32 && use_boundaries && range.nonfinite.count == 0 &&
                UseAvx2Kernels()
            ? FloatUniformBuckets::Make(k, range.min, range.max, boundaries)
            : std::nullopt;
    counts = CountTasks(
        plan, options_.runner, k,
        [&](int, int64_t begin, int64_t end, std::vector<uint64_t>& local) {
#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS
          if (float_buckets.has_value()) {
            histogram_internal::CountUniformFloatAvx2(base, begin, end, *float_buckets, local);
            return;
          }
#endif
          if (use_boundaries) {
            histogram_internal::CountUniform(data.dtype, base, begin, end, range.min,
                                             boundaries, local);
          } else {
            histogram_internal::CountUniformByDivision(data.dtype, base, begin, end, range.min,
                                                       width, local);
          }
        });
  }
  return HistogramSummary{histogram_internal::UniformValue(tag, k, range, counts),
                          range.nonfinite.count, false};
}

absl::StatusOr<HistogramSummary> HistogramBuilder::Exponential(std::string_view tag,
                                                               const TensorView& data) const {
  TBLOG_RETURN_IF_ERROR(ValidateInput(tag, data));
  const char* base = data.data.data();
  // Tasks of four chunks: the float32 kernel sums four side by side (see
  // histogram_avx2.cc), and with fewer its sums' latency bounds it again.
  const TaskPlan plan = PlanTasks(data.num_elements(), options_.runner, 4);
  const ExponentialBins& bins = ExponentialBins::Get();

  std::vector<ExponentialTally> tallies(static_cast<size_t>(plan.num_tasks));
  std::vector<double> chunk_sums(static_cast<size_t>(plan.num_chunks));
  std::vector<double> chunk_sum_squares(static_cast<size_t>(plan.num_chunks));
  RunTasks(plan, options_.runner, [&](int task) {
    ExponentialTally& tally = tallies[static_cast<size_t>(task)];
#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS
    if (data.dtype == DType::kFloat32 && UseAvx2Kernels()) {
      histogram_internal::TallyExponentialFloatTaskAvx2(base, plan, task, bins, tally, chunk_sums,
                                                        chunk_sum_squares);
      return;
    }
#endif
    histogram_internal::TallyExponentialTask(data.dtype, base, plan, task, bins, tally,
                                             chunk_sums, chunk_sum_squares);
  });

  ExponentialTally total;
  for (const ExponentialTally& part : tallies) total.Merge(part);
  TBLOG_RETURN_IF_ERROR(CheckNonFinite(tag, total.nonfinite, options_.non_finite));
  double sum = 0, sum_squares = 0;
  for (size_t c = 0; c < chunk_sums.size(); ++c) {
    sum += chunk_sums[c];
    sum_squares += chunk_sum_squares[c];
  }
  const int64_t finite_count = data.num_elements() - total.nonfinite.count;
  return HistogramSummary{
      histogram_internal::ExponentialValue(tag, total, finite_count, sum, sum_squares),
      total.nonfinite.count, false};
}

namespace histogram_internal {

void UsePortableKernelsOnly(bool portable_only) {
  portable_kernels_only.store(portable_only, std::memory_order_relaxed);
}

bool Avx2KernelsAvailable() { return CpuHasAvx2(); }

}  // namespace histogram_internal
}  // namespace tblog
