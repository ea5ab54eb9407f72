#include "engine/io/record_writer.h"

#include <cstdint>
#include <cstring>

#include "base/wire.h"
#include "engine/io/crc32c.h"

namespace tblog {

using wire::StoreLittleEndian;

void AppendFramedRecord(std::string_view payload, std::string* out) {
  // Sized once and filled in place: the daemon frames millions of ~100-byte
  // scalar events, and growing the string field by field (or byte by byte)
  // cost more than the CRCs.
  const size_t at = out->size();
  out->resize(at + FramedRecordSize(payload.size()));
  FrameRecordTo(payload, out->data() + at);
}

char* FrameRecordTo(std::string_view payload, char* out) {
  char* p = StoreLittleEndian(payload.size(), 8, out);
  p = StoreLittleEndian(crc32c::Mask(crc32c::Extend(0, out, 8)), 4, p);
  if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
  return StoreLittleEndian(crc32c::Mask(crc32c::Value(payload)), 4, p + payload.size());
}

}  // namespace tblog
