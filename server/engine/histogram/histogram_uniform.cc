// The uniform layout's portable passes and its Value; see histogram_uniform.h.
#include "engine/histogram/histogram_uniform.h"

#include <bit>
#include <cfloat>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>

#include "tblog/tensorboard/plugins.pb.h"

namespace tblog::histogram_internal {
namespace {

template <typename E>
MinMax ScanMinMaxOf(const char* base, int64_t begin, int64_t end) {
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

template <typename E>
void CountUniformOf(const char* base, int64_t begin, int64_t end, double min,
                    const UniformBoundaries& boundaries, std::vector<uint64_t>& counts) {
  uint64_t* count = counts.data();
  for (int64_t i = begin; i < end; ++i) {
    const auto v = E::Load(base + static_cast<size_t>(i) * E::kSize);
    if (!IsFinite<E>(v)) continue;
    ++count[boundaries.BucketOf(static_cast<double>(v) - min)];
  }
}

template <typename E>
void CountUniformByDivisionOf(const char* base, int64_t begin, int64_t end, double min,
                              double width, std::vector<uint64_t>& counts) {
  const int64_t last = static_cast<int64_t>(counts.size()) - 1;
  for (int64_t i = begin; i < end; ++i) {
    const auto v = E::Load(base + static_cast<size_t>(i) * E::kSize);
    if (!IsFinite<E>(v)) continue;
    // floor((x - min) / width) clamped to k-1; x >= min, so truncation is
    // floor. inf/inf (NaN) also lands in k-1.
    // q > 0 is false for a value below min, which the range pass excluded
    // but data rewritten under it (a shared-memory slice) may hold: bucket 0.
    const double q = (static_cast<double>(v) - min) / width;
    ++counts[static_cast<size_t>(
        q < static_cast<double>(last) ? (q > 0 ? static_cast<int64_t>(q) : 0) : last)];
  }
}

// Binary search over the non-negative doubles, ordered like their bits: the
// smallest offset whose quotient by width reaches i.
double SmallestOffsetReaching(int i, double width) {
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

// Appends doubles to `bytes` little-endian (the engine assumes a
// little-endian host, as TensorView does).
void AppendDoubles(std::string& bytes, std::initializer_list<double> values) {
  for (double v : values) {
    char raw[sizeof v];
    std::memcpy(raw, &v, sizeof v);
    bytes.append(raw, sizeof raw);
  }
}

}  // namespace

MinMax ScanMinMax(DType dtype, const char* base, int64_t begin, int64_t end) {
  return VisitDType(dtype, [&](auto element) {
    return ScanMinMaxOf<decltype(element)>(base, begin, end);
  });
}

UniformBoundaries::UniformBoundaries(int k, double width)
    : inverse_width_(1.0 / width), last_(k - 1) {
  thresholds_.reserve(static_cast<size_t>(k) + 1);
  thresholds_.push_back(-std::numeric_limits<double>::infinity());
  for (int i = 1; i < k; ++i) thresholds_.push_back(SmallestOffsetReaching(i, width));
  thresholds_.push_back(std::numeric_limits<double>::infinity());
}

void CountUniform(DType dtype, const char* base, int64_t begin, int64_t end, double min,
                  const UniformBoundaries& boundaries, std::vector<uint64_t>& counts) {
  VisitDType(dtype, [&](auto element) {
    CountUniformOf<decltype(element)>(base, begin, end, min, boundaries, counts);
  });
}

void CountUniformByDivision(DType dtype, const char* base, int64_t begin, int64_t end, double min,
                            double width, std::vector<uint64_t>& counts) {
  VisitDType(dtype, [&](auto element) {
    CountUniformByDivisionOf<decltype(element)>(base, begin, end, min, width, counts);
  });
}

std::optional<FloatUniformBuckets> FloatUniformBuckets::Make(int k, double min, double max,
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

}  // namespace tblog::histogram_internal
