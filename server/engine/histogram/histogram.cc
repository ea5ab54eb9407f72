#include "engine/histogram/histogram.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "tblog/tensorboard/plugins.pb.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS 1
#else
#define TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS 0
#endif

namespace tblog {
namespace {

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

float LoadFloat(const char* base, int64_t i) {
  float v;
  std::memcpy(&v, base + static_cast<size_t>(i) * sizeof v, sizeof v);
  return v;
}

// Finite floats in order as unsigned integers (-0 just below +0), so that a
// binary search can walk them.
uint32_t OrderedKey(float f) {
  const auto bits = std::bit_cast<uint32_t>(f);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

float FromOrderedKey(uint32_t key) {
  return std::bit_cast<float>((key & 0x80000000u) != 0 ? key & 0x7fffffffu : ~key);
}

// The smallest float in [lo, hi] for which `reaches` holds, +inf if none;
// `reaches` must be monotone (false then true) over that interval.
template <typename Predicate>
float SmallestFloatWhere(float lo, float hi, Predicate reaches) {
  uint64_t first = OrderedKey(lo), last = uint64_t{OrderedKey(hi)} + 1;
  while (first < last) {
    const uint64_t mid = first + (last - first) / 2;
    if (reaches(FromOrderedKey(static_cast<uint32_t>(mid)))) {
      last = mid;
    } else {
      first = mid + 1;
    }
  }
  return first == uint64_t{OrderedKey(hi)} + 1 ? std::numeric_limits<float>::infinity()
                                               : FromOrderedKey(static_cast<uint32_t>(first));
}

// ---- Element access, one specialisation per dtype -------------------------
// Value is the type the hot loops work in: float for 32- and 16-bit floats
// (exact, and cheaper than double), double otherwise. Comparisons and
// min/max give the same answer in Value and in double, since the widening is
// exact for floats and monotonic for integers.

template <typename T>
T LoadRaw(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename Stored, typename V>
struct PlainElement {
  using Value = V;
  static constexpr size_t kSize = sizeof(Stored);
  static constexpr bool kMayBeNonFinite = std::is_floating_point_v<Stored>;
  static Value Load(const char* p) { return static_cast<Value>(LoadRaw<Stored>(p)); }
};

struct HalfElement {
  using Value = float;
  static constexpr size_t kSize = 2;
  static constexpr bool kMayBeNonFinite = true;
  static Value Load(const char* p) { return HalfToFloat(LoadRaw<uint16_t>(p)); }
};

struct Bfloat16Element {
  using Value = float;
  static constexpr size_t kSize = 2;
  static constexpr bool kMayBeNonFinite = true;
  static Value Load(const char* p) { return Bfloat16ToFloat(LoadRaw<uint16_t>(p)); }
};

struct BoolElement {
  using Value = double;
  static constexpr size_t kSize = 1;
  static constexpr bool kMayBeNonFinite = false;
  static Value Load(const char* p) { return *p != 0 ? 1.0 : 0.0; }
};

// Calls fn(Element{}) with the element type of `dtype` (already validated).
template <typename Fn>
auto VisitDType(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat32: return fn(PlainElement<float, float>{});
    case DType::kFloat64: return fn(PlainElement<double, double>{});
    case DType::kInt32: return fn(PlainElement<int32_t, double>{});
    case DType::kUint8: return fn(PlainElement<uint8_t, double>{});
    case DType::kInt16: return fn(PlainElement<int16_t, double>{});
    case DType::kInt8: return fn(PlainElement<int8_t, double>{});
    case DType::kInt64: return fn(PlainElement<int64_t, double>{});
    case DType::kBool: return fn(BoolElement{});
    case DType::kBfloat16: return fn(Bfloat16Element{});
    case DType::kUint16: return fn(PlainElement<uint16_t, double>{});
    case DType::kFloat16: return fn(HalfElement{});
    case DType::kUint32: return fn(PlainElement<uint32_t, double>{});
    case DType::kUint64: return fn(PlainElement<uint64_t, double>{});
  }
  return fn(PlainElement<float, float>{});  // unreachable for a validated view
}

template <typename E>
bool IsFinite(typename E::Value v) {
  if constexpr (E::kMayBeNonFinite) {
    return std::isfinite(v);
  } else {
    return true;
  }
}

// ---- Splitting into tasks ----------------------------------------------------

// Tasks cover whole chunks: task t gets chunks [begin, end). Task boundaries
// never change a result (see the header), only how the work is shared.
struct TaskPlan {
  int64_t num_elements;
  int64_t num_chunks;
  int num_tasks;

  int64_t ChunkBegin(int task) const { return num_chunks * task / num_tasks; }
  int64_t ElementAt(int64_t chunk) const {
    return std::min(num_elements, chunk * HistogramBuilder::kChunkElements);
  }
};

TaskPlan PlanTasks(int64_t num_elements, const ParallelRunner* runner) {
  TaskPlan plan;
  plan.num_elements = num_elements;
  plan.num_chunks =
      (num_elements + HistogramBuilder::kChunkElements - 1) / HistogramBuilder::kChunkElements;
  // A few tasks per thread so that an unlucky slow thread does not hold up
  // the others for long.
  const int64_t wanted = runner == nullptr ? 1 : int64_t{4} * runner->Concurrency();
  plan.num_tasks = static_cast<int>(std::clamp<int64_t>(plan.num_chunks, 1, wanted));
  return plan;
}

void RunTasks(const TaskPlan& plan, ParallelRunner* runner, absl::FunctionRef<void(int)> fn) {
  if (plan.num_tasks == 1 || runner == nullptr) {
    for (int t = 0; t < plan.num_tasks; ++t) fn(t);
  } else {
    runner->ParallelFor(plan.num_tasks, fn);
  }
}

// Non-finite values seen by one task.
struct NonFiniteTally {
  int64_t count = 0;
  int64_t first_index = -1;

  void Merge(const NonFiniteTally& other) {
    if (other.count == 0) return;
    if (count == 0 || other.first_index < first_index) first_index = other.first_index;
    count += other.count;
  }
};

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

// ---- Uniform layout ------------------------------------------------------------

struct MinMax {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  int64_t finite_count = 0;
  NonFiniteTally nonfinite;
};

template <typename E>
MinMax ScanMinMax(const char* base, int64_t begin, int64_t end) {
  using V = typename E::Value;
  V lo = std::numeric_limits<V>::infinity();
  V hi = -std::numeric_limits<V>::infinity();
  MinMax out;
  for (int64_t i = begin; i < end; ++i) {
    const V v = E::Load(base + static_cast<size_t>(i) * E::kSize);
    if (!IsFinite<E>(v)) {
      if (out.nonfinite.count++ == 0) out.nonfinite.first_index = i;
      continue;
    }
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  out.min = static_cast<double>(lo);
  out.max = static_cast<double>(hi);
  out.finite_count = (end - begin) - out.nonfinite.count;
  return out;
}

// Bucket boundaries of the uniform layout as offsets from min: bucket(x) is
// the number of thresholds t_i (i = 1..k-1) with x - min >= t_i, where t_i is
// the smallest offset whose quotient fl(offset / width) reaches i. That is
// exactly TensorBoard's min(floor((x - min) / width), k - 1), because a
// correctly rounded quotient never decreases as the offset grows; it lets the
// hot loop guess with a multiplication and settle with two comparisons
// instead of dividing.
class UniformBoundaries {
 public:
  UniformBoundaries(int k, double width) : inverse_width_(1.0 / width), last_(k - 1) {
    thresholds_.resize(static_cast<size_t>(k) + 1);
    thresholds_[0] = -std::numeric_limits<double>::infinity();
    for (int i = 1; i < k; ++i)
      thresholds_[static_cast<size_t>(i)] = SmallestOffsetReaching(i, width);
    thresholds_[static_cast<size_t>(k)] = std::numeric_limits<double>::infinity();
  }

  // t_i: the smallest offset in bucket i (1 <= i < k).
  double threshold(int i) const { return thresholds_[static_cast<size_t>(i)]; }

  // The bucket of a finite offset >= 0.
  int64_t BucketOf(double offset) const {
    const double guess = offset * inverse_width_;
    // The product is within a few ulps of the quotient: off by at most one.
    int64_t index = guess < static_cast<double>(last_) ? static_cast<int64_t>(guess) : last_;
    const double* t = thresholds_.data();
    index += offset >= t[index + 1] ? 1 : 0;
    index -= offset < t[index] ? 1 : 0;
    return index;
  }

 private:
  // Binary search over the non-negative doubles, ordered like their bits.
  static double SmallestOffsetReaching(int i, double width) {
    uint64_t lo = 0, hi = std::bit_cast<uint64_t>(std::numeric_limits<double>::max());
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      if (std::bit_cast<double>(mid) / width >= i) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return std::bit_cast<double>(lo);
  }

  std::vector<double> thresholds_;  // k+1: -inf, t_1 .. t_{k-1}, +inf
  double inverse_width_;
  int64_t last_;
};

template <typename E>
void CountUniform(const char* base, int64_t begin, int64_t end, double min,
                  const UniformBoundaries& boundaries, std::vector<uint64_t>& counts) {
  uint64_t* count = counts.data();
  for (int64_t i = begin; i < end; ++i) {
    const auto v = E::Load(base + static_cast<size_t>(i) * E::kSize);
    if (!IsFinite<E>(v)) continue;
    ++count[boundaries.BucketOf(static_cast<double>(v) - min)];
  }
}

// The same by division, for a range so wide that (max - min) overflows.
template <typename E>
void CountUniformByDivision(const char* base, int64_t begin, int64_t end, double min, double width,
                            std::vector<uint64_t>& counts) {
  const int64_t last = static_cast<int64_t>(counts.size()) - 1;
  for (int64_t i = begin; i < end; ++i) {
    const auto v = E::Load(base + static_cast<size_t>(i) * E::kSize);
    if (!IsFinite<E>(v)) continue;
    // floor((x - min) / width) clamped to k-1; x >= min, so truncation is
    // floor. inf/inf (NaN) also lands in k-1.
    const double q = (static_cast<double>(v) - min) / width;
    ++counts[static_cast<size_t>(q < static_cast<double>(last) ? static_cast<int64_t>(q) : last)];
  }
}

// ---- Uniform layout, float32 kernels -------------------------------------------

// The min and max of a range of floats, and whether all of them are finite
// (if not, lo and hi mean nothing and the caller rescans with ScanMinMax).
struct FloatRange {
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  bool all_finite = true;
};

// The scalar scans keep the first of equal extremes, which only shows for
// zeros (-0 == +0): a lane-parallel scan gives a zero extreme the sign of the
// first zero of its range to match.
float FirstZero(const char* base, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float v = LoadFloat(base, i);
    if (v == 0) return v;
  }
  return 0.0f;
}

void MatchScalarZeroSigns(const char* base, int64_t begin, int64_t end, FloatRange& range) {
  if (range.lo == 0) range.lo = FirstZero(base, begin, end);
  if (range.hi == 0) range.hi = FirstZero(base, begin, end);
}

// The buckets of UniformBoundaries as float thresholds: bucket(x) is the
// number of X_i (i = 1..k-1) with x >= X_i, X_i being the smallest float
// whose offset double(x) - min reaches t_i. As that offset never decreases
// with x, these are exactly the same buckets, but found in float: a guess
// (x - min) * scale that is provably off by at most one, then two compares.
class FloatUniformBuckets {
 public:
  // nullopt where the guess is not provably within one bucket: a range
  // wider than FLT_MAX, or a scale that is not a normal float.
  static std::optional<FloatUniformBuckets> Make(int k, double min, double max,
                                                 const UniformBoundaries& boundaries) {
    const double range = max - min;
    const double scale = k / range;
    if (!(range > 0 && range <= FLT_MAX && scale >= FLT_MIN && scale <= FLT_MAX)) {
      return std::nullopt;
    }
    FloatUniformBuckets out;
    out.min_ = static_cast<float>(min);
    out.scale_ = static_cast<float>(scale);
    out.last_ = k - 1;
    out.thresholds_.reserve(static_cast<size_t>(k) + 1);
    out.thresholds_.push_back(-std::numeric_limits<float>::infinity());
    for (int i = 1; i < k; ++i) {
      const double t = boundaries.threshold(i);
      out.thresholds_.push_back(
          SmallestFloatWhere(out.min_, static_cast<float>(max),
                             [&](float x) { return static_cast<double>(x) - min >= t; }));
    }
    out.thresholds_.push_back(std::numeric_limits<float>::infinity());
    return out;
  }

  // The bucket of a finite x in [min, max]. Why the guess is within one:
  // every rounding above is relative (2^-24 each; a subnormal difference is
  // off by at most 2^-150, times a scale below 2^128), so the guess is within
  // k * 2^-22 < 0.003 of the exact quotient, and floors of reals less than 1
  // apart differ by at most 1.
  int Of(float x) const {
    const float guess = (x - min_) * scale_;
    const int index = guess < static_cast<float>(last_) ? static_cast<int>(guess) : last_;
    return index - 1 + (x >= thresholds_[static_cast<size_t>(index)] ? 1 : 0) +
           (x >= thresholds_[static_cast<size_t>(index) + 1] ? 1 : 0);
  }

  float min() const { return min_; }
  float scale() const { return scale_; }
  int last() const { return last_; }
  const float* thresholds() const { return thresholds_.data(); }  // k+1: -inf, X_1.., +inf

 private:
  FloatUniformBuckets() = default;

  float min_ = 0;
  float scale_ = 0;
  int last_ = 0;
  std::vector<float> thresholds_;
};

#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS

const float* FloatsAt(const char* base, int64_t i) {
  return reinterpret_cast<const float*>(base + static_cast<size_t>(i) * sizeof(float));
}

// ScanMinMax for float32 with eight lanes; see FloatRange.
[[gnu::target("avx2")]] FloatRange ScanFloatRangeAvx2(const char* base, int64_t begin,
                                                       int64_t end) {
  __m256 lo0 = _mm256_set1_ps(std::numeric_limits<float>::infinity()), lo1 = lo0;
  __m256 hi0 = _mm256_set1_ps(-std::numeric_limits<float>::infinity()), hi1 = hi0;
  const __m256i magnitude_mask = _mm256_set1_epi32(0x7fffffff);
  __m256i largest_magnitude = _mm256_setzero_si256();  // as bits: >= 0x7f800000 is NaN/Inf
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) {
    const __m256 a = _mm256_loadu_ps(FloatsAt(base, i));
    const __m256 b = _mm256_loadu_ps(FloatsAt(base, i + 8));
    lo0 = _mm256_min_ps(a, lo0);
    lo1 = _mm256_min_ps(b, lo1);
    hi0 = _mm256_max_ps(a, hi0);
    hi1 = _mm256_max_ps(b, hi1);
    largest_magnitude = _mm256_max_epu32(
        largest_magnitude, _mm256_and_si256(_mm256_castps_si256(a), magnitude_mask));
    largest_magnitude = _mm256_max_epu32(
        largest_magnitude, _mm256_and_si256(_mm256_castps_si256(b), magnitude_mask));
  }
  alignas(32) float lows[8], highs[8];
  alignas(32) uint32_t magnitudes[8];
  _mm256_store_ps(lows, _mm256_min_ps(lo0, lo1));
  _mm256_store_ps(highs, _mm256_max_ps(hi0, hi1));
  _mm256_store_si256(reinterpret_cast<__m256i*>(magnitudes), largest_magnitude);
  FloatRange out;
  uint32_t largest = 0;
  for (int lane = 0; lane < 8; ++lane) {
    out.lo = std::min(out.lo, lows[lane]);
    out.hi = std::max(out.hi, highs[lane]);
    largest = std::max(largest, magnitudes[lane]);
  }
  for (; i < end; ++i) {
    const float v = LoadFloat(base, i);
    out.lo = std::min(out.lo, v);
    out.hi = std::max(out.hi, v);
    largest = std::max(largest, std::bit_cast<uint32_t>(v) & 0x7fffffffu);
  }
  out.all_finite = largest < 0x7f800000u;
  return out;
}

// CountUniform for all-finite float32 data in [min, max], eight at a time.
// Indices go through a block buffer into four count arrays, so that runs of
// equal buckets do not wait on each other's increments.
[[gnu::target("avx2")]] void CountUniformFloatAvx2(const char* base, int64_t begin, int64_t end,
                                                   const FloatUniformBuckets& buckets,
                                                   std::vector<uint64_t>& counts) {
  constexpr int64_t kBlock = 1024;
  const size_t k = counts.size();
  std::vector<uint64_t> lanes(4 * k);
  uint64_t* const lane0 = lanes.data();
  uint64_t* const lane1 = lane0 + k;
  uint64_t* const lane2 = lane1 + k;
  uint64_t* const lane3 = lane2 + k;
  const __m256 min = _mm256_set1_ps(buckets.min());
  const __m256 scale = _mm256_set1_ps(buckets.scale());
  const __m256i zero = _mm256_setzero_si256();
  const __m256i last = _mm256_set1_epi32(buckets.last());
  const __m256i minus_one = _mm256_set1_epi32(-1);
  const float* const thresholds = buckets.thresholds();
  alignas(32) int32_t index[kBlock];
  for (int64_t block = begin; block < end; block += kBlock) {
    const int64_t n = std::min(kBlock, end - block);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const __m256 x = _mm256_loadu_ps(FloatsAt(base, block + j));
      const __m256 guess = _mm256_mul_ps(_mm256_sub_ps(x, min), scale);
      const __m256i i =
          _mm256_min_epi32(_mm256_max_epi32(_mm256_cvttps_epi32(guess), zero), last);
      const __m256 below = _mm256_i32gather_ps(thresholds, i, 4);
      const __m256 above = _mm256_i32gather_ps(thresholds + 1, i, 4);
      // A true compare is all ones, i.e. -1: subtracting it adds one.
      const __m256i reached_below = _mm256_castps_si256(_mm256_cmp_ps(x, below, _CMP_GE_OQ));
      const __m256i reached_above = _mm256_castps_si256(_mm256_cmp_ps(x, above, _CMP_GE_OQ));
      const __m256i bucket = _mm256_sub_epi32(
          _mm256_sub_epi32(_mm256_add_epi32(i, minus_one), reached_below), reached_above);
      _mm256_store_si256(reinterpret_cast<__m256i*>(index + j), bucket);
    }
    for (; j < n; ++j) index[j] = buckets.Of(LoadFloat(base, block + j));
    j = 0;
    for (; j + 4 <= n; j += 4) {
      ++lane0[index[j]];
      ++lane1[index[j + 1]];
      ++lane2[index[j + 2]];
      ++lane3[index[j + 3]];
    }
    for (; j < n; ++j) ++lane0[index[j]];
  }
  for (size_t b = 0; b < k; ++b) counts[b] += lane0[b] + lane1[b] + lane2[b] + lane3[b];
}

#endif  // TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS

// Pass 1 of the uniform layout over elements [begin, end).
MinMax ScanRange(DType dtype, const char* base, int64_t begin, int64_t end) {
#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS
  if (dtype == DType::kFloat32 && UseAvx2Kernels()) {
    FloatRange range = ScanFloatRangeAvx2(base, begin, end);
    if (range.all_finite) {
      MatchScalarZeroSigns(base, begin, end, range);
      MinMax out;
      out.min = range.lo;
      out.max = range.hi;
      out.finite_count = end - begin;
      return out;
    }
  }
#endif
  return VisitDType(dtype,
                    [&](auto element) { return ScanMinMax<decltype(element)>(base, begin, end); });
}

// Appends doubles to `bytes` little-endian (the engine assumes a
// little-endian host, as TensorView does).
void AppendDoubles(std::string& bytes, std::initializer_list<double> values) {
  for (double v : values) {
    char raw[sizeof v];
    std::memcpy(raw, &v, sizeof v);
    bytes.append(raw, sizeof raw);
  }
}

tb::Summary::Value UniformValue(std::string_view tag, int k, const MinMax& range,
                                const std::vector<uint64_t>& counts) {
  std::string content;
  content.reserve(static_cast<size_t>(k) * 3 * sizeof(double));
  if (k > 0 && range.finite_count == 0) {
    content.assign(static_cast<size_t>(k) * 3 * sizeof(double), '\0');
  } else if (k > 0 && range.max == range.min) {
    for (int i = 0; i < k; ++i) {
      const double count = i == k - 1 ? static_cast<double>(range.finite_count) : 0.0;
      AppendDoubles(content, {range.min, range.min, count});
    }
  } else if (k > 0) {
    // numpy.linspace(min, max, k+1): step = delta/div, y_i = i*step + start
    // (i/div*delta when step underflows to 0), last edge forced to max.
    const double delta = range.max - range.min;
    const double step = delta / k;
    std::vector<double> edges(static_cast<size_t>(k) + 1);
    for (int i = 0; i < k; ++i) {
      const double scaled =
          step == 0 ? static_cast<double>(i) / k * delta : static_cast<double>(i) * step;
      edges[static_cast<size_t>(i)] = scaled + range.min;
    }
    edges[static_cast<size_t>(k)] = range.max;
    for (size_t i = 0; i < static_cast<size_t>(k); ++i) {
      AppendDoubles(content, {edges[i], edges[i + 1], static_cast<double>(counts[i])});
    }
  }

  tb::Summary::Value out;
  out.set_tag(std::string(tag));
  tb::TensorProto* tensor = out.mutable_tensor();
  tensor->set_dtype(tb::DT_DOUBLE);
  tensor->mutable_tensor_shape()->add_dim()->set_size(k);
  tensor->mutable_tensor_shape()->add_dim()->set_size(3);
  tensor->set_tensor_content(std::move(content));
  tb::SummaryMetadata* metadata = out.mutable_metadata();
  metadata->mutable_plugin_data()->set_plugin_name("histograms");
  metadata->mutable_plugin_data()->set_content(tb::HistogramPluginData().SerializeAsString());
  metadata->set_data_class(tb::DATA_CLASS_TENSOR);
  return out;
}

// ---- Exponential layout ----------------------------------------------------------

// TensorFlow's default positive limits: 1e-12 times 1.1 while below 1e20.
// The bucket edges are their mirror, 0, then them.
constexpr int kPositiveEdges = 774;
constexpr int kNumEdges = 2 * kPositiveEdges + 1;  // 1549
constexpr int kNumBins = kNumEdges - 1;            // 1548
constexpr int kZeroBin = kPositiveEdges;           // [0, 1e-12)

// Finds bins by table lookup instead of a binary search. The key of a
// positive double is its exponent and top kKeyMantissaBits mantissa bits, so
// a key's cell spans a ratio of at most 1 + 2^-6 < 1.1: at most one edge lies
// inside it, and one comparison settles the bin.
class ExponentialBins {
 public:
  static const ExponentialBins& Get() {
    static const ExponentialBins* const bins = new ExponentialBins();
    return *bins;
  }

