// What every pass of a histogram build shares, whatever the layout: reading
// the elements of any dtype, the split of the input into summation chunks and
// tasks, and the tally of non-finite values.
//
// Internal to tblog_engine_histogram (histogram.cc drives the passes,
// histogram_uniform.cc, histogram_exponential.cc and histogram_avx2.cc run
// them); not part of its API. Header-only and stateless: safe from any thread.
#ifndef TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_PASS_H_
#define TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_PASS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "engine/histogram/histogram.h"
#include "engine/io/tensor_view.h"

namespace tblog::histogram_internal {

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

// Tasks cover whole chunks: task t gets chunks [ChunkBegin(t), ChunkBegin(t+1)).
// Task boundaries never change a result (see histogram.h), only how the work
// is shared. Made by PlanTasks in histogram.cc.
struct TaskPlan {
  int64_t num_elements;
  int64_t num_chunks;
  int num_tasks;

  int64_t ChunkBegin(int task) const { return num_chunks * task / num_tasks; }
  // The first element of `chunk`; num_elements for chunk == num_chunks.
  int64_t ElementAt(int64_t chunk) const {
    return std::min(num_elements, chunk * HistogramBuilder::kChunkElements);
  }
};

// Non-finite values seen by one task, or by all of them once merged.
struct NonFiniteTally {
  int64_t count = 0;
  int64_t first_index = -1;  // flat index of the first one; -1 while count is 0

  void Merge(const NonFiniteTally& other) {
    if (other.count == 0) return;
    if (count == 0 || other.first_index < first_index) first_index = other.first_index;
    count += other.count;
  }
};

}  // namespace tblog::histogram_internal

#endif  // TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_PASS_H_
