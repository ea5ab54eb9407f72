// The exponential layout (TensorFlow's default bucket edges, see
// HistogramBuilder::Exponential), portable code for every dtype: one pass
// tallies bins, min, max and the per-chunk sums, and ExponentialValue trims
// the merged tally into a HistogramProto as PyTorch does.
// HistogramBuilder::Exponential (histogram.cc) runs the pass over tasks and
// merges them; histogram_avx2.cc does the pass faster for float32 through
// ExponentialBins' float tables, to the same bits.
//
// Internal to tblog_engine_histogram. ExponentialBins is built once, on first
// use (thread-safe), and immutable after; the functions are pure over their
// arguments, each task passing its own tally and its own chunks' sums.
#ifndef TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_EXPONENTIAL_H_
#define TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_EXPONENTIAL_H_

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "engine/histogram/histogram_pass.h"
#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog::histogram_internal {

// TensorFlow's default positive limits: 1e-12 times 1.1 while below 1e20.
// The bucket edges are their mirror, 0, then them.
inline constexpr int kPositiveEdges = 774;
inline constexpr int kNumEdges = 2 * kPositiveEdges + 1;  // 1549
inline constexpr int kNumBins = kNumEdges - 1;            // 1548
inline constexpr int kZeroBin = kPositiveEdges;           // [0, 1e-12)

// Finds bins by table lookup instead of a binary search. The key of a
// positive double is its exponent and top 6 mantissa bits (kKeyShift), so
// a key's cell spans a ratio of at most 1 + 2^-6 < 1.1: at most one edge lies
// inside it, and one comparison settles the bin.
class ExponentialBins {
 public:
  // The one instance, built on first use; never destroyed.
  static const ExponentialBins& Get();

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

  // ---- The same bins for float magnitudes, for the float32 kernels ----
  // For x >= 0 the bin counts the edges <= |x|, for x < 0 the edges < |x|;
  // for a float a, "edge e <= a" is "a >= the smallest float >= e" and
  // "e < a" is "a >= the smallest float > e". Row s (0: x >= 0, 1: x < 0)
  // of float_thresholds holds those floats, -1 first and +inf last as
  // positive_ does. Row s of float_cells holds, per key (a float's exponent
  // and top 4 mantissa bits, less float_key_base), how many of row s's
  // thresholds are <= the key's lowest float (bits kFloatCellCountShift and
  // up). A key cell spans a ratio of at most 17/16 < 1.1, so at most one
  // threshold lies inside it; the low bits hold that threshold's bits below
  // the key (kFloatCellLowMask), or kFloatCellNoSplit when there is none.
  // Within a cell the floats are ordered as those low bits, so a's bin is
  // the count plus one when a's low bits are at least the split: one table
  // read and one integer compare. Four key bits keep the table at about
  // 14 KiB, so that the kernel's gathers from it stay in L1.
  static constexpr int kFloatKeyShift = 23 - 4;
  static constexpr uint32_t kFloatCellLowMask = (uint32_t{1} << kFloatKeyShift) - 1;
  static constexpr uint32_t kFloatCellNoSplit = kFloatCellLowMask + 1;  // above any low bits
  static constexpr int kFloatCellCountShift = kFloatKeyShift + 1;
  static constexpr int kThresholdRow = kPositiveEdges + 2;

  const float* float_thresholds() const { return float_thresholds_.data(); }
  const uint32_t* float_cells() const { return float_cells_.data(); }
  uint32_t float_key_base() const { return float_key_base_; }
  int32_t float_keys_per_row() const { return float_keys_per_row_; }
  // |x| >= this: beyond the last edge, in no bin.
  float float_outside() const { return float_thresholds_[kThresholdRow + kPositiveEdges]; }

 private:
  static constexpr int kKeyShift = 52 - 6;  // keep 6 mantissa bits

  ExponentialBins();
  void BuildFloatTables();

  static uint64_t Key(double positive) { return std::bit_cast<uint64_t>(positive) >> kKeyShift; }

  // Number of edges <= a, for a in [0, last edge). Keys below the first
  // edge's cell clamp to it: its count is 0 and the one comparison decides.
  int EdgesAtOrBelow(double a) const {
    const uint64_t key = std::min(std::max(Key(a), key_base_) - key_base_, key_last_);
    const int count = at_or_below_[key];
    return count + (positive_[static_cast<size_t>(count) + 1] <= a ? 1 : 0);
  }

  std::vector<float> float_thresholds_;  // 2 rows of kThresholdRow
  std::vector<uint32_t> float_cells_;    // 2 rows of float_keys_per_row_
  uint32_t float_key_base_ = 0;
  int32_t float_keys_per_row_ = 0;

  std::vector<double> positive_;  // -1, the kPositiveEdges edges, +inf
  std::vector<double> edges_;     // kNumEdges
  uint64_t key_base_ = 0;
  uint64_t key_last_ = 0;
  std::vector<uint16_t> at_or_below_;  // per key: edges <= the cell's low end
};

// What the pass learns of a range of elements (sums aside: they are kept per
// summation chunk, see histogram.h).
struct ExponentialTally {
  std::vector<uint64_t> counts = std::vector<uint64_t>(kNumBins);
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  NonFiniteTally nonfinite;

  void Merge(const ExponentialTally& other) {
    for (int b = 0; b < kNumBins; ++b) counts[b] += other.counts[b];
    min = std::min(min, other.min);
    max = std::max(max, other.max);
    nonfinite.Merge(other.nonfinite);
  }
};

// The pass over task `task` of `plan`, for a buffer of `dtype` (validated):
// adds its elements to `tally` and sets, for each chunk c of the task,
// chunk_sums[c] and chunk_sum_squares[c] (over all the plan's chunks) to the
// sums of its finite values, added in index order from zero.
void TallyExponentialTask(DType dtype, const char* base, const TaskPlan& plan, int task,
                          const ExponentialBins& bins, ExponentialTally& tally,
                          std::span<double> chunk_sums, std::span<double> chunk_sum_squares);

// Adds elements [begin, end) (of element type E, see histogram_pass.h) to
// the tally, the running min/max (lo, hi) and the running sums (s, s2), in
// index order: the portable pass's loop. A template in the header so that
// the float32 kernel inlines it for a block it hands back (one with a NaN or
// Inf): an out-of-line call there changes how the compiler lays out the
// whole kernel, hot loop included.
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

// The layout's Value from the merged tally of all tasks, `finite_count`
// values and their sums: min/max/num/sum/sum_squares and the buckets trimmed
// as HistogramBuilder::Exponential says.
tb::Summary::Value ExponentialValue(std::string_view tag, const ExponentialTally& total,
                                    int64_t finite_count, double sum, double sum_squares);

}  // namespace tblog::histogram_internal

#endif  // TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_EXPONENTIAL_H_
