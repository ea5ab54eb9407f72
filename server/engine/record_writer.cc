#include "engine/record_writer.h"

#include <cstdint>

#include "engine/crc32c.h"

namespace tblog {
namespace {

void AppendLe(uint64_t value, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xffu));
}

}  // namespace

void AppendFramedRecord(std::string_view payload, std::string* out) {
  out->reserve(out->size() + FramedRecordSize(payload.size()));
  const size_t length_at = out->size();
  AppendLe(payload.size(), 8, out);
  const uint32_t length_crc = crc32c::Mask(crc32c::Extend(0, out->data() + length_at, 8));
  AppendLe(length_crc, 4, out);
  out->append(payload.data(), payload.size());
  AppendLe(crc32c::Mask(crc32c::Value(payload)), 4, out);
}

}  // namespace tblog
