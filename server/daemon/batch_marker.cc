#include "daemon/batch_marker.h"

#include <bit>
#include <cstring>

#include "base/wire.h"

namespace tblog::daemon {
namespace {

// Event's file_version field (TensorBoard's event.proto).
constexpr int kFileVersionField = 3;

void AppendUint(int field, uint64_t value, std::string* out) {
  if (value == 0) return;
  wire::AppendVarint(wire::FieldKey(field, wire::kVarint), out);
  wire::AppendVarint(value, out);
}

void AppendKey(const BatchKey& key, int writer_field, int sequence_field, std::string* out) {
  if (key.empty()) return;
  wire::AppendLengthDelimited(writer_field, key.writer_id, out);
  AppendUint(sequence_field, key.sequence, out);
}

// Reads a varint at *pos of `s`; false when it runs past the end or is too long.
bool ReadVarint(std::string_view s, size_t* pos, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64 && *pos < s.size(); shift += 7) {
    const auto byte = static_cast<unsigned char>(s[(*pos)++]);
    *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// Calls visit(field, wire_type, varint_value, bytes) for each top-level field
// of `message`; false when it is not well-formed protobuf.
template <typename Visit>
bool ForEachField(std::string_view message, Visit visit) {
  size_t pos = 0;
  while (pos < message.size()) {
    uint64_t key = 0;
    if (!ReadVarint(message, &pos, &key)) return false;
    const auto field = static_cast<int>(key >> 3);
    uint64_t value = 0;
    std::string_view bytes;
    switch (static_cast<wire::WireType>(key & 7)) {
      case wire::kVarint:
        if (!ReadVarint(message, &pos, &value)) return false;
        break;
      case wire::kFixed64:
        if (message.size() - pos < 8) return false;
        pos += 8;
        break;
      case wire::kFixed32:
        if (message.size() - pos < 4) return false;
        pos += 4;
        break;
      case wire::kLengthDelimited:
        if (!ReadVarint(message, &pos, &value) || value > message.size() - pos) return false;
        bytes = message.substr(pos, value);
        pos += value;
        break;
      default:
        return false;  // groups: not in an Event
    }
    if (field == 0) return false;
    visit(field, static_cast<wire::WireType>(key & 7), value, bytes);
  }
  return true;
}

bool DecodeMarker(std::string_view bytes, BatchMarker* marker) {
  *marker = BatchMarker{};
  return ForEachField(bytes, [&](int field, wire::WireType type, uint64_t value,
                                 std::string_view data) {
    const bool varint = type == wire::kVarint;
    switch (field) {
      case 1: if (!varint) marker->end.writer_id = std::string(data); break;
      case 2: if (varint) marker->end.sequence = value; break;
      case 3: if (varint) marker->end_parts = static_cast<uint32_t>(value); break;
      case 4: if (!varint) marker->begin.writer_id = std::string(data); break;
      case 5: if (varint) marker->begin.sequence = value; break;
      default: break;  // a later version's field
    }
  });
}

}  // namespace

std::string EncodeBatchMarkerEvent(const BatchMarker& marker, double wall_time) {
  std::string body;
  AppendKey(marker.end, 1, 2, &body);
  if (!marker.end.empty()) AppendUint(3, marker.end_parts, &body);
  AppendKey(marker.begin, 4, 5, &body);
  std::string event;
  wire::AppendVarint(wire::FieldKey(1, wire::kFixed64), &event);  // wall_time
  wire::AppendLittleEndian(std::bit_cast<uint64_t>(wall_time), 8, &event);
  wire::AppendLengthDelimited(kBatchMarkerField, body, &event);
  return event;
}

EventKind ClassifyEvent(std::string_view event_bytes, BatchMarker* marker,
                        std::string_view* contribution) {
  EventKind kind = EventKind::kEvent;
  bool marker_ok = true;
  const bool ok = ForEachField(event_bytes, [&](int field, wire::WireType type, uint64_t,
                                                std::string_view data) {
    if (field == kFileVersionField && type == wire::kLengthDelimited) {
      kind = EventKind::kFileVersion;
    } else if (field == kBatchMarkerField && type == wire::kLengthDelimited) {
      kind = EventKind::kMarker;
      marker_ok = DecodeMarker(data, marker);
    } else if (field == kContributionField && type == wire::kLengthDelimited) {
      kind = EventKind::kContribution;
      if (contribution != nullptr) *contribution = data;
    } else if (field == kReducedPointField && type == wire::kVarint) {
      kind = EventKind::kReducedPoint;
    }
  });
  if (!ok || !marker_ok) return EventKind::kUndecodable;
  return kind;
}

bool TagAndStep(std::string_view event_bytes, std::string_view* tag, int64_t* step) {
  // Event.step = 2, Event.summary = 5; Summary.value = 1; Value.tag = 1.
  std::string_view summary;
  uint64_t raw_step = 0;
  if (!ForEachField(event_bytes, [&](int field, wire::WireType type, uint64_t value,
                                     std::string_view data) {
        if (field == 2 && type == wire::kVarint) raw_step = value;
        if (field == 5 && type == wire::kLengthDelimited && summary.empty()) summary = data;
      })) {
    return false;
  }
  std::string_view first_value;
  if (summary.empty() ||
      !ForEachField(summary, [&](int field, wire::WireType type, uint64_t, std::string_view data) {
        if (field == 1 && type == wire::kLengthDelimited && first_value.empty()) first_value = data;
      })) {
    return false;
  }
  *tag = {};
  if (!ForEachField(first_value, [&](int field, wire::WireType type, uint64_t,
                                     std::string_view data) {
        if (field == 1 && type == wire::kLengthDelimited && tag->empty()) *tag = data;
      })) {
    return false;
  }
  *step = static_cast<int64_t>(raw_step);
  return !tag->empty();
}

}  // namespace tblog::daemon
