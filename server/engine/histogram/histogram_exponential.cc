// The exponential layout's bins, its portable pass and its Value; see
// histogram_exponential.h.
#include "engine/histogram/histogram_exponential.h"

#include <cfloat>
#include <string>

namespace tblog::histogram_internal {
namespace {

// One summation chunk: its sums start from zero (see histogram.h).
template <typename E>
void TallyExponentialChunk(const char* base, int64_t begin, int64_t end,
                           const ExponentialBins& bins, ExponentialTally& tally, double& sum,
                           double& sum_squares) {
  double s = 0, s2 = 0;
  TallyExponentialRange<E>(base, begin, end, bins, tally, tally.min, tally.max, s, s2);
  sum = s;
  sum_squares = s2;
}

}  // namespace

const ExponentialBins& ExponentialBins::Get() {
  static const ExponentialBins* const bins = new ExponentialBins();
  return *bins;
}

ExponentialBins::ExponentialBins() {
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

void ExponentialBins::BuildFloatTables() {
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
      // The one threshold that may lie inside the cell is the next one; it
      // does when it has the cell's key.
      const uint32_t next = std::bit_cast<uint32_t>(row[count + 1]);
      const uint32_t split = next >> kFloatKeyShift == float_key_base_ + static_cast<uint32_t>(k)
                                 ? next & kFloatCellLowMask
                                 : kFloatCellNoSplit;
      float_cells_.push_back(static_cast<uint32_t>(count) << kFloatCellCountShift | split);
    }
  }
}

void TallyExponentialTask(DType dtype, const char* base, const TaskPlan& plan, int task,
                          const ExponentialBins& bins, ExponentialTally& tally,
                          std::span<double> chunk_sums, std::span<double> chunk_sum_squares) {
  VisitDType(dtype, [&](auto element) {
    for (int64_t c = plan.ChunkBegin(task); c < plan.ChunkBegin(task + 1); ++c) {
      TallyExponentialChunk<decltype(element)>(base, plan.ElementAt(c), plan.ElementAt(c + 1),
                                               bins, tally, chunk_sums[static_cast<size_t>(c)],
                                               chunk_sum_squares[static_cast<size_t>(c)]);
    }
  });
}

tb::Summary::Value ExponentialValue(std::string_view tag, const ExponentialTally& total,
                                    int64_t finite_count, double sum, double sum_squares) {
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
    const std::span<const double> edges = ExponentialBins::Get().edges();
    histo->add_bucket_limit(edges[static_cast<size_t>(first)]);
    histo->add_bucket(0.0);  // bin first-1 (or nothing) is empty by definition
    for (int b = first; b <= last; ++b) {
      histo->add_bucket_limit(edges[static_cast<size_t>(b) + 1]);
      histo->add_bucket(static_cast<double>(total.counts[b]));
    }
  }
  return out;
}

}  // namespace tblog::histogram_internal
