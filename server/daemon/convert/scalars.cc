#include "daemon/convert/scalars.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
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

namespace {

// A point's tag: its encoder and its series in the PackedEvents.
using Resolved = std::pair<std::reference_wrapper<const ScalarEventEncoder>, uint32_t>;

// The point loop, shared by both dictionary forms: `resolve(i, index, out)`
// gives the Resolved tag of point i's tag_index, adding its series to `out`
// on first use, or an error for the record.
template <typename Resolve>
absl::StatusOr<Converted> EncodePoints(const v1::ScalarColumns& columns, double receive_time,
                                       Resolve&& resolve) {
  const int points = columns.tag_index_size();
  const bool has_wall_times = columns.wall_times_size() != 0;
  Converted out;
  PackedEvents& packed = out.packed;
  size_t used = 0;  // bytes of packed.bytes holding events; the rest is room
  for (int i = 0; i < points; ++i) {
    double wall_time = receive_time;
    if (has_wall_times) {
      const double wall = columns.wall_times(i);
      if (!std::isfinite(wall)) {
        return Bad(absl::StrCat("wall_times[", i, "]"), absl::StrCat("is ", wall, "; must be finite"));
      }
      if (wall != 0) wall_time = wall;
    }
    absl::StatusOr<Resolved> tag = resolve(i, columns.tag_index(i), packed);
    if (!tag.ok()) return tag.status();
    const ScalarEventEncoder& encoder = tag->first;
    if (packed.bytes.size() - used < encoder.max_size()) {
      // Room for the rest at this size (grown geometrically), all of the
      // capacity first; not zero-filled, as EncodeTo overwrites it.
      const size_t rest = static_cast<size_t>(points - i) * encoder.max_size();
      if (i == 0) {
        // A recycled buffer's pages are mapped already (packed_events.h).
        // A new one gets an eighth more than this batch needs, so that the
        // next batches of about its size (a client's batches differ by a
        // few points) fit it once it is recycled.
        const size_t events = static_cast<size_t>(points);
        packed.TakeSpareStorage(rest, events);
        packed.bytes.reserve(rest + rest / 8);
        packed.events.reserve(events + events / 8);
        // Sized once, so that a point's entry is three plain stores: a
        // push_back per point was an out-of-line call whose copy of the
        // entry stalled on store forwarding (15% of tblogd's samples while
        // it drained 1M scalars).
        packed.events.resize(events);
      }
      packed.bytes.resize_for_overwrite(std::max(used + rest, packed.bytes.capacity()));
    }
    const int64_t step = columns.steps(i);
    char* const at = packed.bytes.data() + used;
    used += static_cast<size_t>(encoder.EncodeTo(wall_time, step, columns.values(i), at) - at);
    PackedEvents::Event& entry = packed.events[static_cast<size_t>(i)];
    entry.end = used;
    entry.step = step;
    entry.series = tag->second;
  }
  packed.bytes.resize_for_overwrite(used);
  return out;
}

absl::Status IndexOutOfRange(int i, uint32_t index, int tags) {
  return Bad(absl::StrCat("tag_index[", i, "]"),
             absl::StrCat(index, " is out of range (", tags, " tags)"));
}

}  // namespace

absl::StatusOr<Converted> ConvertScalarColumns(const v1::ScalarColumns& columns,
                                               double receive_time, const Limits& limits,
                                               const StreamTagsRef* stream_tags) {
  if (columns.stream_tag_ids() && columns.tags_size() != 0) {
    return Bad("tags", absl::StrCat("has ", columns.tags_size(),
                                    " entries; must be empty with stream_tag_ids"));
  }
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
  if (columns.stream_tag_ids()) {
    const StreamTags* tags = stream_tags != nullptr ? stream_tags->tags.get() : nullptr;
    const uint64_t message = stream_tags != nullptr ? stream_tags->message : 0;
    // The ids met lately, direct-mapped: points rotate over a few tags (or
    // repeat one), so most find theirs here, with no dictionary lookup or
    // hashing per point.
    struct Recent {
      uint32_t id = StreamTags::kMaxIds;  // no id: ids are below kMaxIds
      uint32_t series = 0;
      const StreamTags::Entry* entry = nullptr;
    };
    std::array<Recent, 64> recent;
    // The series of each entry used, in order of first use.
    absl::flat_hash_map<const StreamTags::Entry*, uint32_t> series;
    return EncodePoints(
        columns, receive_time,
        [&](int i, uint32_t id, PackedEvents& packed) -> absl::StatusOr<Resolved> {
          Recent& slot = recent[id % recent.size()];
          if (slot.id != id) {
            const StreamTags::Entry* entry = tags != nullptr ? tags->Find(id, message) : nullptr;
            if (entry == nullptr) {
              return Bad(absl::StrCat("tag_index[", i, "]"),
                         absl::StrCat("stream tag id ", id,
                                      " is not defined on this stream (WriteRequest.stream_tags)"));
            }
            if (!entry->valid.ok()) {
              return Annotate(entry->valid, absl::StrCat("tag_index[", i, "]"));
            }
            const auto [it, added] =
                series.try_emplace(entry, static_cast<uint32_t>(packed.series.size()));
            if (added) packed.series.push_back({entry->subrun, entry->tag});
            slot = Recent{id, it->second, entry};
          }
          return Resolved(slot.entry->encoder(style), slot.series);
        });
  }
  // Per batch-local dictionary entry, built when first used, with its series.
  struct Local {
    std::optional<ScalarEventEncoder> encoder;
    uint32_t series = 0;
  };
  std::vector<Local> locals(static_cast<size_t>(columns.tags_size()));
  return EncodePoints(
      columns, receive_time,
      [&](int i, uint32_t index, PackedEvents& packed) -> absl::StatusOr<Resolved> {
        if (index >= locals.size()) return IndexOutOfRange(i, index, columns.tags_size());
        Local& local = locals[index];
        if (!local.encoder) {
          const v1::ColumnTag& entry = columns.tags(static_cast<int>(index));
          local.encoder.emplace(entry.tag(), style);
          local.series = static_cast<uint32_t>(packed.series.size());
          packed.series.push_back({entry.subrun(), entry.tag()});
        }
        return Resolved(*local.encoder, local.series);
      });
}

}  // namespace tblog::daemon::convert
