#include "daemon/reduce_convert.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/fields.h"
#include "daemon/convert/histogram.h"
#include "daemon/convert/scalars.h"
#include "daemon/names.h"
#include "engine/histogram/histogram_exponential.h"

namespace tblog::daemon {
namespace {

using convert::Bad;
using histogram_internal::kNumBins;

constexpr size_t kMaxContributorIdBytes = 256;

bool IsScalarOp(v1::ReduceOp op) {
  return op == v1::REDUCE_OP_MEAN || op == v1::REDUCE_OP_SUM || op == v1::REDUCE_OP_MIN ||
         op == v1::REDUCE_OP_MAX || op == v1::REDUCE_OP_COUNT;
}

// NaN-skipping min/max: NaN only when both are NaN.
double MinSkippingNaN(double a, double b) { return std::isnan(a) ? b : std::isnan(b) ? a : std::min(a, b); }
double MaxSkippingNaN(double a, double b) { return std::isnan(a) ? b : std::isnan(b) ? a : std::max(a, b); }

// The op fits the record's kind.
absl::Status CheckOp(const v1::Record& record) {
  const v1::ReduceOp op = record.reduce().op();
  if (op == v1::REDUCE_OP_UNSPECIFIED) return Bad("reduce.op", "not set");
  if (!v1::ReduceOp_IsValid(op)) return Bad("reduce.op", convert::UnknownEnum(op));
  if (record.has_scalar()) {
    if (!IsScalarOp(op)) {
      return Bad("reduce.op", "MERGE applies to histograms; a scalar takes MEAN, SUM, MIN, MAX "
                              "or COUNT");
    }
    return absl::OkStatus();
  }
  if (record.has_histogram()) {
    if (op != v1::REDUCE_OP_MERGE) {
      return Bad("reduce.op", "a histogram is reduced with MERGE only");
    }
    if (record.histogram().layout() != v1::HISTOGRAM_LAYOUT_EXPONENTIAL) {
      return Bad("reduce.op",
                 "MERGE needs histogram.layout HISTOGRAM_LAYOUT_EXPONENTIAL: the uniform "
                 "layout's bucket edges depend on each writer's min and max, so its "
                 "histograms cannot be merged exactly");
    }
    return absl::OkStatus();
  }
  return Bad("reduce", "applies to `scalar` and `histogram` records only (send reduced "
                       "scalars as Scalar records, not ScalarColumns)");
}

absl::Status CheckContributors(const v1::ReducePartial& partial) {
  if (partial.contributors_size() == 0) {
    return Bad("reduce.partial.contributors", "empty; a partial holds at least one contributor");
  }
  absl::flat_hash_set<std::string_view> seen;
  for (int i = 0; i < partial.contributors_size(); ++i) {
    const std::string& id = partial.contributors(i);
    const std::string field = absl::StrCat("reduce.partial.contributors[", i, "]");
    if (id.empty()) return Bad(field, "empty writer id");
    TBLOG_RETURN_IF_ERROR(ValidateLabel(id, field, kMaxContributorIdBytes));
    if (!seen.insert(id).second) {
      return Bad(field, absl::StrCat("writer id ", EscapeForMessage(id), " is listed twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status ScalarFromPartial(const v1::ScalarPartial& partial, ScalarState& state) {
  if (!std::isfinite(partial.weight()) || partial.weight() <= 0) {
    return Bad("reduce.partial.scalar.weight", absl::StrCat(partial.weight(),
                                                            " is not positive and finite"));
  }
  state = ScalarState{partial.sum(), partial.weight(), partial.min(), partial.max()};
  return absl::OkStatus();
}

absl::Status HistogramFromPartial(const v1::HistogramPartial& partial, HistogramState& state) {
  const uint64_t first = partial.first_bin();
  const uint64_t size = static_cast<uint64_t>(partial.bin_counts_size());
  if (first + size > static_cast<uint64_t>(kNumBins)) {
    return Bad("reduce.partial.histogram.bin_counts",
               absl::StrCat("bins ", first, "..", first + size, " go past the ", kNumBins,
                            " bins of the exponential edges"));
  }
  state.first_bin = static_cast<uint32_t>(first);
  state.bins.assign(partial.bin_counts().begin(), partial.bin_counts().end());
  uint64_t binned = 0;
  for (const uint64_t count : state.bins) binned += count;
  if (partial.num() < binned) {
    return Bad("reduce.partial.histogram.num",
               absl::StrCat(partial.num(), " is less than the ", binned, " values in bins"));
  }
  if (!std::isfinite(partial.sum()) || !std::isfinite(partial.sum_squares())) {
    return Bad("reduce.partial.histogram.sum", "sum and sum_squares must be finite");
  }
  if (partial.num() > 0 && !(partial.min() <= partial.max())) {
    return Bad("reduce.partial.histogram.min",
               absl::StrCat("min ", partial.min(), " is not <= max ", partial.max()));
  }
  state.min = partial.min();
  state.max = partial.max();
  state.num = partial.num();
  state.sum = partial.sum();
  state.sum_squares = partial.sum_squares();
  return absl::OkStatus();
}

// The bins of an exponential HistogramProto (HistogramBuilder::Exponential's
// trimmed form: bucket_limit are right edges, the first bucket an empty one
// left of the first bin with data; (DBL_MAX, 0) alone when no bin has data).
HistogramState HistogramFromProto(const tb::HistogramProto& histo) {
  HistogramState state;
  state.num = static_cast<uint64_t>(histo.num());
  state.min = histo.min();
  state.max = histo.max();
  state.sum = histo.sum();
  state.sum_squares = histo.sum_squares();
  if (histo.bucket_limit_size() < 2) return state;  // no value in a bin
  const std::span<const double> edges = HistogramBuilder::ExponentialEdges();
  // bucket_limit[0] is edge `first`; bucket j >= 1 is bin first - 1 + j.
  const auto it = std::lower_bound(edges.begin(), edges.end(), histo.bucket_limit(0));
  state.first_bin = static_cast<uint32_t>(it - edges.begin());
  for (int j = 1; j < histo.bucket_size() && state.first_bin + state.bins.size() < kNumBins; ++j) {
    state.bins.push_back(static_cast<uint64_t>(histo.bucket(j)));
  }
  return state;
}

}  // namespace

size_t Contribution::Bytes() const {
  size_t bytes = sizeof(Contribution) + static_cast<size_t>(head.SpaceUsedLong()) +
                 histo.bins.capacity() * sizeof(uint64_t);
  for (const std::string& id : contributors) bytes += sizeof(std::string) + id.capacity();
  return bytes;
}

std::string KeptContributionTag(std::string_view tag, std::string_view writer_id) {
  return absl::StrCat(Sv(tag), "/by_writer/", Sv(writer_id));
}

void ScalarState::Merge(const ScalarState& other, bool first) {
  if (first) {
    *this = other;
    return;
  }
  sum += other.sum;
  weight += other.weight;
  min = MinSkippingNaN(min, other.min);
  max = MaxSkippingNaN(max, other.max);
}

void HistogramState::Merge(const HistogramState& other) {
  if (bins.empty()) {
    first_bin = other.first_bin;
    bins = other.bins;
  } else if (!other.bins.empty()) {
    const size_t first = std::min(first_bin, other.first_bin);
    const size_t end =
        std::max(first_bin + bins.size(), other.first_bin + other.bins.size());
    if (first != first_bin || end != first_bin + bins.size()) {
      std::vector<uint64_t> wider(end - first);
      std::copy(bins.begin(), bins.end(), wider.begin() + (first_bin - first));
      bins = std::move(wider);
      first_bin = static_cast<uint32_t>(first);
    }
    for (size_t b = 0; b < other.bins.size(); ++b) {
      bins[other.first_bin - first_bin + b] += other.bins[b];
    }
  }
  if (other.num > 0) {
    min = num > 0 ? std::min(min, other.min) : other.min;
    max = num > 0 ? std::max(max, other.max) : other.max;
  }
  num += other.num;
  sum += other.sum;
  sum_squares += other.sum_squares;
}

absl::Status ConvertContribution(const v1::Record& record, double wall_time,
                                 std::string_view writer_id, const Limits& limits,
                                 ParallelRunner* parallel, Converted& out) {
  const v1::Reduce& reduce = record.reduce();
  TBLOG_RETURN_IF_ERROR(CheckOp(record));
  const double weight = reduce.weight();
  if (!std::isfinite(weight) || weight < 0) {
    return Bad("reduce.weight", absl::StrCat(weight, " is negative or not finite"));
  }
  if (weight != 0 && reduce.op() != v1::REDUCE_OP_MEAN) {
    return Bad("reduce.weight", "applies to MEAN only");
  }
  if (reduce.group_size() > kMaxReduceGroupSize) {
    return Bad("reduce.group_size", absl::StrCat(reduce.group_size(), " is more than the limit of ",
                                                 kMaxReduceGroupSize));
  }
  auto contribution = std::make_shared<Contribution>();
  Contribution& c = *contribution;
  c.head.set_tag(record.tag());
  c.head.set_step(record.step());
  c.head.set_subrun(record.subrun());
  c.head.set_wall_time(wall_time);
  c.head.set_display_name(record.display_name());
  c.head.set_description(record.description());
  c.op = reduce.op();
  c.group_size = reduce.group_size();
  c.histogram = record.has_histogram();
  if (record.has_scalar()) {
    c.style = record.scalar().style();
    if (!v1::ScalarStyle_IsValid(c.style)) return Bad("scalar.style", convert::UnknownEnum(c.style));
  }

  if (reduce.has_partial()) {
    const v1::ReducePartial& partial = reduce.partial();
    if (reduce.keep_contributions()) {
      return Bad("reduce.keep_contributions",
                 "must be false with a partial (its forwarder sends kept values as plain records)");
    }
    if (weight != 0) return Bad("reduce.weight", "must be 0 with a partial (it has its own)");
    TBLOG_RETURN_IF_ERROR(CheckContributors(partial));
    if (c.histogram) {
      if (!partial.has_histogram()) {
        return Bad("reduce.partial", "a histogram record carries partial.histogram");
      }
      if (record.histogram().has_values() && record.histogram().values().data().size() > 0) {
        return Bad("histogram.values", "must be empty in a record carrying a partial");
      }
      TBLOG_RETURN_IF_ERROR(HistogramFromPartial(partial.histogram(), c.histo));
    } else {
      if (!partial.has_scalar()) return Bad("reduce.partial", "a scalar record carries partial.scalar");
      TBLOG_RETURN_IF_ERROR(ScalarFromPartial(partial.scalar(), c.scalar));
    }
    c.contributors.assign(partial.contributors().begin(), partial.contributors().end());
    out.contribution = std::move(contribution);
    return absl::OkStatus();
  }

  // One writer's own value.
  const std::string kept_tag =
      reduce.keep_contributions() ? KeptContributionTag(record.tag(), writer_id) : std::string();
  if (reduce.keep_contributions()) {
    TBLOG_RETURN_IF_ERROR(
        Annotate(ValidateTag(kept_tag, limits), "reduce.keep_contributions: the kept tag"));
  }
  std::optional<tb::Summary::Value> kept;
  if (c.histogram) {
    absl::StatusOr<HistogramSummary> histogram =
        convert::ConvertHistogram(record.tag(), record.histogram(), limits, parallel);
    if (!histogram.ok()) return histogram.status();
    if (histogram->nonfinite_count > 0) {
      out.warnings.push_back(absl::StrCat("histogram ", EscapeForMessage(record.tag()),
                                          ": values: ", histogram->nonfinite_count,
                                          " NaN/Inf values left out of the histogram"));
    }
    c.histo = HistogramFromProto(histogram->value.histo());
    if (reduce.keep_contributions()) {
      kept = std::move(histogram->value);
      kept->set_tag(kept_tag);
    }
  } else {
    const double value = record.scalar().value();
    const double w = weight == 0 ? 1.0 : weight;
    c.scalar = ScalarState{w * value, w, value, value};
    if (reduce.keep_contributions()) {
      absl::StatusOr<tb::Summary::Value> value_out = convert::ConvertScalar(kept_tag, record.scalar());
      if (!value_out.ok()) return value_out.status();
      kept = *std::move(value_out);
    }
  }
  if (kept.has_value()) {
    convert::Describe(record, *kept);
    const convert::Header header{kept_tag, record.subrun(), record.step(), wall_time};
    out.events.push_back(convert::SummaryEvent(header, *std::move(kept)));
  }
  out.contribution = std::move(contribution);
  return absl::OkStatus();
}

Converted PointEvents(const v1::Record& head, v1::ReduceOp op, bool histogram,
                      v1::ScalarStyle style, const ScalarState& scalar,
                      const HistogramState& histo, uint64_t count) {
  tb::Summary::Value value;
  if (histogram) {
    histogram_internal::ExponentialTally tally;
    for (size_t b = 0; b < histo.bins.size() && histo.first_bin + b < tally.counts.size(); ++b) {
      tally.counts[histo.first_bin + b] = histo.bins[b];
    }
    tally.min = histo.min;
    tally.max = histo.max;
    value = histogram_internal::ExponentialValue(head.tag(), tally,
                                                 static_cast<int64_t>(histo.num), histo.sum,
                                                 histo.sum_squares);
  } else {
    double result = 0;
    switch (op) {
      case v1::REDUCE_OP_MEAN: result = scalar.sum / scalar.weight; break;
      case v1::REDUCE_OP_SUM: result = scalar.sum; break;
      case v1::REDUCE_OP_MIN: result = scalar.min; break;
      case v1::REDUCE_OP_MAX: result = scalar.max; break;
      case v1::REDUCE_OP_COUNT: result = static_cast<double>(count); break;
      default: break;  // validated when converted
    }
    v1::Scalar point;
    point.set_value(static_cast<float>(result));
    point.set_style(style);
    // The style was validated with the first contribution.
    value = *convert::ConvertScalar(head.tag(), point);
  }
  convert::Describe(head, value);
  Converted out;
  const convert::Header header{head.tag(), head.subrun(), head.step(), head.wall_time()};
  out.events.push_back(convert::SummaryEvent(header, std::move(value)));
  return out;
}

}  // namespace tblog::daemon
