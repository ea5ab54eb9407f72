// CRC-32C: ISA-L's crc32_iscsi for buffers of kIsalMinBytes and more (it
// folds with carry-less multiplies, 4-5x faster than one chain of crc32
// instructions from 1 KiB up); below that, where ISA-L's dispatch costs more
// than it saves, one chain of the SSE4.2 crc32 instruction when the CPU has
// it, otherwise a slicing-by-8 table. All compute the same reflected
// Castagnoli CRC (polynomial 0x82F63B78, init and final xor 0xFFFFFFFF).
// bench/codec_bench.cc measures each.
#include "engine/io/crc32c.h"

#include <isa-l/crc.h>

#include "base/wire.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define TBLOG_CRC32C_HAVE_SSE42 1
#else
#define TBLOG_CRC32C_HAVE_SSE42 0
#endif

namespace tblog::crc32c {
namespace {

constexpr uint32_t kPolynomial = 0x82f63b78u;

// kTables[k][b]: the CRC contribution of byte b followed by k zero bytes.
using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables MakeTables() {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1u) ? (c >> 1) ^ kPolynomial : c >> 1;
    t[0][b] = c;
  }
  for (size_t k = 1; k < t.size(); ++k) {
    for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xffu];
  }
  return t;
}

constexpr Tables kTables = MakeTables();

inline uint32_t LoadLe32(const unsigned char* p) {
  return static_cast<uint32_t>(wire::LoadLittleEndian(p, 4));
}

#if TBLOG_CRC32C_HAVE_SSE42
__attribute__((target("sse4.2"))) uint32_t ExtendHardware(uint32_t crc, const char* data,
                                                           size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  uint32_t c = crc ^ 0xffffffffu;
  // No alignment prologue: unaligned 8-byte loads cost nothing extra on
  // x86, and the byte steps to align took longer than the rest of a record
  // header's 8 bytes.
#if defined(__x86_64__)
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, sizeof(word));
    c64 = _mm_crc32_u64(c64, word);
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c64);
#endif
  // The tail in at most three steps, not byte by byte: a ~100-byte scalar
  // event ends in up to 7 bytes, and every record has two CRCs.
  if (n >= 4) {
    uint32_t word;
    std::memcpy(&word, p, sizeof(word));
    c = _mm_crc32_u32(c, word);
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t half;
    std::memcpy(&half, p, sizeof(half));
    c = _mm_crc32_u16(c, half);
    p += 2;
    n -= 2;
  }
  if (n > 0) c = _mm_crc32_u8(c, *p);
  return c ^ 0xffffffffu;
}

bool DetectHardware() { return __builtin_cpu_supports("sse4.2"); }
#else
uint32_t ExtendHardware(uint32_t crc, const char* data, size_t n) {
  return ExtendPortable(crc, data, n);
}
bool DetectHardware() { return false; }
#endif

// Decided once; the CPU does not change under a running process.
const bool kUseHardware = DetectHardware();

// From this size on ISA-L wins (bench/codec_bench.cc: about even at 256
// bytes, nearly 4x faster at 1 KiB).
constexpr size_t kIsalMinBytes = 256;

// ISA-L's CRC takes an int length and works on the un-inverted CRC.
uint32_t ExtendIsal(uint32_t crc, const char* data, size_t n) {
  constexpr size_t kChunk = size_t{1} << 30;
  uint32_t c = crc ^ 0xffffffffu;
  auto* p = reinterpret_cast<unsigned char*>(const_cast<char*>(data));  // only read
  while (n > 0) {
    const size_t step = n < kChunk ? n : kChunk;
    c = crc32_iscsi(p, static_cast<int>(step), c);
    p += step;
    n -= step;
  }
  return c ^ 0xffffffffu;
}

}  // namespace

uint32_t ExtendPortable(uint32_t crc, const char* data, size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  uint32_t c = crc ^ 0xffffffffu;
  while (n >= 8) {
    const uint32_t lo = LoadLe32(p) ^ c;
    const uint32_t hi = LoadLe32(p + 4);
    c = kTables[7][lo & 0xffu] ^ kTables[6][(lo >> 8) & 0xffu] ^ kTables[5][(lo >> 16) & 0xffu] ^
        kTables[4][lo >> 24] ^ kTables[3][hi & 0xffu] ^ kTables[2][(hi >> 8) & 0xffu] ^
        kTables[1][(hi >> 16) & 0xffu] ^ kTables[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = kTables[0][(c ^ *p++) & 0xffu] ^ (c >> 8);
    --n;
  }
  return c ^ 0xffffffffu;
}

uint32_t Extend(uint32_t crc, const char* data, size_t n) {
  if (n >= kIsalMinBytes) return ExtendIsal(crc, data, n);
  return kUseHardware ? ExtendHardware(crc, data, n) : ExtendPortable(crc, data, n);
}

bool IsHardwareAccelerated() { return kUseHardware; }

}  // namespace tblog::crc32c