  std::span<const double> edges() const { return edges_; }

  // The bin of finite x in [0, kNumBins), or -1 when x is outside the edges.
  // Branch-free except for |x| >= the last edge, which real data rarely has:
  // signs and zeros are mixed in most tensors, so a branch on them would be
  // mispredicted half the time.
  int BinOf(double x) const {
    const double a = std::fabs(x);
    if (a >= positive_[kPositiveEdges]) {  // at or beyond the outermost edges
      if (a > positive_[kPositiveEdges]) return -1;
      return x < 0 ? 0 : kNumBins - 1;  // the last bin is closed
    }
    // count = edges <= a. x >= 0 (-0.0 included, as numpy compares it equal
    // to 0) lies in [p[count-1], p[count]); x < 0 lies in (-p[j], -p[j-1]]
    // with j the first edge >= a, i.e. count minus one when a is an edge.
    const int count = EdgesAtOrBelow(a);
    const int a_is_edge = positive_[static_cast<size_t>(count)] == a ? 1 : 0;
    const int positive_bin = kZeroBin + count;
    const int negative_bin = kZeroBin - 1 - count + a_is_edge;
    const int negative = x < 0 ? 1 : 0;  // arithmetic select: GCC branches on ?: here
    return positive_bin + negative * (negative_bin - positive_bin);
  }

