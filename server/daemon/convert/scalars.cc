#include "daemon/convert/scalars.h"

#include <cmath>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/fields.h"
#include "daemon/names.h"
#include "engine/histogram/scalar_event.h"
#include "engine/histogram/scalar_summary.h"

namespace tblog::daemon::convert {

absl::StatusOr<tb::Summary::Value> ConvertScalar(std::string_view tag, const v1::Scalar& scalar) {
  switch (scalar.style()) {
    case v1::SCALAR_STYLE_TENSOR:
      return scalar.has_value_f64() ? ScalarValueF64(tag, scalar.value_f64())
                                    : ScalarValue(tag, scalar.value());
    case v1::SCALAR_STYLE_SIMPLE_VALUE:
      // simple_value is a float: a float64 value is rounded, as PyTorch does.
      return SimpleScalarValue(tag, scalar.has_value_f64()
                                        ? static_cast<float>(scalar.value_f64())
                                        : scalar.value());
    default: return Bad("style", UnknownEnum(scalar.style()));
  }
}

absl::StatusOr<Converted> ConvertScalarColumns(const v1::ScalarColumns& columns,
                                               double receive_time, const Limits& limits) {
  for (int i = 0; i < columns.tags_size(); ++i) {
    const v1::ColumnTag& entry = columns.tags(i);
    absl::Status valid = ValidateTag(entry.tag(), limits);
    if (valid.ok()) valid = ValidateSubrun(entry.subrun(), limits);
    if (!valid.ok()) return Annotate(valid, absl::StrCat("tags[", i, "]"));
  }
  const int points = columns.tag_index_size();
  if (columns.steps_size() != points || columns.values_size() != points) {
    return Bad("steps/values", absl::StrCat("tag_index has ", points, " entries, steps ",
                                            columns.steps_size(), ", values ",
                                            columns.values_size(), "; they must agree"));
  }
  if (columns.wall_times_size() != 0 && columns.wall_times_size() != points) {
    return Bad("wall_times", absl::StrCat("has ", columns.wall_times_size(),
                                          " entries; must be empty or one per point (",
                                          points, ")"));
  }
  ScalarStyle style;
  switch (columns.style()) {
    case v1::SCALAR_STYLE_TENSOR: style = ScalarStyle::kTensor; break;
    case v1::SCALAR_STYLE_SIMPLE_VALUE: style = ScalarStyle::kSimpleValue; break;
    default: return Bad("style", UnknownEnum(columns.style()));
  }
  // Per dictionary entry, built when first used.
  std::vector<std::optional<ScalarEventEncoder>> encoders(static_cast<size_t>(columns.tags_size()));
  const bool has_wall_times = columns.wall_times_size() != 0;
  Converted out;
  out.events.reserve(static_cast<size_t>(points));
  for (int i = 0; i < points; ++i) {
    const uint32_t index = columns.tag_index(i);
    if (index >= encoders.size()) {
      return Bad(absl::StrCat("tag_index[", i, "]"),
                 absl::StrCat(index, " is out of range (", columns.tags_size(), " tags)"));
    }
    double wall_time = receive_time;
    if (has_wall_times) {
      const double wall = columns.wall_times(i);
      if (!std::isfinite(wall)) {
        return Bad(absl::StrCat("wall_times[", i, "]"), absl::StrCat("is ", wall, "; must be finite"));
      }
      if (wall != 0) wall_time = wall;
    }
    const v1::ColumnTag& entry = columns.tags(static_cast<int>(index));
    std::optional<ScalarEventEncoder>& encoder = encoders[index];
    if (!encoder) encoder.emplace(entry.tag(), style);
    const int64_t step = columns.steps(i);
    EventOut& event = out.events.emplace_back(
        EventOut{entry.subrun(), encoder->Encode(wall_time, step, columns.values(i))});
    event.tag_offset = static_cast<uint32_t>(encoder->TagOffset(event.event));
    event.tag_size = static_cast<uint32_t>(encoder->tag_size());
    event.step = step;
  }
  return out;
}

}  // namespace tblog::daemon::convert
