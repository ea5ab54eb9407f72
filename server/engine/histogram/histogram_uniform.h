// The uniform layout (TensorBoard's k equal-width buckets, see
// HistogramBuilder::Uniform), portable code for every dtype: pass 1 finds the
// range of the finite values, pass 2 counts them into buckets, and
// UniformValue turns the counts into the [k,3] tensor. HistogramBuilder::
// Uniform (histogram.cc) runs the passes over tasks and merges them;
// histogram_avx2.cc does both passes faster for float32 through
// FloatUniformBuckets, to the same bits.
//
// Internal to tblog_engine_histogram. The functions are pure over their
// arguments (each task passes its own output); UniformBoundaries and
// FloatUniformBuckets are immutable once made, so the tasks of one build
// share them.
#ifndef TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_UNIFORM_H_
#define TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_UNIFORM_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "engine/histogram/histogram_pass.h"
#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog::histogram_internal {

// What pass 1 learns of a range of elements.
struct MinMax {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  int64_t finite_count = 0;
  NonFiniteTally nonfinite;

  void Merge(const MinMax& other) {
    min = std::min(min, other.min);
    max = std::max(max, other.max);
    finite_count += other.finite_count;
    nonfinite.Merge(other.nonfinite);
  }
};

// Pass 1 over elements [begin, end) of a buffer of `dtype` (validated): the
// min and max of the finite values, how many are finite, and the others.
MinMax ScanMinMax(DType dtype, const char* base, int64_t begin, int64_t end);

// Bucket boundaries of the uniform layout as offsets from min: bucket(x) is
// the number of thresholds t_i (i = 1..k-1) with x - min >= t_i, where t_i is
// the smallest offset whose quotient fl(offset / width) reaches i. That is
// exactly TensorBoard's min(floor((x - min) / width), k - 1), because a
// correctly rounded quotient never decreases as the offset grows; it lets the
// hot loop guess with a multiplication and settle with two comparisons
// instead of dividing.
class UniformBoundaries {
 public:
  // k >= 1 buckets of a finite width > 0.
  UniformBoundaries(int k, double width);

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
    // Clamped: a value outside the range the first pass found (data that
    // changed between the passes: a shared-memory slice its client rewrote)
    // lands in an edge bucket instead of outside the counts.
    return std::clamp<int64_t>(index, 0, last_);
  }

 private:
  std::vector<double> thresholds_;  // k+1: -inf, t_1 .. t_{k-1}, +inf
  double inverse_width_;
  int64_t last_;
};

// Pass 2 over elements [begin, end) of a buffer of `dtype`: adds each finite
// value's bucket to counts (k of them), the values being in [min, max] of
// the pass 1 that made `boundaries`.
void CountUniform(DType dtype, const char* base, int64_t begin, int64_t end, double min,
                  const UniformBoundaries& boundaries, std::vector<uint64_t>& counts);

// The same by division, for a range so wide that (max - min) overflows and
// UniformBoundaries cannot be made: floor((x - min) / width) clamped to k-1.
void CountUniformByDivision(DType dtype, const char* base, int64_t begin, int64_t end, double min,
                            double width, std::vector<uint64_t>& counts);

// The buckets of UniformBoundaries as float thresholds, for the float32
// kernels: bucket(x) is the number of X_i (i = 1..k-1) with x >= X_i, X_i
// being the smallest float whose offset double(x) - min reaches t_i. As that
// offset never decreases with x, these are exactly the same buckets, but
// found in float: a guess (x - min) * scale that is provably off by at most
// one, then two compares.
class FloatUniformBuckets {
 public:
  // nullopt where the guess is not provably within one bucket: a range
  // wider than FLT_MAX, or a scale that is not a normal float.
  static std::optional<FloatUniformBuckets> Make(int k, double min, double max,
                                                 const UniformBoundaries& boundaries);

  // The bucket of a finite x in [min, max]. Why the guess is within one:
  // every rounding above is relative (2^-24 each; a subnormal difference is
  // off by at most 2^-150, times a scale below 2^128), so the guess is within
  // k * 2^-22 < 0.003 of the exact quotient, and floors of reals less than 1
  // apart differ by at most 1.
  int Of(float x) const {
    const float guess = (x - min_) * scale_;
    // guess > 0 is false for NaN and below-range values (data that changed
    // after the range was found): they are clamped into the counts, never
    // out of them.
    const int index = guess < static_cast<float>(last_)
                          ? (guess > 0 ? static_cast<int>(guess) : 0)
                          : last_;
    return std::clamp(index - 1 + (x >= thresholds_[static_cast<size_t>(index)] ? 1 : 0) +
                          (x >= thresholds_[static_cast<size_t>(index) + 1] ? 1 : 0),
                      0, last_);
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

// The layout's Value: k rows (left, right, count) with edges as
// numpy.linspace(min, max, k+1) computes them (see HistogramBuilder::
// Uniform for the empty and the single-valued cases). counts has k entries.
tb::Summary::Value UniformValue(std::string_view tag, int k, const MinMax& range,
                                const std::vector<uint64_t>& counts);

}  // namespace tblog::histogram_internal

#endif  // TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_UNIFORM_H_