 private:
  static constexpr int kKeyShift = 52 - 6;  // keep 6 mantissa bits

  ExponentialBins() {
    // positive_[0] = -1 so that positive_[count] is the largest edge <= a
    // (and never equals a when count is 0); then the edges; then +inf.
    positive_.push_back(-1.0);
    double v = 1e-12;
    while (v < 1e20) {
      positive_.push_back(v);
      v *= 1.1;
    }
    positive_.push_back(std::numeric_limits<double>::infinity());
    for (int i = kPositiveEdges; i >= 1; --i) edges_.push_back(-positive_[static_cast<size_t>(i)]);
    edges_.push_back(0.0);
    for (int i = 1; i <= kPositiveEdges; ++i) edges_.push_back(positive_[static_cast<size_t>(i)]);

    key_base_ = Key(positive_[1]);
    key_last_ = Key(positive_[kPositiveEdges]) - key_base_;
    at_or_below_.resize(key_last_ + 1);
    int count = 0;
    for (uint64_t key = 0; key <= key_last_; ++key) {
      const double cell_low = std::bit_cast<double>((key + key_base_) << kKeyShift);
      while (count < kPositiveEdges && positive_[static_cast<size_t>(count) + 1] <= cell_low) {
        ++count;
      }
      at_or_below_[key] = static_cast<uint16_t>(count);
    }
    BuildFloatTables();
  }

