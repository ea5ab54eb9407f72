// engine/media/gif.h: animated GIFs decoded again by a small decoder written
// from the GIF89a specification (independent of the encoder's trie): exact
// colours round-trip, many colours map to the 3-3-2 palette, long frames
// cross LZW's clear codes, and bad input is INVALID_ARGUMENT.
#include "engine/media/gif.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tblog {
namespace {

struct DecodedFrame {
  int delay = 0;
  std::vector<uint8_t> rgb;  // height * width * 3
};

struct Decoded {
  int width = 0, height = 0;
  bool loops = false;
  std::vector<DecodedFrame> frames;
};

std::string SubBlocks(const std::string& gif, size_t& pos) {
  std::string out;
  while (gif.at(pos) != 0) {
    const size_t size = static_cast<uint8_t>(gif[pos]);
    out += gif.substr(pos + 1, size);
    pos += 1 + size;
  }
  ++pos;
  return out;
}

std::vector<uint8_t> Lzw(const std::string& data, int min_code_size, size_t pixels) {
  const int clear = 1 << min_code_size, end = clear + 1;
  std::vector<std::vector<uint8_t>> table;
  auto reset = [&] {
    table.clear();
    for (int i = 0; i < clear + 2; ++i) table.push_back({static_cast<uint8_t>(i)});
  };
  reset();
  int size = min_code_size + 1;
  std::vector<uint8_t> out, prev;
  size_t bit = 0;
  while (bit + static_cast<size_t>(size) <= data.size() * 8) {
    int code = 0;
    for (int i = 0; i < size; ++i, ++bit) {
      code |= ((static_cast<uint8_t>(data[bit / 8]) >> (bit % 8)) & 1) << i;
    }
    if (code == clear) {
      reset();
      size = min_code_size + 1;
      prev.clear();
      continue;
    }
    if (code == end) break;
    std::vector<uint8_t> entry;
    if (prev.empty()) {
      entry = table.at(static_cast<size_t>(code));
    } else if (static_cast<size_t>(code) < table.size()) {
      entry = table[static_cast<size_t>(code)];
      std::vector<uint8_t> added = prev;
      added.push_back(entry[0]);
      table.push_back(added);
    } else {
      EXPECT_EQ(static_cast<size_t>(code), table.size());
      entry = prev;
      entry.push_back(prev[0]);
      table.push_back(entry);
    }
    out.insert(out.end(), entry.begin(), entry.end());
    prev = entry;
    if (table.size() == (size_t{1} << size) && size < 12) ++size;
  }
  EXPECT_GE(out.size(), pixels);
  out.resize(pixels);
  return out;
}

int U16(const std::string& s, size_t pos) {
  return static_cast<uint8_t>(s[pos]) | static_cast<uint8_t>(s[pos + 1]) << 8;
}

Decoded Decode(const std::string& gif) {
  Decoded out;
  EXPECT_EQ(gif.substr(0, 6), "GIF89a");
  out.width = U16(gif, 6), out.height = U16(gif, 8);
  EXPECT_EQ(static_cast<uint8_t>(gif[10]) & 0x80, 0);  // no global table
  size_t pos = 13;
  int delay = 0;
  while (pos < gif.size()) {
    const auto kind = static_cast<uint8_t>(gif[pos++]);
    if (kind == 0x3b) return out;
    if (kind == 0x21) {
      const auto label = static_cast<uint8_t>(gif[pos++]);
      const std::string block = SubBlocks(gif, pos);
      if (label == 0xf9) delay = U16(block, 1);
      if (label == 0xff && block.starts_with("NETSCAPE2.0")) out.loops = U16(block, 13) == 0;
      continue;
    }
    EXPECT_EQ(kind, 0x2c);
    EXPECT_EQ(U16(gif, pos + 4), out.width);
    const auto packed = static_cast<uint8_t>(gif[pos + 8]);
    pos += 9;
    EXPECT_TRUE(packed & 0x80);
    const size_t entries = size_t{2} << (packed & 7);
    const std::string palette = gif.substr(pos, 3 * entries);
    pos += 3 * entries;
    const int min_code_size = static_cast<uint8_t>(gif[pos++]);
    const size_t pixels = static_cast<size_t>(out.width) * static_cast<size_t>(out.height);
    const std::vector<uint8_t> indices = Lzw(SubBlocks(gif, pos), min_code_size, pixels);
    DecodedFrame frame{delay, {}};
    for (uint8_t index : indices) {
      for (int c = 0; c < 3; ++c) frame.rgb.push_back(static_cast<uint8_t>(palette[3 * index + c]));
    }
    out.frames.push_back(std::move(frame));
  }
  ADD_FAILURE() << "no trailer";
  return out;
}

RawImage Frame(int height, int width, int channels, int colours, uint32_t seed) {
  std::mt19937 random(seed);
  std::vector<std::vector<uint8_t>> palette(static_cast<size_t>(colours));
  for (auto& colour : palette) {
    for (int c = 0; c < channels; ++c) colour.push_back(static_cast<uint8_t>(random()));
  }
  RawImage image{height, width, channels, {}};
  for (int i = 0; i < height * width; ++i) {
    const auto& colour = palette[random() % palette.size()];
    image.pixels.insert(image.pixels.end(), colour.begin(), colour.end());
  }
  return image;
}

std::vector<uint8_t> Rgb(const RawImage& image) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < image.pixels.size(); i += static_cast<size_t>(image.channels)) {
    for (int c = 0; c < 3; ++c) {
      out.push_back(image.pixels[i + (image.channels >= 3 ? static_cast<size_t>(c) : 0)]);
    }
  }
  return out;
}

