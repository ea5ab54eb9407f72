// Byte-level encodings shared by the engine, the daemon and the client:
// little-endian fixed-width integers (TFRecord framing, WAV, BMP/GIF headers)
// and protobuf's wire format (base-128 varints, tags, length-delimited
// fields) for the few places that write protobuf bytes by hand.
#ifndef TBLOG_BASE_WIRE_H_
#define TBLOG_BASE_WIRE_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace tblog::wire {

// Appends the low `bytes` bytes of `value`, least significant first.
inline void AppendLittleEndian(uint64_t value, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// Writes the low `bytes` bytes of `value` at `p`, least significant first,
// and returns the byte after them. For hot paths that size a buffer once and
// fill it, rather than growing a string byte by byte.
inline char* StoreLittleEndian(uint64_t value, int bytes, char* p) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(p, &value, static_cast<size_t>(bytes));  // one store for a constant size
    return p + bytes;
  }
  for (int i = 0; i < bytes; ++i) *p++ = static_cast<char>((value >> (8 * i)) & 0xff);
  return p;
}

// Reads `bytes` bytes at `p`, least significant first.
inline uint64_t LoadLittleEndian(const unsigned char* p, int bytes) {
  uint64_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

// The same for bytes in a string; the caller checks that `at + bytes` is in range.
inline uint64_t LoadLittleEndian(std::string_view bytes_in, size_t at, int bytes) {
  return LoadLittleEndian(reinterpret_cast<const unsigned char*>(bytes_in.data()) + at, bytes);
}

// --- protobuf wire format (https://protobuf.dev/programming-guides/encoding/) ---

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// The most bytes a varint takes (a 64-bit value).
constexpr size_t kMaxVarintBytes = 10;

// Bytes that `value` takes as a base-128 varint.
constexpr size_t VarintSize(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

// Appends `value` as a base-128 varint.
inline void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// Writes `value` as a base-128 varint at `p` (room for kMaxVarintBytes) and
// returns the byte after it.
inline char* StoreVarint(uint64_t value, char* p) {
  while (value >= 0x80) {
    *p++ = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  *p++ = static_cast<char>(value);
  return p;
}

// The key of field `field_number` with `type`; one byte for fields 1..15.
constexpr uint32_t FieldKey(int field_number, WireType type) {
  return (static_cast<uint32_t>(field_number) << 3) | type;
}

// Bytes that a length-delimited field `field_number` of `payload_bytes` takes:
// its key, its length varint and the payload. What an enclosing message counts
// for it when its length is written ahead of it.
constexpr size_t LengthDelimitedSize(int field_number, size_t payload_bytes) {
  return VarintSize(FieldKey(field_number, kLengthDelimited)) + VarintSize(payload_bytes) +
         payload_bytes;
}

// Appends the key and length of a length-delimited field `field_number` whose
// `payload_bytes` the caller appends next.
inline void AppendLengthDelimitedHeader(int field_number, size_t payload_bytes, std::string* out) {
  AppendVarint(FieldKey(field_number, kLengthDelimited), out);
  AppendVarint(payload_bytes, out);
}

// Appends field `field_number` holding `bytes` as a length-delimited field.
inline void AppendLengthDelimited(int field_number, std::string_view bytes, std::string* out) {
  AppendLengthDelimitedHeader(field_number, bytes.size(), out);
  out->append(bytes);
}

}  // namespace tblog::wire

#endif  // TBLOG_BASE_WIRE_H_
