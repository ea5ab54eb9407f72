#include "daemon/convert/histogram.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "daemon/convert/fields.h"

namespace tblog::daemon::convert {
namespace {

constexpr uint32_t kDefaultHistogramBuckets = HistogramBuilder::kDefaultBucketCount;

}  // namespace

absl::StatusOr<HistogramSummary> ConvertHistogram(std::string_view tag,
                                                  const v1::Histogram& histogram,
                                                  const Limits& limits, ParallelRunner* parallel) {
  if (!histogram.has_values()) return Bad("values", "not set");
  absl::StatusOr<TensorView> view =
      ViewTensor(histogram.values(), "values", limits, /*allow_shm=*/true);
  if (!view.ok()) return view.status();
  HistogramBuilderOptions options;
  options.non_finite = NonFinitePolicy::kSkip;
  options.runner = parallel;
  switch (histogram.layout()) {
    case v1::HISTOGRAM_LAYOUT_UNIFORM: {
      const uint32_t buckets =
          histogram.bucket_count() == 0 ? kDefaultHistogramBuckets : histogram.bucket_count();
      if (buckets > limits.max_histogram_buckets) {
        return Bad("bucket_count", absl::StrCat(buckets, " is more than the limit of ",
                                                limits.max_histogram_buckets));
      }
      options.bucket_count = static_cast<int>(buckets);
      // A client's range of a shared-memory slice (tblog.proto, ShmSlice.range):
      // checked by the builder, which then reads the slice once instead of twice.
      std::optional<HistogramRangeHint> hint;
      if (const v1::Tensor& values = histogram.values();
          values.has_shm() && values.shm().has_range()) {
        hint = HistogramRangeHint{values.shm().range().min(), values.shm().range().max()};
      }
      return HistogramBuilder(options).Uniform(tag, *view, hint);
    }
    case v1::HISTOGRAM_LAYOUT_EXPONENTIAL:
      if (histogram.bucket_count() != 0) {
        return Bad("bucket_count", "applies to the uniform layout only (exponential buckets are fixed)");
      }
      return HistogramBuilder(options).Exponential(tag, *view);
    default: return Bad("layout", UnknownEnum(histogram.layout()));
  }
}

}  // namespace tblog::daemon::convert
