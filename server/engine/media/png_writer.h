// The pieces of the engine's PNG encoder (EncodePng in png.h), exposed so the
// codec benchmark can compare filters and levels and put other deflate
// libraries behind the same filtering and chunk framing. Not an API for the rest of the daemon: use EncodePng.
// Every function is thread-safe (no shared state).
#ifndef TBLOG_ENGINE_MEDIA_PNG_WRITER_H_
#define TBLOG_ENGINE_MEDIA_PNG_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/functional/function_ref.h"
#include "engine/media/png.h"

namespace tblog::png_writer {

// The PNG filter applied to every row (PNG spec, section 9). EncodePng uses
// kDefaultFilter; the others are kept for the benchmark's comparison.
enum class Filter : uint8_t { kNone = 0, kSub = 1, kUp = 2, kPaeth = 4 };
inline constexpr Filter kDefaultFilter = Filter::kUp;

// The bytes PNG compresses for a non-interlaced 8-bit image: per row, the
// filter type byte followed by the filtered row. `image` must be valid
// (ValidateRawImage); the result has height * (1 + width * channels) bytes.
std::string FilterRows(const RawImage& image, Filter filter);

// igzip's levels: 0 (fastest) to 3 (smallest). EncodePng's default is 1:
// on filtered images within a few percent of levels 2 and 3 at the fewest
// instructions, and with the smallest tables (bench/codec_bench.cc).
inline constexpr int kMaxLevel = 3;
inline constexpr int kDefaultLevel = 1;

// Compresses `n` bytes at `in` into a zlib stream (RFC 1950) of at most
// `capacity` bytes at `out`; returns its size, 0 when it did not fit.
using ZlibCompressFn =
    absl::FunctionRef<size_t(const uint8_t* in, size_t n, uint8_t* out, size_t capacity)>;

// A whole PNG file: signature, IHDR, one IDAT holding compress(filtered rows)
// and IEND. `bound` is an upper limit on the compressed size for `filtered`
// (the writer reserves it); INTERNAL when compress returns 0.
absl::StatusOr<std::string> Assemble(const RawImage& image, const std::string& filtered,
                                     size_t bound, ZlibCompressFn compress);

// The whole writer: rows filtered with `filter`, compressed by ISA-L's igzip
// at `level` (0..kMaxLevel). `image` must be valid (ValidateRawImage).
// igzip's working memory (up to a few hundred kB per level) is kept per
// thread for the thread's lifetime. INTERNAL if compression fails.
absl::StatusOr<std::string> Encode(const RawImage& image, Filter filter, int level);

}  // namespace tblog::png_writer

#endif  // TBLOG_ENGINE_MEDIA_PNG_WRITER_H_