TEST(GifTest, FewColoursRoundTripExactlyAcrossClearCodes) {
  // 200x200 pixels of 200 colours: far more codes than the 12-bit table holds.
  const std::vector<RawImage> frames = {Frame(200, 200, 3, 200, 1), Frame(200, 200, 3, 3, 2),
                                        Frame(200, 200, 3, 256, 3)};
  absl::StatusOr<std::string> gif = EncodeAnimatedGif(frames, 20);
  ASSERT_TRUE(gif.ok()) << gif.status();
  const Decoded decoded = Decode(*gif);
  EXPECT_EQ(decoded.width, 200);
  EXPECT_TRUE(decoded.loops);
  ASSERT_EQ(decoded.frames.size(), 3u);
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(decoded.frames[i].delay, 5);
    EXPECT_EQ(decoded.frames[i].rgb, Rgb(frames[i])) << "frame " << i;
  }
}

TEST(GifTest, GrayIsExactAndManyColoursMapToThe332Palette) {
  RawImage gray{16, 16, 1, {}};
  for (int i = 0; i < 256; ++i) gray.pixels.push_back(static_cast<uint8_t>(i));
  const RawImage noise = Frame(64, 64, 3, 4096, 4);
  absl::StatusOr<std::string> gif = EncodeAnimatedGif({&gray, 1}, 0.5);
  ASSERT_TRUE(gif.ok());
  const Decoded decoded = Decode(*gif);
  EXPECT_EQ(decoded.frames[0].delay, 200);
  EXPECT_EQ(decoded.frames[0].rgb, Rgb(gray));
  const RawImage rgba = Frame(8, 8, 4, 50, 8);  // alpha is dropped
  gif = EncodeAnimatedGif({&rgba, 1}, 4);
  ASSERT_TRUE(gif.ok());
  EXPECT_EQ(Decode(*gif).frames[0].rgb, Rgb(rgba));
  gif = EncodeAnimatedGif({&noise, 1}, 1000);
  ASSERT_TRUE(gif.ok());
  const Decoded many = Decode(*gif);
  EXPECT_EQ(many.frames[0].delay, 1);  // at least one hundredth
  const std::vector<uint8_t> original = Rgb(noise);
  for (size_t i = 0; i < original.size(); ++i) {
    const int error = std::abs(int{many.frames[0].rgb[i]} - int{original[i]});
    EXPECT_LE(error, i % 3 == 2 ? 43 : 19) << i;
  }
}

TEST(GifTest, BadInputIsInvalidArgument) {
  const RawImage a = Frame(4, 4, 3, 2, 6), b = Frame(4, 5, 3, 2, 7);
  EXPECT_EQ(EncodeAnimatedGif({}, 4).status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<RawImage> mixed = {a, b};
  EXPECT_EQ(EncodeAnimatedGif(mixed, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeAnimatedGif({&a, 1}, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeAnimatedGif({&a, 1}, std::nan("")).status().code(),
            absl::StatusCode::kInvalidArgument);
  RawImage broken = a;
  broken.pixels.pop_back();
  EXPECT_EQ(EncodeAnimatedGif({&broken, 1}, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tblog