  static uint64_t Key(double positive) { return std::bit_cast<uint64_t>(positive) >> kKeyShift; }

 public:
  // ---- The same bins for float magnitudes, for the float32 kernels ----
  // For x >= 0 the bin counts the edges <= |x|, for x < 0 the edges < |x|;
  // for a float a, "edge e <= a" is "a >= the smallest float >= e" and
  // "e < a" is "a >= the smallest float > e". Row s (0: x >= 0, 1: x < 0)
  // of float_thresholds holds those floats, -1 first and +inf last as
  // positive_ does; row s of float_counts holds, per key (a float's exponent
  // and top 6 mantissa bits, less float_key_base), how many of row s's
  // thresholds are <= the key's lowest float. A key cell spans a ratio below
  // 1.1, so at most one threshold lies inside it: one compare settles it.
  static constexpr int kFloatKeyShift = 23 - 6;
  static constexpr int kThresholdRow = kPositiveEdges + 2;

  const float* float_thresholds() const { return float_thresholds_.data(); }
  const int32_t* float_counts() const { return float_counts_.data(); }
  uint32_t float_key_base() const { return float_key_base_; }
  int32_t float_keys_per_row() const { return float_keys_per_row_; }
  // |x| >= this: beyond the last edge, in no bin.
  float float_outside() const {
    return float_thresholds_[kThresholdRow + kPositiveEdges];
  }

