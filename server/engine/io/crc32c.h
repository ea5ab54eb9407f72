// CRC-32C (Castagnoli) and TensorFlow's masking of it, as used by TFRecord.
// Uses ISA-L's crc32_iscsi for large buffers and, for small ones, the SSE4.2
// crc32 instruction when the CPU has it, a table otherwise. Thread-safe.
#ifndef TBLOG_ENGINE_IO_CRC32C_H_
#define TBLOG_ENGINE_IO_CRC32C_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tblog::crc32c {

// The CRC of data appended to data whose CRC is `crc` (0 for none).
uint32_t Extend(uint32_t crc, const char* data, size_t n);
inline uint32_t Value(std::string_view data) { return Extend(0, data.data(), data.size()); }

// The masked form stored in records: rotate right by 15, add 0xa282ead8.
inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
inline uint32_t Unmask(uint32_t masked) {
  const uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

// True when Extend() runs on the hardware instruction on this CPU (for
// buffers below ISA-L's threshold; ISA-L picks its own code per CPU).
bool IsHardwareAccelerated();
// The portable table implementation, exposed so tests compare both paths.
uint32_t ExtendPortable(uint32_t crc, const char* data, size_t n);

}  // namespace tblog::crc32c

#endif  // TBLOG_ENGINE_IO_CRC32C_H_
