#include "engine/media/gif.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"

namespace tblog {
namespace {

constexpr int kMinCodeSize = 8;  // 256-entry colour tables
constexpr int kClearCode = 1 << kMinCodeSize;
constexpr int kEndCode = kClearCode + 1;
constexpr int kMaxCode = 4095;  // GIF codes have at most 12 bits
constexpr size_t kLzwTableEntries = size_t{kMaxCode + 1} * 256;  // 2 MiB of uint16_t

void PutU16(std::string& out, int value) {
  out += static_cast<char>(value & 0xff);
  out += static_cast<char>((value >> 8) & 0xff);
}

// One frame as palette indices and its 256-entry RGB colour table.
struct IndexedFrame {
  std::vector<uint8_t> indices;
  std::string palette;  // 768 bytes
};

uint32_t RgbAt(const RawImage& image, size_t pixel) {
  const uint8_t* p = image.pixels.data() + pixel * static_cast<size_t>(image.channels);
  if (image.channels <= 2) return uint32_t{p[0]} * 0x010101u;  // gray (alpha dropped)
  return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
}

// Exact colours when there are at most 256 of them, else the 3-3-2 palette.
IndexedFrame Index(const RawImage& image) {
  const size_t pixels = static_cast<size_t>(image.height) * static_cast<size_t>(image.width);
  IndexedFrame out;
  out.indices.resize(pixels);
  out.palette.assign(768, '\0');
  std::unordered_map<uint32_t, uint8_t> exact;
  bool fits = true;
  for (size_t i = 0; i < pixels && fits; ++i) {
    const uint32_t rgb = RgbAt(image, i);
    auto [it, inserted] = exact.try_emplace(rgb, static_cast<uint8_t>(exact.size()));
    if (inserted && exact.size() > 256) fits = false;
    out.indices[i] = it->second;
  }
  if (fits) {
    for (const auto& [rgb, index] : exact) {
      out.palette[3 * index] = static_cast<char>(rgb >> 16);
      out.palette[3 * index + 1] = static_cast<char>((rgb >> 8) & 0xff);
      out.palette[3 * index + 2] = static_cast<char>(rgb & 0xff);
    }
    return out;
  }
  // Each entry's colour is the centre of the RGB cell it stands for.
  for (int index = 0; index < 256; ++index) {
    out.palette[3 * index] = static_cast<char>(((index >> 5) & 7) * 255 / 7);
    out.palette[3 * index + 1] = static_cast<char>(((index >> 2) & 7) * 255 / 7);
    out.palette[3 * index + 2] = static_cast<char>((index & 3) * 255 / 3);
  }
  for (size_t i = 0; i < pixels; ++i) {
    const uint32_t rgb = RgbAt(image, i);
    const uint32_t r = (rgb >> 16) & 0xff, g = (rgb >> 8) & 0xff, b = rgb & 0xff;
    // Rounded to the nearest level: 7 levels of 255/7 for red and green, 3 for blue.
    const uint32_t r3 = (r * 7 + 127) / 255, g3 = (g * 7 + 127) / 255, b2 = (b * 3 + 127) / 255;
    out.indices[i] = static_cast<uint8_t>((r3 << 5) | (g3 << 2) | b2);
  }
  return out;
}

// Packs variable-width codes least significant bit first into 255-byte
// sub-blocks, as GIF's image data is framed.
class CodeWriter {
 public:
  explicit CodeWriter(std::string& out) : out_(out) {}
  void Put(int code, int bits) {
    buffer_ |= static_cast<uint32_t>(code) << filled_;
    filled_ += bits;
    while (filled_ >= 8) {
      PutByte(static_cast<uint8_t>(buffer_ & 0xff));
      buffer_ >>= 8;
      filled_ -= 8;
    }
  }
  void Finish() {
    if (filled_ > 0) PutByte(static_cast<uint8_t>(buffer_ & 0xff));
    buffer_ = 0, filled_ = 0;
    if (!block_.empty()) FlushBlock();
    out_ += '\0';  // block terminator
  }