 private:
  void BuildFloatTables() {
    for (int strict = 0; strict < 2; ++strict) {
      for (int j = 0; j < kThresholdRow; ++j) {
        const double edge = positive_[static_cast<size_t>(j)];
        float f = static_cast<float>(edge);
        if (std::isfinite(edge) && edge >= 0 &&
            (strict ? static_cast<double>(f) <= edge : static_cast<double>(f) < edge)) {
          f = std::nextafter(f, std::numeric_limits<float>::infinity());
        }
        float_thresholds_.push_back(f);
      }
    }
    const auto key = [](float a) { return std::bit_cast<uint32_t>(a) >> kFloatKeyShift; };
    // One key below the first threshold's, so that the clamped low key has
    // no threshold at or below its cell.
    float_key_base_ = key(float_thresholds_[1]) - 1;
    const uint32_t top = key(float_thresholds_[kThresholdRow + kPositiveEdges]);
    float_keys_per_row_ = static_cast<int32_t>(top - float_key_base_ + 1);
    for (int strict = 0; strict < 2; ++strict) {
      const float* row = float_thresholds_.data() + strict * kThresholdRow;
      int count = 0;
      for (int32_t k = 0; k < float_keys_per_row_; ++k) {
        const float cell_low =
            std::bit_cast<float>((float_key_base_ + static_cast<uint32_t>(k)) << kFloatKeyShift);
        while (count < kPositiveEdges && row[count + 1] <= cell_low) ++count;
        float_counts_.push_back(count);
      }
    }
  }

