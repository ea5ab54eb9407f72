#include "engine/media/png.h"

#include <png.h>

#include <algorithm>
#include <climits>
#include <csetjmp>
#include <cstdlib>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "base/wire.h"

namespace tblog {
namespace {

// State shared with libpng's callbacks. Plain data only: libpng reports errors
// by longjmp, which must not skip C++ destructors.
struct PngIo {
  const char* in = nullptr;  // the source bytes
  size_t in_size = 0;
  size_t in_pos = 0;
  char error[256] = "";
};

void OnPngError(png_structp png, png_const_charp message) {
  auto* io = static_cast<PngIo*>(png_get_error_ptr(png));
  std::snprintf(io->error, sizeof(io->error), "%s", message);
  png_longjmp(png, 1);
}

// Warnings (e.g. about ancillary chunks) do not change the pixels: ignored.
void OnPngWarning(png_structp, png_const_charp) {}

void ReadFromBuffer(png_structp png, png_bytep data, png_size_t size) {
  auto* io = static_cast<PngIo*>(png_get_io_ptr(png));
  if (size > io->in_size - io->in_pos) png_error(png, "PNG data ends early");
  std::memcpy(data, io->in + io->in_pos, size);
  io->in_pos += size;
}

// Runs libpng's decoder into *image (owned by the caller, so a longjmp leaves
// nothing to destroy here); false with io->error set on failure, including
// images beyond kMaxImageSide / kMaxImageBytes.
bool RunPngDecoder(PngIo* io, RawImage* image) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, io, OnPngError, OnPngWarning);
  if (png == nullptr) {
    std::snprintf(io->error, sizeof(io->error), "png_create_read_struct failed");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(io->error, sizeof(io->error), "png_create_info_struct failed");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, io, ReadFromBuffer);
  png_set_user_limits(png, kMaxImageSide, kMaxImageSide);
  png_read_info(png, info);
  png_set_expand(png);
  png_set_strip_16(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  image->width = static_cast<int>(png_get_image_width(png, info));
  image->height = static_cast<int>(png_get_image_height(png, info));
  image->channels = png_get_channels(png, info);
  const size_t stride = png_get_rowbytes(png, info);
  if (stride != static_cast<size_t>(image->width) * static_cast<size_t>(image->channels) ||
      static_cast<int64_t>(stride) * image->height > kMaxImageBytes) {
    png_error(png, "decoded image exceeds the size limit or has an unexpected row size");
  }
  image->pixels.resize(stride * static_cast<size_t>(image->height));
  for (int pass = 0; pass < passes; ++pass) {
    for (int y = 0; y < image->height; ++y) {
      png_read_row(png, image->pixels.data() + static_cast<size_t>(y) * stride, nullptr);
    }
  }
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

uint32_t BigEndian32(std::string_view b, size_t at) {
  return (uint32_t{static_cast<uint8_t>(b[at])} << 24) |
         (uint32_t{static_cast<uint8_t>(b[at + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(b[at + 2])} << 8) | static_cast<uint8_t>(b[at + 3]);
}
uint16_t BigEndian16(std::string_view b, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(b[at]) << 8) | static_cast<uint8_t>(b[at + 1]));
}
uint16_t LittleEndian16(std::string_view b, size_t at) {
  return static_cast<uint16_t>(wire::LoadLittleEndian(b, at, 2));
}
uint32_t LittleEndian32(std::string_view b, size_t at) {
  return static_cast<uint32_t>(wire::LoadLittleEndian(b, at, 4));
}

absl::Status Truncated(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(what), " header is truncated"));
}

absl::StatusOr<ImageHeader> ReadPngHeader(std::string_view b) {
  // Signature (8), IHDR length (4), "IHDR", width, height, depth, colour type.
  if (b.size() < 26) return Truncated("PNG");
  if (b.substr(12, 4) != "IHDR") return absl::InvalidArgumentError("PNG: first chunk is not IHDR");
  ImageHeader header{ImageFormat::kPng, static_cast<int>(std::min<uint32_t>(BigEndian32(b, 20), INT32_MAX)),
                     static_cast<int>(std::min<uint32_t>(BigEndian32(b, 16), INT32_MAX)), 0};
  switch (static_cast<uint8_t>(b[25])) {
    case 0: header.channels = 1; break;
    case 2: header.channels = 3; break;
    case 3: header.channels = 3; break;
    case 4: header.channels = 2; break;
    case 6: header.channels = 4; break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("PNG: invalid colour type ", static_cast<uint8_t>(b[25])));
  }
  return header;
}

