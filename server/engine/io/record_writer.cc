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

namespace {

// The masked CRC of a record's 8-byte length, for lengths below kSmall:
// looked up rather than computed, as the daemon frames millions of small
// scalar events (a few lengths, one CRC call each saved).
constexpr size_t kSmall = 512;

uint32_t LengthCrc(uint64_t length) {
  char bytes[8];
  StoreLittleEndian(length, 8, bytes);
  return crc32c::Mask(crc32c::Extend(0, bytes, 8));
}

struct SmallLengthCrcs {
  SmallLengthCrcs() {
    for (size_t n = 0; n < kSmall; ++n) crc[n] = LengthCrc(n);
  }
  uint32_t crc[kSmall];
};

}  // namespace

char* FrameRecordTo(std::string_view payload, char* out) {
  char* p = StoreLittleEndian(payload.size(), 8, out);
  static const SmallLengthCrcs small;  // built on first use: no static init order
  const uint32_t length_crc =
      payload.size() < kSmall ? small.crc[payload.size()] : LengthCrc(payload.size());
  p = StoreLittleEndian(length_crc, 4, p);
  if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
  return StoreLittleEndian(crc32c::Mask(crc32c::Value(payload)), 4, p + payload.size());
}

}  // namespace tblog