  std::vector<float> float_thresholds_;  // 2 rows of kThresholdRow
  std::vector<int32_t> float_counts_;    // 2 rows of float_keys_per_row_
  uint32_t float_key_base_ = 0;
  int32_t float_keys_per_row_ = 0;

  // Number of edges <= a, for a in [0, last edge). Keys below the first
  // edge's cell clamp to it: its count is 0 and the one comparison decides.
  int EdgesAtOrBelow(double a) const {
    const uint64_t key = std::min(std::max(Key(a), key_base_) - key_base_, key_last_);
    const int count = at_or_below_[key];
    return count + (positive_[static_cast<size_t>(count) + 1] <= a ? 1 : 0);
  }

  std::vector<double> positive_;  // -1, the kPositiveEdges edges, +inf
  std::vector<double> edges_;     // kNumEdges
  uint64_t key_base_ = 0;
  uint64_t key_last_ = 0;
  std::vector<uint16_t> at_or_below_;  // per key: edges <= the cell's low end
};
struct ExponentialTally {
  std::vector<uint64_t> counts = std::vector<uint64_t>(kNumBins);
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  NonFiniteTally nonfinite;
};

// Adds elements [begin, end) to the tally, the running min/max and the
// running sums (in index order).
template <typename E>
void TallyExponentialRange(const char* base, int64_t begin, int64_t end,
                           const ExponentialBins& bins, ExponentialTally& tally, double& lo,
                           double& hi, double& s, double& s2) {
  uint64_t* count = tally.counts.data();
  for (int64_t i = begin; i < end; ++i) {
    const auto raw = E::Load(base + static_cast<size_t>(i) * E::kSize);
    if (!IsFinite<E>(raw)) {
      if (tally.nonfinite.count++ == 0) tally.nonfinite.first_index = i;
      continue;
    }
    const double x = static_cast<double>(raw);
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
    s += x;
    s2 += x * x;
    const int bin = bins.BinOf(x);
    if (bin >= 0) ++count[bin];
  }
}

// One summation chunk: its sums start from zero (see the header).
template <typename E>
void TallyExponentialChunk(const char* base, int64_t begin, int64_t end,
                           const ExponentialBins& bins, ExponentialTally& tally, double& sum,
                           double& sum_squares) {
  double s = 0, s2 = 0;
  TallyExponentialRange<E>(base, begin, end, bins, tally, tally.min, tally.max, s, s2);
  sum = s;
  sum_squares = s2;
}

#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS

// Per-task counts of the float32 kernel: four interleaved sets (so runs of
// one bin do not wait on each other's increments), each with one more slot
// for values beyond the outer edges.
constexpr int kLaneBins = kNumBins + 1;
using ExponentialLanes = std::vector<uint64_t>;  // 4 * kLaneBins

// TallyExponentialChunk for float32. Bins of eight values at a time come
// from ExponentialBins' float tables; a block with a NaN or Inf is redone by
// the scalar code. The sums stay one sequential chain in index order, as the
// determinism contract and byte equality with PyTorch need: they bound the
// speed, and the rest of the work hides under them.
[[gnu::target("avx2")]] void TallyExponentialFloatChunkAvx2(
    const char* base, int64_t begin, int64_t end, const ExponentialBins& bins,
    ExponentialTally& tally, ExponentialLanes& lanes, double& sum, double& sum_squares) {
  constexpr int64_t kBlock = 512;
  uint64_t* const lane0 = lanes.data();
  uint64_t* const lane1 = lane0 + kLaneBins;
  uint64_t* const lane2 = lane1 + kLaneBins;
  uint64_t* const lane3 = lane2 + kLaneBins;
  const __m256i magnitude_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i key_base = _mm256_set1_epi32(static_cast<int32_t>(bins.float_key_base()));
  const __m256i zero = _mm256_setzero_si256();
  const __m256i last_key = _mm256_set1_epi32(bins.float_keys_per_row() - 1);
  const __m256i negative_row_key = _mm256_set1_epi32(bins.float_keys_per_row());
  const __m256i negative_row = _mm256_set1_epi32(ExponentialBins::kThresholdRow);
  const __m256i zero_bin = _mm256_set1_epi32(kZeroBin);
  const __m256i last_bin = _mm256_set1_epi32(kNumBins - 1);
  const __m256i below_zero_bin = _mm256_set1_epi32(kZeroBin - 1);
  const __m256i outside_bin = _mm256_set1_epi32(kNumBins);
  const __m256 outside = _mm256_set1_ps(bins.float_outside());
  const int32_t* const counts = bins.float_counts();
  const float* const next_thresholds = bins.float_thresholds() + 1;
  __m256 lo = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 hi = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  double scalar_lo = tally.min, scalar_hi = tally.max, s = 0, s2 = 0;
  alignas(32) int32_t bin_of[kBlock];
  for (int64_t block = begin; block < end; block += kBlock) {
    const int64_t n = std::min(kBlock, end - block);
    __m256 block_lo = lo, block_hi = hi;
    __m256i largest_magnitude = zero;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const __m256 x = _mm256_loadu_ps(FloatsAt(base, block + j));
      const __m256i magnitude_bits = _mm256_and_si256(_mm256_castps_si256(x), magnitude_mask);
      largest_magnitude = _mm256_max_epu32(largest_magnitude, magnitude_bits);
      block_lo = _mm256_min_ps(x, block_lo);
      block_hi = _mm256_max_ps(x, block_hi);
      const __m256 a = _mm256_castsi256_ps(magnitude_bits);
      const __m256i negative =
          _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
      __m256i key = _mm256_sub_epi32(
          _mm256_srli_epi32(magnitude_bits, ExponentialBins::kFloatKeyShift), key_base);
      key = _mm256_min_epi32(_mm256_max_epi32(key, zero), last_key);
      key = _mm256_add_epi32(key, _mm256_and_si256(negative, negative_row_key));
      __m256i count = _mm256_i32gather_epi32(counts, key, 4);
      const __m256 next = _mm256_i32gather_ps(
          next_thresholds, _mm256_add_epi32(count, _mm256_and_si256(negative, negative_row)), 4);
      count = _mm256_sub_epi32(count, _mm256_castps_si256(_mm256_cmp_ps(a, next, _CMP_GE_OQ)));
      const __m256i positive_bin = _mm256_min_epi32(_mm256_add_epi32(count, zero_bin), last_bin);
      const __m256i negative_bin = _mm256_sub_epi32(below_zero_bin, count);
      __m256i bin = _mm256_blendv_epi8(positive_bin, negative_bin, negative);
      bin = _mm256_blendv_epi8(bin, outside_bin,
                               _mm256_castps_si256(_mm256_cmp_ps(a, outside, _CMP_GE_OQ)));
      _mm256_store_si256(reinterpret_cast<__m256i*>(bin_of + j), bin);
    }
    bool finite = true;
    for (; j < n; ++j) {
      const float v = LoadFloat(base, block + j);
      finite = finite && std::isfinite(v);
      const int bin = finite ? bins.BinOf(v) : 0;
      bin_of[j] = bin < 0 ? kNumBins : bin;
    }
    alignas(32) uint32_t magnitudes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(magnitudes), largest_magnitude);
    for (uint32_t m : magnitudes) finite = finite && m < 0x7f800000u;
    if (!finite) {
      TallyExponentialRange<PlainElement<float, float>>(base, block, block + n, bins, tally,
                                                         scalar_lo, scalar_hi, s, s2);
      continue;
    }
    lo = block_lo;
    hi = block_hi;
    for (j = 0; j < n - 8 + 1; j += 8) {  // the vector part's values, whole
      for (int64_t v = j; v < j + 8; v += 4) {
        const double x0 = LoadFloat(base, block + v), x1 = LoadFloat(base, block + v + 1);
        const double x2 = LoadFloat(base, block + v + 2), x3 = LoadFloat(base, block + v + 3);
        s += x0;
        s2 += x0 * x0;
        s += x1;
        s2 += x1 * x1;
        s += x2;
        s2 += x2 * x2;
        s += x3;
        s2 += x3 * x3;
        ++lane0[bin_of[v]];
        ++lane1[bin_of[v + 1]];
        ++lane2[bin_of[v + 2]];
        ++lane3[bin_of[v + 3]];
      }
    }
    for (; j < n; ++j) {  // the scalar tail, whose min/max the vectors did not see
      const double x = LoadFloat(base, block + j);
      scalar_lo = x < scalar_lo ? x : scalar_lo;
      scalar_hi = x > scalar_hi ? x : scalar_hi;
      s += x;
      s2 += x * x;
      ++lane0[bin_of[j]];
    }
  }
  alignas(32) float lows[8], highs[8];
  _mm256_store_ps(lows, lo);
  _mm256_store_ps(highs, hi);
  for (int lane = 0; lane < 8; ++lane) {
    scalar_lo = std::min(scalar_lo, static_cast<double>(lows[lane]));
    scalar_hi = std::max(scalar_hi, static_cast<double>(highs[lane]));
  }
  tally.min = scalar_lo;
  tally.max = scalar_hi;
  sum = s;
  sum_squares = s2;
}

