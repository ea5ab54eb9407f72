// Reductions across writers, the converter's half (tblog.proto, "Reductions
// across writers"): a record with Record.reduce becomes a Contribution, the
// mergeable state of one writer's value (or of a ReducePartial), instead of
// an event; the run's RunReductions (aggregate.h) merges contributions and
// builds the one point of each (subrun, tag, step) with PointEvents below.
//
// Everything here is pure (no state), so the record converter runs it on the
// worker threads, where a histogram's values are binned.
#ifndef TBLOG_DAEMON_REDUCE_CONVERT_H_
#define TBLOG_DAEMON_REDUCE_CONVERT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/options.h"
#include "daemon/record_converter.h"
#include "engine/histogram/parallel.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

// The largest group a point may wait for (Reduce.group_size,
// OpenRunRequest.reduce_group_size).
inline constexpr uint32_t kMaxReduceGroupSize = 65536;

// The tag a writer's kept value is written under (Reduce.keep_contributions):
// "<tag>/by_writer/<writer_id>".
std::string KeptContributionTag(std::string_view tag, std::string_view writer_id);

// The mergeable state of the scalar ops (ScalarPartial): every op merges the
// same four numbers, and the op picks the result.
struct ScalarState {
  double sum = 0;     // sum(weight_i * value_i)
  double weight = 0;  // sum(weight_i)
  double min = 0;     // NaN only when every value was NaN
  double max = 0;
  // Adds `other` (both non-empty, or *this empty: `first`).
  void Merge(const ScalarState& other, bool first);
};

// An exponential histogram as counts per bin of the fixed edges, as
// HistogramPartial sends it: bins[i] is bin first_bin + i (of the
// histogram_internal::kNumBins bins), only the range holding values.
struct HistogramState {
  uint32_t first_bin = 0;
  std::vector<uint64_t> bins;
  double min = 0;  // of the finite values; unused when num == 0
  double max = 0;
  uint64_t num = 0;
  double sum = 0;
  double sum_squares = 0;
  // Adds `other`, widening the range of bins as needed.
  void Merge(const HistogramState& other);
};

// One contribution to a reduced point, ready to merge.
struct Contribution {
  // The point's identity and look: tag, step, subrun, wall_time (resolved),
  // display_name and description of the record; no kind.
  v1::Record head;
  v1::ReduceOp op = v1::REDUCE_OP_UNSPECIFIED;
  uint32_t group_size = 0;  // 0: the run's
  bool histogram = false;   // MERGE of an exponential histogram; else a scalar op
  v1::ScalarStyle style = v1::SCALAR_STYLE_TENSOR;
  ScalarState scalar;
  HistogramState histo;
  // The writer ids a ReducePartial lists; empty: the batch's writer alone.
  std::vector<std::string> contributors;
  // About what it holds in memory (charged to the in-flight budget with the
  // batch, see convert/charge.h).
  size_t Bytes() const;
};

// Validates `record.reduce` against the record (its kind, op, weight, group
// size, partial) and turns it into `out.contribution`, plus, with
// keep_contributions, the writer's own value as an event of `out` under
// KeptContributionTag(tag, writer_id). `wall_time` is the record's, resolved.
// INVALID_ARGUMENT naming the field otherwise ("reduce.op: ...").
absl::Status ConvertContribution(const v1::Record& record, double wall_time,
                                 std::string_view writer_id, const Limits& limits,
                                 ParallelRunner* parallel, Converted& out);

// The events of a point: one summary event of `head`'s tag, step and subrun,
// whose value is the reduction `op` of `scalar` (`count` contributors) in
// `style`, or the histogram `histo` (when `histogram`).
Converted PointEvents(const v1::Record& head, v1::ReduceOp op, bool histogram,
                      v1::ScalarStyle style, const ScalarState& scalar,
                      const HistogramState& histo, uint64_t count);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_REDUCE_CONVERT_H_
