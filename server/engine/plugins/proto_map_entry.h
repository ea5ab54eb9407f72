// Writing protobuf map fields in a chosen entry order. C++ protobuf writes map
// entries in hash order, which changes from run to run; Python writes its own
// hash order. Appending the entries ourselves makes output deterministic and
// lets a caller reproduce another writer's bytes. Internal to the plugins
// component (hparams and graph summaries).
#ifndef TBLOG_ENGINE_PLUGINS_PROTO_MAP_ENTRY_H_
#define TBLOG_ENGINE_PLUGINS_PROTO_MAP_ENTRY_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "base/wire.h"
#include "google/protobuf/message_lite.h"

namespace tblog::wire {

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

}  // namespace tblog::wire

#endif  // TBLOG_ENGINE_PLUGINS_PROTO_MAP_ENTRY_H_