// Adds the kernel's lanes into the tally's counts (the outside slot is
// dropped) and matches the scalar code's sign for a zero min or max.
void FinishExponentialFloatTask(const char* base, int64_t begin, int64_t end,
                                const ExponentialLanes& lanes, ExponentialTally& tally) {
  for (int b = 0; b < kNumBins; ++b) {
    tally.counts[static_cast<size_t>(b)] += lanes[static_cast<size_t>(b)] +
                                            lanes[static_cast<size_t>(kLaneBins + b)] +
                                            lanes[static_cast<size_t>(2 * kLaneBins + b)] +
                                            lanes[static_cast<size_t>(3 * kLaneBins + b)];
  }
  if (tally.min == 0) tally.min = FirstZero(base, begin, end);
  if (tally.max == 0) tally.max = FirstZero(base, begin, end);
}

#endif  // TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS

}  // namespace

std::span<const double> HistogramBuilder::ExponentialEdges() {
  return ExponentialBins::Get().edges();
}

absl::StatusOr<HistogramSummary> HistogramBuilder::Uniform(std::string_view tag,
                                                           const TensorView& data) const {
  TBLOG_RETURN_IF_ERROR(ValidateInput(tag, data));
  const int k = options_.bucket_count;
  if (k < 0 || k > kMaxBucketCount) {
    return absl::InvalidArgumentError(absl::StrCat("histogram '", Sv(tag), "': bucket count ", k,
                                                   " is outside [0, ", kMaxBucketCount, "]"));
  }
  const char* base = data.data.data();
  const TaskPlan plan = PlanTasks(data.num_elements(), options_.runner);

  // Pass 1: range and non-finite values.
  std::vector<MinMax> ranges(static_cast<size_t>(plan.num_tasks));
  RunTasks(plan, options_.runner, [&](int task) {
    const int64_t begin = plan.ElementAt(plan.ChunkBegin(task));
    const int64_t end = plan.ElementAt(plan.ChunkBegin(task + 1));
    ranges[static_cast<size_t>(task)] = ScanRange(data.dtype, base, begin, end);
  });
  MinMax range;
  for (const MinMax& part : ranges) {
    range.min = std::min(range.min, part.min);
    range.max = std::max(range.max, part.max);
    range.finite_count += part.finite_count;
    range.nonfinite.Merge(part.nonfinite);
  }
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
    std::vector<std::vector<uint64_t>> task_counts(static_cast<size_t>(plan.num_tasks));
    RunTasks(plan, options_.runner, [&](int task) {
      const int64_t begin = plan.ElementAt(plan.ChunkBegin(task));
      const int64_t end = plan.ElementAt(plan.ChunkBegin(task + 1));
      std::vector<uint64_t>& local = task_counts[static_cast<size_t>(task)];
      local.assign(static_cast<size_t>(k), 0);
#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS
      if (float_buckets.has_value()) {
        CountUniformFloatAvx2(base, begin, end, *float_buckets, local);
        return;
      }
#endif
      VisitDType(data.dtype, [&](auto element) {
        if (use_boundaries) {
          CountUniform<decltype(element)>(base, begin, end, range.min, boundaries, local);
        } else {
          CountUniformByDivision<decltype(element)>(base, begin, end, range.min, width, local);
        }
      });
    });
    for (const std::vector<uint64_t>& local : task_counts) {
      for (size_t i = 0; i < counts.size(); ++i) counts[i] += local[i];
    }
  }
  return HistogramSummary{UniformValue(tag, k, range, counts), range.nonfinite.count};
}

