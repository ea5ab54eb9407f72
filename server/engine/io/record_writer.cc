#include "engine/io/record_writer.h"

#include <cstdint>

#include "base/wire.h"
#include "engine/io/crc32c.h"

namespace tblog {

using wire::AppendLittleEndian;

void AppendFramedRecord(std::string_view payload, std::string* out) {
  out->reserve(out->size() + FramedRecordSize(payload.size()));
  const size_t length_at = out->size();
  AppendLittleEndian(payload.size(), 8, out);
  const uint32_t length_crc = crc32c::Mask(crc32c::Extend(0, out->data() + length_at, 8));
  AppendLittleEndian(length_crc, 4, out);
  out->append(payload.data(), payload.size());
  AppendLittleEndian(crc32c::Mask(crc32c::Value(payload)), 4, out);
}

}  // namespace tblog
