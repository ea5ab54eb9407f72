// The AVX2 kernels of both layouts for float32; see histogram_avx2.h.
#include "engine/histogram/histogram_avx2.h"

#if TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace tblog::histogram_internal {
namespace {

float LoadFloat(const char* base, int64_t i) {
  float v;
  std::memcpy(&v, base + static_cast<size_t>(i) * sizeof v, sizeof v);
  return v;
}

const float* FloatsAt(const char* base, int64_t i) {
  return reinterpret_cast<const float*>(base + static_cast<size_t>(i) * sizeof(float));
}

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

// ScanMinMax for float32 with eight lanes; see FloatRange.
[[gnu::target("avx2")]] FloatRange ScanFloatRangeKernel(const char* base, int64_t begin,
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
// equal buckets do not wait on each other's increments. With kTrackRange it
// also returns the range of what it read (as ScanFloatRangeKernel would): a
// few more vector operations beside the gathers, which bound the loop, so
// that a range the caller was given can be checked in the same pass.
template <bool kTrackRange>
[[gnu::target("avx2")]] FloatRange CountUniformFloatKernel(const char* base, int64_t begin,
                                                           int64_t end,
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
  const __m256i magnitude_mask = _mm256_set1_epi32(0x7fffffff);
  const float* const thresholds = buckets.thresholds();
  __m256 seen_lo = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 seen_hi = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256i largest_magnitude = zero;  // as bits: >= 0x7f800000 is NaN/Inf
  FloatRange seen;
  uint32_t largest = 0;
  alignas(32) int32_t index[kBlock];
  for (int64_t block = begin; block < end; block += kBlock) {
    const int64_t n = std::min(kBlock, end - block);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const __m256 x = _mm256_loadu_ps(FloatsAt(base, block + j));
      if constexpr (kTrackRange) {
        seen_lo = _mm256_min_ps(x, seen_lo);
        seen_hi = _mm256_max_ps(x, seen_hi);
        largest_magnitude = _mm256_max_epu32(
            largest_magnitude, _mm256_and_si256(_mm256_castps_si256(x), magnitude_mask));
      }
      const __m256 guess = _mm256_mul_ps(_mm256_sub_ps(x, min), scale);
      const __m256i i =
          _mm256_min_epi32(_mm256_max_epi32(_mm256_cvttps_epi32(guess), zero), last);
      const __m256 below = _mm256_i32gather_ps(thresholds, i, 4);
      const __m256 above = _mm256_i32gather_ps(thresholds + 1, i, 4);
      // A true compare is all ones, i.e. -1: subtracting it adds one.
      const __m256i reached_below = _mm256_castps_si256(_mm256_cmp_ps(x, below, _CMP_GE_OQ));
      const __m256i reached_above = _mm256_castps_si256(_mm256_cmp_ps(x, above, _CMP_GE_OQ));
      // Clamped to [0, last]: NaN, or a value outside [min, max] (data that
      // changed since the range pass: a rewritten shared-memory slice; or a
      // wrong range hint), would otherwise index below or past the counts.
      const __m256i bucket = _mm256_min_epi32(
          _mm256_max_epi32(_mm256_sub_epi32(_mm256_sub_epi32(_mm256_add_epi32(i, minus_one),
                                                             reached_below),
                                            reached_above),
                           zero),
          last);
      _mm256_store_si256(reinterpret_cast<__m256i*>(index + j), bucket);
    }
    for (; j < n; ++j) {
      const float v = LoadFloat(base, block + j);
      if constexpr (kTrackRange) {
        seen.lo = std::min(seen.lo, v);
        seen.hi = std::max(seen.hi, v);
        largest = std::max(largest, std::bit_cast<uint32_t>(v) & 0x7fffffffu);
      }
      index[j] = buckets.Of(v);
    }
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
  if constexpr (kTrackRange) {
    alignas(32) float lows[8], highs[8];
    alignas(32) uint32_t magnitudes[8];
    _mm256_store_ps(lows, seen_lo);
    _mm256_store_ps(highs, seen_hi);
    _mm256_store_si256(reinterpret_cast<__m256i*>(magnitudes), largest_magnitude);
    for (int lane = 0; lane < 8; ++lane) {
      seen.lo = std::min(seen.lo, lows[lane]);
      seen.hi = std::max(seen.hi, highs[lane]);
      largest = std::max(largest, magnitudes[lane]);
    }
    seen.all_finite = largest < 0x7f800000u;
  }
  return seen;
}

// Per-task counts of the float32 kernels: four interleaved sets (so runs of
// one bin do not wait on each other's increments), each with one more slot
// for values beyond the outer edges.
constexpr int kLaneBins = kNumBins + 1;
using ExponentialLanes = std::vector<uint64_t>;  // 4 * kLaneBins

// Elements whose bins the vector code finds into a buffer before they are
// summed and counted. Divides HistogramBuilder::kChunkElements.
constexpr int64_t kExponentialBlock = 512;
static_assert(HistogramBuilder::kChunkElements % kExponentialBlock == 0);

// ExponentialBins' float tables as the vector code uses them, made once per
// call so that the hot loops keep them in registers.
struct ExponentialVectors {
  __m256i key_base, last_key, negative_row_key;
  __m256i zero_bin, last_bin, below_zero_bin, outside_bin;
  __m256 outside;
  __m256i cell_low_mask, split_mask, one;
  const uint32_t* cells;
};

[[gnu::target("avx2")]] ExponentialVectors MakeExponentialVectors(const ExponentialBins& bins) {
  ExponentialVectors v;
  v.key_base = _mm256_set1_epi32(static_cast<int32_t>(bins.float_key_base()));
  v.last_key = _mm256_set1_epi32(bins.float_keys_per_row() - 1);
  v.negative_row_key = _mm256_set1_epi32(bins.float_keys_per_row());
  v.zero_bin = _mm256_set1_epi32(kZeroBin);
  v.last_bin = _mm256_set1_epi32(kNumBins - 1);
  v.below_zero_bin = _mm256_set1_epi32(kZeroBin - 1);
  v.outside_bin = _mm256_set1_epi32(kNumBins);
  v.outside = _mm256_set1_ps(bins.float_outside());
  v.cell_low_mask = _mm256_set1_epi32(ExponentialBins::kFloatCellLowMask);
  v.split_mask = _mm256_set1_epi32((1 << ExponentialBins::kFloatCellCountShift) - 1);
  v.one = _mm256_set1_epi32(1);
  v.cells = bins.float_cells();
  return v;
}

// Finds the bins of the n floats from element `block` into bin_of
// (kNumBins for a value beyond the outer edges) and widens lo/hi by the
// whole groups of eight among them. Returns false, leaving lo/hi alone, when
// one of the n is NaN or Inf: the caller then redoes the block with the
// scalar code and bin_of means nothing. kWhole: n is a multiple of 8.
template <bool kWhole>
[[gnu::target("avx2"), gnu::always_inline]] inline bool BinExponentialFloatBlock(
    const char* base, int64_t block, int64_t n, const ExponentialBins& bins,
    const ExponentialVectors& v, int32_t* bin_of, __m256& lo, __m256& hi) {
  const __m256i magnitude_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i zero = _mm256_setzero_si256();
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
        _mm256_srli_epi32(magnitude_bits, ExponentialBins::kFloatKeyShift), v.key_base);
    key = _mm256_min_epi32(_mm256_max_epi32(key, zero), v.last_key);
    key = _mm256_add_epi32(key, _mm256_and_si256(negative, v.negative_row_key));
    const __m256i cell =
        _mm256_i32gather_epi32(reinterpret_cast<const int*>(v.cells), key, 4);
    // below: all ones (-1) when a's low bits are under the cell's split.
    const __m256i below = _mm256_cmpgt_epi32(_mm256_and_si256(cell, v.split_mask),
                                             _mm256_and_si256(magnitude_bits, v.cell_low_mask));
    const __m256i count = _mm256_add_epi32(
        _mm256_srli_epi32(cell, ExponentialBins::kFloatCellCountShift),
        _mm256_add_epi32(below, v.one));
    const __m256i positive_bin = _mm256_min_epi32(_mm256_add_epi32(count, v.zero_bin), v.last_bin);
    const __m256i negative_bin = _mm256_sub_epi32(v.below_zero_bin, count);
    __m256i bin = _mm256_blendv_epi8(positive_bin, negative_bin, negative);
    bin = _mm256_blendv_epi8(bin, v.outside_bin,
                             _mm256_castps_si256(_mm256_cmp_ps(a, v.outside, _CMP_GE_OQ)));
    _mm256_store_si256(reinterpret_cast<__m256i*>(bin_of + j), bin);
  }
  bool finite = true;
  for (; !kWhole && j < n; ++j) {
    const float x = LoadFloat(base, block + j);
    finite = finite && std::isfinite(x);
    const int bin = finite ? bins.BinOf(x) : 0;
    bin_of[j] = bin < 0 ? kNumBins : bin;
  }
  alignas(32) uint32_t magnitudes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(magnitudes), largest_magnitude);
  for (uint32_t m : magnitudes) finite = finite && m < 0x7f800000u;
  if (finite) {
    lo = block_lo;
    hi = block_hi;
  }
  return finite;
}