absl::StatusOr<HistogramSummary> HistogramBuilder::Exponential(std::string_view tag,
                                                               const TensorView& data) const {
  TBLOG_RETURN_IF_ERROR(ValidateInput(tag, data));
  const char* base = data.data.data();
  const TaskPlan plan = PlanTasks(data.num_elements(), options_.runner);
  const ExponentialBins& bins = ExponentialBins::Get();

  std::vector<ExponentialTally> tallies(static_cast<size_t>(plan.num_tasks));
  std::vector<double> chunk_sums(static_cast<size_t>(plan.num_chunks));
  std::vector<double> chunk_sum_squares(static_cast<size_t>(plan.num_chunks));
  RunTasks(plan, options_.runner, [&](int task) {
    ExponentialTally& tally = tallies[static_cast<size_t>(task)];
#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS
    if (data.dtype == DType::kFloat32 && UseAvx2Kernels()) {
      ExponentialLanes lanes(4 * kLaneBins);
      for (int64_t c = plan.ChunkBegin(task); c < plan.ChunkBegin(task + 1); ++c) {
        TallyExponentialFloatChunkAvx2(base, plan.ElementAt(c), plan.ElementAt(c + 1), bins, tally,
                                       lanes, chunk_sums[static_cast<size_t>(c)],
                                       chunk_sum_squares[static_cast<size_t>(c)]);
      }
      FinishExponentialFloatTask(base, plan.ElementAt(plan.ChunkBegin(task)),
                                 plan.ElementAt(plan.ChunkBegin(task + 1)), lanes, tally);
      return;
    }
#endif
    VisitDType(data.dtype, [&](auto element) {
      for (int64_t c = plan.ChunkBegin(task); c < plan.ChunkBegin(task + 1); ++c) {
        TallyExponentialChunk<decltype(element)>(base, plan.ElementAt(c), plan.ElementAt(c + 1),
                                                 bins, tally, chunk_sums[static_cast<size_t>(c)],
                                                 chunk_sum_squares[static_cast<size_t>(c)]);
      }
    });
  });

  ExponentialTally total;
  for (const ExponentialTally& part : tallies) {
    for (int b = 0; b < kNumBins; ++b) total.counts[b] += part.counts[b];
    total.min = std::min(total.min, part.min);
    total.max = std::max(total.max, part.max);
    total.nonfinite.Merge(part.nonfinite);
  }
  TBLOG_RETURN_IF_ERROR(CheckNonFinite(tag, total.nonfinite, options_.non_finite));
  double sum = 0, sum_squares = 0;
  for (size_t c = 0; c < chunk_sums.size(); ++c) {
    sum += chunk_sums[c];
    sum_squares += chunk_sum_squares[c];
  }
  const int64_t finite_count = data.num_elements() - total.nonfinite.count;

  tb::Summary::Value out;
  out.set_tag(std::string(tag));
  tb::HistogramProto* histo = out.mutable_histo();
  if (finite_count > 0) {
    histo->set_min(total.min);
    histo->set_max(total.max);
  }
  histo->set_num(static_cast<double>(finite_count));
  histo->set_sum(sum);
  histo->set_sum_squares(sum_squares);

  // PyTorch's trim: buckets first..last non-empty, plus one empty bucket on
  // the left; limits are right edges, so bucket j of the output is bin
  // first-1+j with limit edges[first+j].
  int first = 0;
  while (first < kNumBins && total.counts[first] == 0) ++first;
  if (first == kNumBins) {
    histo->add_bucket_limit(DBL_MAX);
    histo->add_bucket(0);
  } else {
    int last = kNumBins - 1;
    while (total.counts[last] == 0) --last;
    const std::span<const double> edges = bins.edges();
    histo->add_bucket_limit(edges[static_cast<size_t>(first)]);
    histo->add_bucket(0.0);  // bin first-1 (or nothing) is empty by definition
    for (int b = first; b <= last; ++b) {
      histo->add_bucket_limit(edges[static_cast<size_t>(b) + 1]);
      histo->add_bucket(static_cast<double>(total.counts[b]));
    }
  }
  return HistogramSummary{std::move(out), total.nonfinite.count};
}

namespace histogram_internal {

void UsePortableKernelsOnly(bool portable_only) {
  portable_kernels_only.store(portable_only, std::memory_order_relaxed);
}

bool Avx2KernelsAvailable() { return CpuHasAvx2(); }

}  // namespace histogram_internal
}  // namespace tblog
