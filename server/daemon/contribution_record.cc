#include "daemon/contribution_record.h"

#include <bit>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "base/wire.h"

namespace tblog::daemon {

v1::Record PartialRecord(const v1::Record& head, v1::ReduceOp op, bool histogram,
                         v1::ScalarStyle style, uint32_t group_size, const ScalarState& scalar,
                         const HistogramState& histo,
                         const std::vector<std::string>& contributors) {
  v1::Record record;
  record.set_tag(head.tag());
  record.set_step(head.step());
  record.set_subrun(head.subrun());
  record.set_wall_time(head.wall_time());
  record.set_display_name(head.display_name());
  record.set_description(head.description());
  v1::Reduce& reduce = *record.mutable_reduce();
  reduce.set_op(op);
  reduce.set_group_size(group_size);
  v1::ReducePartial& partial = *reduce.mutable_partial();
  for (const std::string& id : contributors) partial.add_contributors(id);
  if (histogram) {
    record.mutable_histogram()->set_layout(v1::HISTOGRAM_LAYOUT_EXPONENTIAL);
    v1::HistogramPartial& h = *partial.mutable_histogram();
    h.set_first_bin(histo.first_bin);
    h.mutable_bin_counts()->Add(histo.bins.begin(), histo.bins.end());
    h.set_min(histo.min);
    h.set_max(histo.max);
    h.set_num(histo.num);
    h.set_sum(histo.sum);
    h.set_sum_squares(histo.sum_squares);
  } else {
    record.mutable_scalar()->set_style(style);
    v1::ScalarPartial& s = *partial.mutable_scalar();
    s.set_sum(scalar.sum);
    s.set_weight(scalar.weight);
    s.set_min(scalar.min);
    s.set_max(scalar.max);
  }
  return record;
}

std::string ContributionRecordBytes(const Contribution& c, uint32_t group_size,
                                    const std::vector<std::string>& contributors) {
  if (!c.contributors.empty() || c.histogram) {
    return PartialRecord(c.head, c.op, c.histogram, c.style, group_size, c.scalar, c.histo,
                         contributors)
        .SerializeAsString();
  }
  // ConvertContribution made the state {weight * value, weight, value,
  // value} of a float value: the value and weight give it back exactly.
  v1::Record record;
  record.set_tag(c.head.tag());
  record.set_step(c.head.step());
  record.set_subrun(c.head.subrun());
  record.set_wall_time(c.head.wall_time());
  record.set_display_name(c.head.display_name());
  record.set_description(c.head.description());
  record.mutable_scalar()->set_value(static_cast<float>(c.scalar.min));
  record.mutable_scalar()->set_style(c.style);
  v1::Reduce& reduce = *record.mutable_reduce();
  reduce.set_op(c.op);
  reduce.set_group_size(group_size);
  if (c.scalar.weight != 1) reduce.set_weight(c.scalar.weight);
  return record.SerializeAsString();
}

EventOut ContributionEvent(std::string_view subrun, std::string_view record, double wall_time) {
  EventOut out;
  out.subrun = std::string(subrun);
  out.reduced = true;
  std::string& event = out.event;
  event.reserve(9 + wire::LengthDelimitedSize(kContributionField, record.size()));
  wire::AppendVarint(wire::FieldKey(1, wire::kFixed64), &event);  // wall_time
  wire::AppendLittleEndian(std::bit_cast<uint64_t>(wall_time), 8, &event);
  wire::AppendLengthDelimited(kContributionField, record, &event);
  return out;
}

absl::StatusOr<Contribution> DecodePartialRecord(std::string_view bytes,
                                                 std::string_view batch_writer) {
  v1::Record record;
  if (!record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
      !record.has_reduce() || record.reduce().keep_contributions()) {
    return absl::DataLossError("contribution record: not a Record with a reduce");
  }
  const bool compact = !record.reduce().has_partial();
  if (compact && (batch_writer.empty() || !record.has_scalar())) {
    return absl::DataLossError(
        "contribution record: a compact one outside a batch, or not of a scalar");
  }
  // A client's checks; kept values and limits are not used (none is kept).
  Converted converted;
  const absl::Status status =
      ConvertContribution(record, record.wall_time(), batch_writer, Limits{},
                          /*parallel=*/nullptr, converted);
  if (!status.ok()) {
    return absl::DataLossError(absl::StrCat("contribution record: ", status.message()));
  }
  if (converted.contribution == nullptr || converted.contribution->group_size == 0) {
    return absl::DataLossError("contribution record: no group size");
  }
  Contribution c = *converted.contribution;
  if (compact) c.contributors = {std::string(batch_writer)};
  return c;
}

void MarkReducedPoint(EventOut& event) {
  wire::AppendVarint(wire::FieldKey(kReducedPointField, wire::kVarint), &event.event);
  wire::AppendVarint(1, &event.event);
  event.reduced = true;
}

}  // namespace tblog::daemon
