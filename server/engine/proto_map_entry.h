// Writing protobuf map fields in a chosen entry order. C++ protobuf writes map
// entries in hash order, which changes from run to run; Python writes its own
// hash order. Appending the entries ourselves makes output deterministic and
// lets a caller reproduce another writer's bytes. Internal to the plugins
// component (hparams and graph summaries).
#ifndef TBLOG_ENGINE_PROTO_MAP_ENTRY_H_
#define TBLOG_ENGINE_PROTO_MAP_ENTRY_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "google/protobuf/message_lite.h"

namespace tblog::proto_wire {

// Appends `value` as a base-128 varint.
inline void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// Appends field `field_number` holding `bytes` with wire type 2 (length-delimited).
inline void AppendLengthDelimited(int field_number, std::string_view bytes, std::string* out) {
  AppendVarint((static_cast<uint64_t>(field_number) << 3) | 2, out);
  AppendVarint(bytes.size(), out);
  out->append(bytes);
}

// Appends one entry of the map<string, Message> field `field_number`: the
// entry message {key = 1, value = 2} with both fields present, exactly as
// protobuf's serializers encode an entry. Appending the entries after the
// serialized fields numbered below the map field, and before those above it,
// gives the bytes protobuf would write with that entry order.
inline void AppendMapEntry(int field_number, std::string_view key,
                           const google::protobuf::MessageLite& value, std::string* out) {
  std::string entry;
  AppendLengthDelimited(1, key, &entry);
  AppendLengthDelimited(2, value.SerializeAsString(), &entry);
  AppendLengthDelimited(field_number, entry, out);
}

}  // namespace tblog::proto_wire

#endif  // TBLOG_ENGINE_PROTO_MAP_ENTRY_H_
