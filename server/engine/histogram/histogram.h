// Histogram summaries in TensorBoard's two layouts, computed in one or two
// passes over a TensorView, optionally split across threads.
//
//  - Uniform: TensorBoard's histogram summary v2 (tf.summary.histogram,
//    histogram_pb): a DT_DOUBLE [k,3] tensor of rows (left, right, count)
//    over k equal-width buckets, plugin "histograms", data_class TENSOR.
//  - Exponential: the legacy HistogramProto (Value.histo) over TensorFlow's
//    default exponential bucket edges, trimmed as PyTorch's
//    add_histogram(bins='tensorflow') trims it; no metadata, as PyTorch.
//
// Non-finite values (NaN, +Inf, -Inf): under NonFinitePolicy::kSkip (the
// default) they are left out of everything (buckets, min, max, num, sum,
// sum_squares) and counted in HistogramSummary::nonfinite_count so the caller
// can warn; an input with only non-finite values is treated as empty. Under
// kReject, any of them makes the call fail with INVALID_ARGUMENT naming how
// many there are and the flat index of the first.
//
// Determinism: the result is the same whatever the runner and its number of
// threads. Counts are integers; min and max do not depend on order; sums are
// accumulated sequentially in double within fixed chunks of kChunkElements
// elements (in index order) and the chunk sums are then added in chunk order.
#ifndef TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_H_
#define TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/histogram/parallel.h"
#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog {

enum class NonFinitePolicy {
  kSkip,    // leave NaN/Inf out and count them
  kReject,  // fail with INVALID_ARGUMENT
};

// The range of an input's values as its sender claims it (tblog.proto's
// ShmSlice.range: a client that found it while copying the tensor into
// shared memory). Advisory, never trusted: see
// HistogramBuilder::Uniform.
struct HistogramRangeHint {
  double min = 0;
  double max = 0;
};

struct HistogramBuilderOptions {
  // Uniform layout only: number of equal-width buckets. 0 is allowed (an empty
  // [0,3] tensor, as TensorBoard allows); more than kMaxBucketCount is an error.
  int bucket_count = 30;
  NonFinitePolicy non_finite = NonFinitePolicy::kSkip;
  // Splits inputs larger than one chunk across the runner's threads. Borrowed;
  // must outlive every call. nullptr: everything runs on the calling thread.
  ParallelRunner* runner = nullptr;
};

// A built value plus what was left out of it.
struct HistogramSummary {
  tb::Summary::Value value;
  int64_t nonfinite_count = 0;  // NaN/Inf values skipped (0 under kReject)
  // Uniform: a range hint was given and held, so the data was read once.
  bool range_hint_held = false;
};

// Builds histogram Values. Holds only its options; const methods are
// thread-safe (the runner must then be too, as ParallelRunner requires).
class HistogramBuilder {
 public:
  static constexpr int kDefaultBucketCount = 30;
  static constexpr int kMaxBucketCount = 10000;
  // Elements per summation chunk (see the determinism note above).
  static constexpr int64_t kChunkElements = int64_t{1} << 16;

  explicit HistogramBuilder(HistogramBuilderOptions options = {}) : options_(options) {}

  // Uniform layout. TensorBoard's rules, on values converted to double:
  // width = (max-min)/k; bucket = floor((x-min)/width) clamped to k-1; edges as
  // numpy.linspace(min, max, k+1) computes them, the last forced to max. No
  // (finite) data -> k rows of zeros; all values equal v -> every edge v and
  // all the count in the last row. INVALID_ARGUMENT for an invalid view, a
  // bucket_count outside [0, kMaxBucketCount], or non-finite data under kReject.
  //
  // range_hint (float32 input with the AVX2 kernels; ignored otherwise): a
  // claimed range of the values (every value finite, min < max the smallest
  // and largest) lets Uniform count in one pass over the data instead of
  // two, checking the claim in that pass. When the claim is wrong (a value
  // outside it or non-finite, or the claimed min or max not among the
  // values) the work is redone as without a hint, so the result is always
  // exactly the one without it; a wrong hint costs one more pass.
  absl::StatusOr<HistogramSummary> Uniform(
      std::string_view tag, const TensorView& data,
      std::optional<HistogramRangeHint> range_hint = std::nullopt) const;

  // Exponential layout, numpy.histogram semantics over ExponentialEdges()
  // (bins [e_i, e_i+1), the last one closed; values beyond the outer edges,
  // |x| > ~1e20, are in min/max/num/sum but in no bucket). The output keeps
  // the buckets from the first to the last non-empty one plus one empty
  // bucket on the left, bucket_limit being right edges. When no value lands
  // in a bucket (empty input included, which PyTorch rejects) it holds the
  // single bucket (DBL_MAX, 0) as TensorFlow encodes an empty histogram, and
  // min = max = sum = 0 if there is no finite value. Errors as Uniform.
  absl::StatusOr<HistogramSummary> Exponential(std::string_view tag, const TensorView& data) const;

  // TensorFlow's default edges without +-DBL_MAX (PyTorch's default_bins):
  // -1e20.. -1e-12, 0, 1e-12 .. ~1e20, each 1.1 times the previous (1549).
  static std::span<const double> ExponentialEdges();

 private:
  HistogramBuilderOptions options_;
};

namespace histogram_internal {

// For tests that compare the two code paths: true makes every build use the
// portable scalar code instead of the AVX2 kernels (which give the same bits).
// Must not be called while a build is running.
void UsePortableKernelsOnly(bool portable_only);
// Whether this machine runs the AVX2 kernels (unless told not to).
bool Avx2KernelsAvailable();

}  // namespace histogram_internal
}  // namespace tblog

#endif  // TBLOG_ENGINE_HISTOGRAM_HISTOGRAM_H_