 private:
  void PutByte(uint8_t byte) {
    block_ += static_cast<char>(byte);
    if (block_.size() == 255) FlushBlock();
  }
  void FlushBlock() {
    out_ += static_cast<char>(block_.size());
    out_ += block_;
    block_.clear();
  }
  std::string& out_;
  std::string block_;
  uint32_t buffer_ = 0;
  int filled_ = 0;
};

// GIF's LZW: a trie of the strings seen so far (child[code * 256 + byte] is
// the code of that string extended by byte, 0 for none), reset with a clear
// code when the 12-bit code space is full.
// `child` (kLzwTableEntries, all zero) is the caller's, reused across frames.
void CompressLzw(const std::vector<uint8_t>& indices, std::vector<uint16_t>& child,
                 std::string& out) {
  out += static_cast<char>(kMinCodeSize);
  CodeWriter writer(out);
  int code_size = kMinCodeSize + 1;
  int last_code = kEndCode;  // the highest code in use
  writer.Put(kClearCode, code_size);
  int current = -1;
  for (const uint8_t index : indices) {
    if (current < 0) {
      current = index;
      continue;
    }
    const uint16_t next = child[static_cast<size_t>(current) * 256 + index];
    if (next != 0) {
      current = next;
      continue;
    }
    writer.Put(current, code_size);
    child[static_cast<size_t>(current) * 256 + index] = static_cast<uint16_t>(++last_code);
    // The decoder adds each entry one code later, so it widens its codes
    // exactly when this entry's code no longer fits.
    if (last_code >= (1 << code_size)) ++code_size;
    if (last_code == kMaxCode) {
      writer.Put(kClearCode, code_size);
      std::fill(child.begin(), child.end(), 0);
      code_size = kMinCodeSize + 1;
      last_code = kEndCode;
    }
    current = index;
  }
  if (current >= 0) writer.Put(current, code_size);
  writer.Put(kEndCode, code_size);
  writer.Finish();
  std::fill(child.begin(), child.end(), 0);
}

}  // namespace

absl::StatusOr<std::string> EncodeAnimatedGif(std::span<const RawImage> frames, double fps) {
  if (frames.empty()) return absl::InvalidArgumentError("a video needs at least one frame");
  if (!std::isfinite(fps) || fps <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("fps is ", fps, "; must be finite and > 0"));
  }
  const RawImage& first = frames.front();
  for (size_t i = 0; i < frames.size(); ++i) {
    TBLOG_RETURN_IF_ERROR(Annotate(ValidateRawImage(frames[i]), absl::StrCat("frame ", i)));
    if (frames[i].height != first.height || frames[i].width != first.width ||
        frames[i].channels != first.channels) {
      return absl::InvalidArgumentError(absl::StrCat("frame ", i, " differs in size from frame 0"));
    }
  }
  if (first.height > 0xffff || first.width > 0xffff) {
    return absl::InvalidArgumentError(absl::StrCat(first.height, "x", first.width,
                                                   " is larger than GIF's 65535x65535"));
  }
  const int delay = std::clamp(static_cast<int>(std::lround(100.0 / fps)), 1, 0xffff);
  std::string out = "GIF89a";
  PutU16(out, first.width);
  PutU16(out, first.height);
  // No global colour table (each frame brings its own), 8-bit colour resolution.
  out += static_cast<char>(0x70);
  out += '\0';  // background colour index
  out += '\0';  // pixel aspect ratio: unspecified
  // NETSCAPE2.0 application extension: loop forever (count 0).
  out += std::string("\x21\xff\x0b" "NETSCAPE2.0" "\x03\x01\x00\x00\x00", 19);
  std::vector<uint16_t> lzw_table(kLzwTableEntries, 0);
  for (const RawImage& frame : frames) {
    const IndexedFrame indexed = Index(frame);
    // Graphic control extension: disposal "do not dispose", the delay, no transparency.
    out += std::string("\x21\xf9\x04\x04", 4);
    PutU16(out, delay);
    out += std::string("\x00\x00", 2);
    // Image descriptor at (0, 0), full size, with a 256-entry local colour table.
    out += '\x2c';
    PutU16(out, 0);
    PutU16(out, 0);
    PutU16(out, frame.width);
    PutU16(out, frame.height);
    out += static_cast<char>(0x87);
    out += indexed.palette;
    CompressLzw(indexed.indices, lzw_table, out);
  }
  out += '\x3b';  // trailer
  return out;
}

}  // namespace tblog
