// PNG encoding (the engine's own writer on ISA-L's igzip, png_encode.cc) and
// decoding (libpng) of 8-bit images, all in memory, and recognition of
// already-encoded images (PNG, JPEG, GIF, BMP) by signature.
// Every function is thread-safe: each call has its own codec state.
#ifndef TBLOG_ENGINE_MEDIA_PNG_H_
#define TBLOG_ENGINE_MEDIA_PNG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tblog {

// Limits on any image the engine encodes or decodes: a side of at most
// kMaxImageSide pixels and at most kMaxImageBytes bytes of raw pixels. They
// bound the memory one request can take; TensorBoard shows nothing bigger well.
inline constexpr int kMaxImageSide = 16384;
inline constexpr int64_t kMaxImageBytes = int64_t{256} << 20;

// An 8-bit image owned as a value. channels 1 gray, 2 gray+alpha, 3 RGB,
// 4 RGBA (the same numbers as Summary.Image.colorspace); pixels are
// height x width x channels, row-major (HWC).
struct RawImage {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

// OK when 1 <= height, width <= kMaxImageSide, channels is 1..4, the byte
// count is within kMaxImageBytes and pixels holds exactly that many bytes;
// otherwise INVALID_ARGUMENT naming the bad field.
absl::Status ValidateRawImage(const RawImage& image);

// Encodes `image` as an 8-bit, non-interlaced PNG (rows filtered with "Up",
// one IDAT chunk). compression_level is igzip's, 0 (fastest) to 3
// (smallest), or -1 for the default, 1 (png_writer.h says why).
// INVALID_ARGUMENT for an invalid image or level; INTERNAL if compression
// fails.
absl::StatusOr<std::string> EncodePng(const RawImage& image, int compression_level = -1);

// Decodes a PNG of any bit depth, colour type or interlacing to 8 bits per
// channel: palette becomes RGB (RGBA with transparency), 16-bit channels keep
// their high byte. INVALID_ARGUMENT for data that is not a PNG, is corrupt or
// exceeds the limits above.
absl::StatusOr<RawImage> DecodePng(std::string_view png);

enum class ImageFormat { kUnknown, kPng, kJpeg, kGif, kBmp };

// The format named by the first bytes (TensorBoard sniffs the same four).
ImageFormat DetectImageFormat(std::string_view bytes);
// "image/png", "image/jpeg", "image/gif", "image/bmp"; "application/octet-stream" for kUnknown.
std::string_view ImageMimeType(ImageFormat format);

// What an encoded image's header says.
struct ImageHeader {
  ImageFormat format = ImageFormat::kUnknown;
  int height = 0;
  int width = 0;
  int channels = 0;  // 1..4 as RawImage; palette images count as RGB (3)
};

// Reads format, size and channel count from the header of an encoded PNG,
// JPEG (first SOF marker), GIF or BMP without decoding the pixels.
// INVALID_ARGUMENT when the signature is unknown, the header is truncated or
// the size is 0 or beyond kMaxImageSide.
absl::StatusOr<ImageHeader> ReadImageHeader(std::string_view bytes);

}  // namespace tblog

#endif  // TBLOG_ENGINE_MEDIA_PNG_H_
