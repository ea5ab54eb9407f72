// AVX2 versions of the float32 passes of both layouts. float32 is the common
// input, so it alone has vector code; every other dtype, and machines without
// AVX2, take the portable code of histogram_uniform.cc and
// histogram_exponential.cc.
//
// Contract of every kernel here: its results are equal to the bit to those of
// the portable code over the same elements. The kernels change how a bucket
// index is found, never which one; they keep the sign of a zero min or max
// as the scalar scans do; and they add sums as one sequential chain in index
// order, as histogram.h's determinism note requires. histogram_test checks
// this on random data against the portable code and a double reference.
//
// The vector code is compiled per function with [[gnu::target("avx2")]]
// inside histogram_avx2.cc: the build has no -march flag, so the library
// still runs on any x86-64. The functions below are plain entry points into
// it, which the caller (histogram.cc) may call only when the CPU has AVX2.
// They exist only where TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS is 1 (GCC or Clang
// on x86-64). They are pure over their arguments: tasks may call them at once
// on disjoint outputs.
#ifndef TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_AVX2_H_
#define TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_AVX2_H_

#if defined(__x86_64__) && defined(__GNUC__)
#define TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS 1
#else
#define TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS 0
#endif

#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "engine/histogram/histogram_exponential.h"
#include "engine/histogram/histogram_pass.h"
#include "engine/histogram/histogram_uniform.h"

namespace tblog::histogram_internal {

// ScanMinMax for float32 elements [begin, end), or nullopt when one of them
// is NaN or Inf: the caller then runs ScanMinMax, which tallies them.
std::optional<MinMax> ScanFloatMinMaxAvx2(const char* base, int64_t begin, int64_t end);

// CountUniform for float32 elements [begin, end), all finite and within the
// [min, max] that `buckets` was made for. Adds to counts (k entries).
void CountUniformFloatAvx2(const char* base, int64_t begin, int64_t end,
                           const FloatUniformBuckets& buckets, std::vector<uint64_t>& counts);

// CountUniformFloatAvx2 over elements claimed to be finite and within
// [min, max] of `buckets` (a range hint), which it checks in the same pass:
// returns the range it read, as ScanFloatMinMaxAvx2 would, or nullopt when an
// element is NaN or Inf. The counts are right only when that range lies
// within [min, max]; the caller compares it and otherwise starts again.
std::optional<MinMax> CountUniformFloatCheckedAvx2(const char* base, int64_t begin, int64_t end,
                                                   const FloatUniformBuckets& buckets,
                                                   std::vector<uint64_t>& counts);

// TallyExponentialTask for a float32 buffer. Blocks holding a NaN or Inf are
// redone by the portable TallyExponentialRange, so any input is accepted.
void TallyExponentialFloatTaskAvx2(const char* base, const TaskPlan& plan, int task,
                                   const ExponentialBins& bins, ExponentialTally& tally,
                                   std::span<double> chunk_sums,
                                   std::span<double> chunk_sum_squares);

}  // namespace tblog::histogram_internal

#endif  // TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS

#endif  // TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_AVX2_H_