// Adds an all-finite block, whose bins BinExponentialFloatBlock found, to the
// sums (one chain in index order) and the lanes' counts; the min/max of its
// last n % 8 values, which the vectors did not see, to scalar_lo/hi.
[[gnu::always_inline]] inline void SumAndCountFloatBlock(const char* base, int64_t block,
                                                         int64_t n, const int32_t* bin_of,
                                                         uint64_t* lanes, double& scalar_lo,
                                                         double& scalar_hi, double& s,
                                                         double& s2) {
  uint64_t* const lane0 = lanes;
  uint64_t* const lane1 = lane0 + kLaneBins;
  uint64_t* const lane2 = lane1 + kLaneBins;
  uint64_t* const lane3 = lane2 + kLaneBins;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {  // the vector part's values, whole
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
  for (; j < n; ++j) {  // the scalar tail
    const double x = LoadFloat(base, block + j);
    scalar_lo = x < scalar_lo ? x : scalar_lo;
    scalar_hi = x > scalar_hi ? x : scalar_hi;
    s += x;
    s2 += x * x;
    ++lane0[bin_of[j]];
  }
}

// The scalar code's pass over a block holding a NaN or Inf. The multi-chunk
// kernel meets blocks out of index order (the same block of each chunk in
// turn), so the tally's first non-finite index is kept the smallest seen.
void TallyFloatBlockWithNonFinite(const char* base, int64_t block, int64_t n,
                                  const ExponentialBins& bins, ExponentialTally& tally,
                                  double& scalar_lo, double& scalar_hi, double& s, double& s2) {
  NonFiniteTally seen = tally.nonfinite;
  tally.nonfinite = {};
  TallyExponentialRange<PlainElement<float, float>>(base, block, block + n, bins, tally,
                                                     scalar_lo, scalar_hi, s, s2);
  seen.Merge(tally.nonfinite);
  tally.nonfinite = seen;
}

// Folds the vector min/max into the scalar ones and stores them in the tally.
[[gnu::target("avx2")]] void StoreFloatRange(__m256 lo, __m256 hi, double scalar_lo,
                                             double scalar_hi, ExponentialTally& tally) {
  alignas(32) float lows[8], highs[8];
  _mm256_store_ps(lows, lo);
  _mm256_store_ps(highs, hi);
  for (int lane = 0; lane < 8; ++lane) {
    scalar_lo = std::min(scalar_lo, static_cast<double>(lows[lane]));
    scalar_hi = std::max(scalar_hi, static_cast<double>(highs[lane]));
  }
  tally.min = scalar_lo;
  tally.max = scalar_hi;
}

// The pass over one summation chunk of float32, its sums starting from zero.
// Bins of eight values at a time come from ExponentialBins' float tables; a
// block with a NaN or Inf is redone by the scalar code. The sums are one
// sequential chain in index order, as the determinism contract and byte
// equality with PyTorch need: here they bound the speed, and the rest of the
// work hides under them. Whole chunks go through the multi-chunk kernel
// below instead; this one takes a chunk left alone (the last, short one).
[[gnu::target("avx2")]] void TallyExponentialFloatChunkKernel(
    const char* base, int64_t begin, int64_t end, const ExponentialBins& bins,
    ExponentialTally& tally, ExponentialLanes& lanes, double& sum, double& sum_squares) {
  const ExponentialVectors v = MakeExponentialVectors(bins);
  __m256 lo = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 hi = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  double scalar_lo = tally.min, scalar_hi = tally.max, s = 0, s2 = 0;
  alignas(32) int32_t bin_of[kExponentialBlock];
  for (int64_t block = begin; block < end; block += kExponentialBlock) {
    const int64_t n = std::min(kExponentialBlock, end - block);
    if (BinExponentialFloatBlock<false>(base, block, n, bins, v, bin_of, lo, hi)) {
      SumAndCountFloatBlock(base, block, n, bin_of, lanes.data(), scalar_lo, scalar_hi, s, s2);
    } else {
      TallyFloatBlockWithNonFinite(base, block, n, bins, tally, scalar_lo, scalar_hi, s, s2);
    }
  }
  StoreFloatRange(lo, hi, scalar_lo, scalar_hi, tally);
  sum = s;
  sum_squares = s2;
}

// Adds four values, one of each chain, to the four chains of sums: one
// vector add for four sequential adds, each lane rounding as the scalar
// `s += x; s2 += x * x` does (a multiply then an add, never fused).
[[gnu::target("avx2"), gnu::always_inline]] inline void AddToChains(__m128 x4, __m256d& s,
                                                                    __m256d& s2) {
  const __m256d x = _mm256_cvtps_pd(x4);
  s = _mm256_add_pd(s, x);
  s2 = _mm256_add_pd(s2, _mm256_mul_pd(x, x));
}

// The pass over kChunks (2 to 4) whole summation chunks side by side, the
// first from element `first`: the same results as the one-chunk kernel run
// on each, but each chunk's sums are one lane of a vector, still one chain
// in its own index order, so the adds' latency is paid once per kChunks
// values. sums and sum_squares get kChunks entries.
template <int kChunks>
[[gnu::target("avx2")]] void TallyExponentialFloatChunksKernel(
    const char* base, int64_t first, const ExponentialBins& bins, ExponentialTally& tally,
    ExponentialLanes& lanes, double* sums, double* sum_squares) {
  static_assert(kChunks >= 2 && kChunks <= 4);
  constexpr int64_t kChunk = HistogramBuilder::kChunkElements;
  const ExponentialVectors v = MakeExponentialVectors(bins);
  uint64_t* const lane0 = lanes.data();
  uint64_t* const lane1 = lane0 + kLaneBins;
  uint64_t* const lane2 = lane1 + kLaneBins;
  uint64_t* const lane3 = lane2 + kLaneBins;
  __m256 lo = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 hi = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  double scalar_lo = tally.min, scalar_hi = tally.max;
  __m256d s = _mm256_setzero_pd(), s2 = _mm256_setzero_pd();
  alignas(32) int32_t bin_of[kChunks][kExponentialBlock];
  // Lanes past kChunks read the last chunk again; their sums are dropped.
  int64_t chunk_at[4];
  for (int c = 0; c < 4; ++c) chunk_at[c] = first + std::min(c, kChunks - 1) * kChunk;
  for (int64_t offset = 0; offset < kChunk; offset += kExponentialBlock) {
    bool all_finite = true;
    bool finite[kChunks];
    for (int c = 0; c < kChunks; ++c) {
      finite[c] = BinExponentialFloatBlock<true>(base, chunk_at[c] + offset, kExponentialBlock, bins,
                                           v, bin_of[c], lo, hi);
      all_finite = all_finite && finite[c];
    }
    if (!all_finite) {  // rare: each chunk's block on its own, its chain out of the vector
      alignas(32) double chain[4], chain2[4];
      _mm256_store_pd(chain, s);
      _mm256_store_pd(chain2, s2);
      for (int c = 0; c < kChunks; ++c) {
        if (finite[c]) {
          SumAndCountFloatBlock(base, chunk_at[c] + offset, kExponentialBlock, bin_of[c],
                                lanes.data(), scalar_lo, scalar_hi, chain[c], chain2[c]);
        } else {
          TallyFloatBlockWithNonFinite(base, chunk_at[c] + offset, kExponentialBlock, bins, tally,
                                       scalar_lo, scalar_hi, chain[c], chain2[c]);
        }
      }
      s = _mm256_load_pd(chain);
      s2 = _mm256_load_pd(chain2);
      continue;
    }
    for (int64_t j = 0; j < kExponentialBlock; j += 4) {
      // Row c: values j..j+3 of chunk c; transposed, column k: value j+k of
      // every chunk.
      __m128 r0 = _mm_loadu_ps(FloatsAt(base, chunk_at[0] + offset + j));
      __m128 r1 = _mm_loadu_ps(FloatsAt(base, chunk_at[1] + offset + j));
      __m128 r2 = _mm_loadu_ps(FloatsAt(base, chunk_at[2] + offset + j));
      __m128 r3 = _mm_loadu_ps(FloatsAt(base, chunk_at[3] + offset + j));
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      AddToChains(r0, s, s2);
      AddToChains(r1, s, s2);
      AddToChains(r2, s, s2);
      AddToChains(r3, s, s2);
      for (int c = 0; c < kChunks; ++c) {
        ++lane0[bin_of[c][j]];
        ++lane1[bin_of[c][j + 1]];
        ++lane2[bin_of[c][j + 2]];
        ++lane3[bin_of[c][j + 3]];
      }
    }
  }
  StoreFloatRange(lo, hi, scalar_lo, scalar_hi, tally);
  alignas(32) double chain[4], chain2[4];
  _mm256_store_pd(chain, s);
  _mm256_store_pd(chain2, s2);
  for (int c = 0; c < kChunks; ++c) {
    sums[c] = chain[c];
    sum_squares[c] = chain2[c];
  }
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

// The MinMax of an all-finite range of floats a kernel found, zero signs
// matched to the scalar scan's; nullopt when a value was NaN or Inf.
std::optional<MinMax> FiniteMinMax(const char* base, int64_t begin, int64_t end,
                                   FloatRange range) {
  if (!range.all_finite) return std::nullopt;
  MatchScalarZeroSigns(base, begin, end, range);
  MinMax out;
  out.min = range.lo;
  out.max = range.hi;
  out.finite_count = end - begin;
  return out;
}

}  // namespace

std::optional<MinMax> ScanFloatMinMaxAvx2(const char* base, int64_t begin, int64_t end) {
  return FiniteMinMax(base, begin, end, ScanFloatRangeKernel(base, begin, end));
}

void CountUniformFloatAvx2(const char* base, int64_t begin, int64_t end,
                           const FloatUniformBuckets& buckets, std::vector<uint64_t>& counts) {
  CountUniformFloatKernel<false>(base, begin, end, buckets, counts);
}

std::optional<MinMax> CountUniformFloatCheckedAvx2(const char* base, int64_t begin, int64_t end,
                                                   const FloatUniformBuckets& buckets,
                                                   std::vector<uint64_t>& counts) {
  return FiniteMinMax(base, begin, end,
                      CountUniformFloatKernel<true>(base, begin, end, buckets, counts));
}

void TallyExponentialFloatTaskAvx2(const char* base, const TaskPlan& plan, int task,
                                   const ExponentialBins& bins, ExponentialTally& tally,
                                   std::span<double> chunk_sums,
                                   std::span<double> chunk_sum_squares) {
  constexpr int64_t kChunk = HistogramBuilder::kChunkElements;
  ExponentialLanes lanes(4 * kLaneBins);
  const int64_t task_end = plan.ChunkBegin(task + 1);
  int64_t c = plan.ChunkBegin(task);
  while (c < task_end) {
    // Whole chunks go side by side, up to four; a last short chunk, or one
    // whole chunk left over, alone.
    int64_t whole = 0;
    while (whole < 4 && c + whole < task_end &&
           plan.ElementAt(c + whole + 1) - plan.ElementAt(c + whole) == kChunk) {
      ++whole;
    }
    const size_t at = static_cast<size_t>(c);
    switch (whole) {
      case 4:
        TallyExponentialFloatChunksKernel<4>(base, plan.ElementAt(c), bins, tally, lanes,
                                             &chunk_sums[at], &chunk_sum_squares[at]);
        break;
      case 3:
        TallyExponentialFloatChunksKernel<3>(base, plan.ElementAt(c), bins, tally, lanes,
                                             &chunk_sums[at], &chunk_sum_squares[at]);
        break;
      case 2:
        TallyExponentialFloatChunksKernel<2>(base, plan.ElementAt(c), bins, tally, lanes,
                                             &chunk_sums[at], &chunk_sum_squares[at]);
        break;
      default:
        whole = 1;
        TallyExponentialFloatChunkKernel(base, plan.ElementAt(c), plan.ElementAt(c + 1), bins,
                                         tally, lanes, chunk_sums[at], chunk_sum_squares[at]);
        break;
    }
    c += whole;
  }
  FinishExponentialFloatTask(base, plan.ElementAt(plan.ChunkBegin(task)),
                             plan.ElementAt(task_end), lanes, tally);
}

}  // namespace tblog::histogram_internal

#endif  // TBLOG_HISTOGRAM_HAVE_AVX2_KERNELS