absl::StatusOr<ImageHeader> ReadJpegHeader(std::string_view b) {
  size_t pos = 2;  // after SOI
  while (pos + 4 <= b.size()) {
    if (static_cast<uint8_t>(b[pos]) != 0xFF) {
      return absl::InvalidArgumentError(absl::StrCat("JPEG: no marker at byte ", pos));
    }
    const uint8_t marker = static_cast<uint8_t>(b[pos + 1]);
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {  // no length field
      pos += 2;
      continue;
    }
    const uint16_t length = BigEndian16(b, pos + 2);
    const bool is_sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 &&
                        marker != 0xCC;
    if (is_sof) {
      // length(2) precision(1) height(2) width(2) components(1)
      if (pos + 10 > b.size()) return Truncated("JPEG");
      const int components = static_cast<uint8_t>(b[pos + 9]);
      return ImageHeader{ImageFormat::kJpeg, BigEndian16(b, pos + 5), BigEndian16(b, pos + 7),
                         components == 1 ? 1 : 3};
    }
    if (marker == 0xD9 || marker == 0xDA) break;  // end of image / start of scan before any SOF
    pos += 2 + size_t{length};
  }
  return absl::InvalidArgumentError("JPEG: no frame header (SOF marker) before the image data");
}

absl::Status CheckHeaderSize(const ImageHeader& header) {
  if (header.height < 1 || header.width < 1 || header.height > kMaxImageSide ||
      header.width > kMaxImageSide) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(ImageMimeType(header.format)), " is ", header.width, "x", header.height,
        " pixels; each side must be 1..", kMaxImageSide));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRawImage(const RawImage& image) {
  if (image.height < 1 || image.width < 1 || image.height > kMaxImageSide ||
      image.width > kMaxImageSide) {
    return absl::InvalidArgumentError(absl::StrCat("image is ", image.height, "x", image.width,
                                                   " (HxW); each side must be 1..", kMaxImageSide));
  }
  if (image.channels < 1 || image.channels > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("image has ", image.channels, " channels; expected 1, 2, 3 or 4"));
  }
  const int64_t bytes = int64_t{image.height} * image.width * image.channels;
  if (bytes > kMaxImageBytes) {
    return absl::InvalidArgumentError(absl::StrCat("image has ", bytes,
                                                   " bytes of pixels; the limit is ", kMaxImageBytes));
  }
  if (static_cast<int64_t>(image.pixels.size()) != bytes) {
    return absl::InvalidArgumentError(absl::StrCat("image ", image.height, "x", image.width, "x",
                                                   image.channels, " needs ", bytes,
                                                   " bytes of pixels, got ", image.pixels.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<RawImage> DecodePng(std::string_view png) {
  if (png.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(png.data()), 0, 8) != 0) {
    return absl::InvalidArgumentError("not a PNG: the 8-byte signature does not match");
  }
  RawImage image;
  PngIo io;
  io.in = png.data();
  io.in_size = png.size();
  if (!RunPngDecoder(&io, &image)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot decode PNG: ", io.error));
  }
  return image;
}

ImageFormat DetectImageFormat(std::string_view bytes) {
  if (bytes.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8)) return ImageFormat::kPng;
  if (bytes.substr(0, 3) == "\xFF\xD8\xFF") return ImageFormat::kJpeg;
  if (bytes.substr(0, 6) == "GIF87a" || bytes.substr(0, 6) == "GIF89a") return ImageFormat::kGif;
  if (bytes.substr(0, 2) == "BM") return ImageFormat::kBmp;
  return ImageFormat::kUnknown;
}

std::string_view ImageMimeType(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng: return "image/png";
    case ImageFormat::kJpeg: return "image/jpeg";
    case ImageFormat::kGif: return "image/gif";
    case ImageFormat::kBmp: return "image/bmp";
    case ImageFormat::kUnknown: break;
  }
  return "application/octet-stream";
}

absl::StatusOr<ImageHeader> ReadImageHeader(std::string_view b) {
  absl::StatusOr<ImageHeader> header;
  switch (DetectImageFormat(b)) {
    case ImageFormat::kPng:
      header = ReadPngHeader(b);
      break;
    case ImageFormat::kJpeg:
      header = ReadJpegHeader(b);
      break;
    case ImageFormat::kGif:
      // Logical screen width and height, little-endian, after "GIF8?a".
      if (b.size() < 10) return Truncated("GIF");
      header = ImageHeader{ImageFormat::kGif, LittleEndian16(b, 8), LittleEndian16(b, 6), 3};
      break;
    case ImageFormat::kBmp: {
      // BITMAPINFOHEADER: width at 18, height at 22 (negative = top-down), bits per pixel at 28.
      if (b.size() < 30) return Truncated("BMP");
      const auto width = static_cast<int32_t>(LittleEndian32(b, 18));
      const auto height = static_cast<int32_t>(LittleEndian32(b, 22));
      const int bits = LittleEndian16(b, 28);
      header = ImageHeader{ImageFormat::kBmp, height == INT32_MIN ? 0 : std::abs(height), width,
                           bits == 32 ? 4 : 3};
      break;
    }
    case ImageFormat::kUnknown:
      return absl::InvalidArgumentError(
          "not an encoded image: the signature is not PNG, JPEG, GIF or BMP");
  }
  if (!header.ok()) return header.status();
  TBLOG_RETURN_IF_ERROR(CheckHeaderSize(*header));
  return header;
}

}  // namespace tblog
