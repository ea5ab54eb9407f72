// The engine's PNG writer (EncodePng, png_writer.h) decoded by libpng, an
// independent decoder: every channel count, 1x1 and odd sizes, every filter,
// with content that exercises each filter's wrap-around (random bytes, 0/255
// edges), and with zlib in place of libdeflate behind the same framing.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "engine/media/png.h"
#include "engine/media/png_writer.h"

namespace tblog {
namespace {

// Random bytes with runs of 0 and 255, so filtered differences wrap both ways.
RawImage Noisy(int height, int width, int channels, uint32_t seed) {
  RawImage image{height, width, channels, {}};
  image.pixels.resize(static_cast<size_t>(height) * static_cast<size_t>(width) *
                      static_cast<size_t>(channels));
  uint32_t state = seed;
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    state = state * 1664525u + 1013904223u;
    const uint32_t r = state >> 24;
    image.pixels[i] = static_cast<uint8_t>(r < 32 ? 0 : r > 223 ? 255 : r);
  }
  return image;
}

void ExpectDecodesTo(const std::string& png, const RawImage& image) {
  absl::StatusOr<RawImage> decoded = DecodePng(png);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->height, image.height);
  EXPECT_EQ(decoded->width, image.width);
  EXPECT_EQ(decoded->channels, image.channels);
  EXPECT_TRUE(decoded->pixels == image.pixels);
}

using Shape = std::tuple<int, int, int>;  // height, width, channels

class PngWriterShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(PngWriterShapes, EncodePngDecodesToTheInputAtEveryLevel) {
  const auto [height, width, channels] = GetParam();
  const RawImage image = Noisy(height, width, channels, static_cast<uint32_t>(height * 131 + width));
  for (int level : {-1, 0, 1, 2, 3}) {
    SCOPED_TRACE(level);
    absl::StatusOr<std::string> png = EncodePng(image, level);
    ASSERT_TRUE(png.ok()) << png.status();
    ExpectDecodesTo(*png, image);
    absl::StatusOr<ImageHeader> header = ReadImageHeader(*png);
    ASSERT_TRUE(header.ok()) << header.status();
    EXPECT_EQ(header->channels, channels);
  }
}

TEST_P(PngWriterShapes, EveryFilterBehindZlibDecodesToTheInput) {
  const auto [height, width, channels] = GetParam();
  const RawImage image = Noisy(height, width, channels, 99);
  using png_writer::Filter;
  for (Filter filter : {Filter::kNone, Filter::kSub, Filter::kUp, Filter::kPaeth}) {
    SCOPED_TRACE(static_cast<int>(filter));
    const std::string filtered = png_writer::FilterRows(image, filter);
    ASSERT_EQ(filtered.size(), static_cast<size_t>(height) *
                                   (1 + static_cast<size_t>(width) * static_cast<size_t>(channels)));
    absl::StatusOr<std::string> png = png_writer::Assemble(
        image, filtered, compressBound(filtered.size()),
        [](const uint8_t* in, size_t n, uint8_t* out, size_t capacity) -> size_t {
          uLongf size = capacity;
          return compress2(out, &size, in, n, 6) == Z_OK ? size : 0;
        });
    ASSERT_TRUE(png.ok()) << png.status();
    ExpectDecodesTo(*png, image);
  }
}

INSTANTIATE_TEST_SUITE_P(
    ChannelsAndOddSizes, PngWriterShapes,
    ::testing::Values(Shape{1, 1, 1}, Shape{1, 1, 2}, Shape{1, 1, 3}, Shape{1, 1, 4},
                      Shape{7, 13, 1}, Shape{7, 13, 2}, Shape{7, 13, 3}, Shape{7, 13, 4},
                      Shape{1, 301, 3}, Shape{257, 1, 4}, Shape{99, 101, 3}, Shape{64, 64, 2}));

TEST(PngWriterTest, IncompressibleImagesFitAtEveryLevel) {
  // Uniformly random bytes: igzip falls back to stored blocks, which must fit
  // the writer's bound.
  RawImage image{300, 301, 4, std::vector<uint8_t>(300 * 301 * 4)};
  uint64_t state = 17;
  for (uint8_t& p : image.pixels) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    p = static_cast<uint8_t>(state >> 56);
  }
  for (int level = 0; level <= png_writer::kMaxLevel; ++level) {
    for (auto filter : {png_writer::Filter::kNone, png_writer::Filter::kPaeth}) {
      absl::StatusOr<std::string> png = png_writer::Encode(image, filter, level);
      ASSERT_TRUE(png.ok()) << png.status() << " level " << level;
      ExpectDecodesTo(*png, image);
    }
  }
}

TEST(PngWriterTest, CompressesSmoothImages) {
  RawImage gradient{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3)};
  for (size_t i = 0; i < gradient.pixels.size(); ++i) {
    gradient.pixels[i] = static_cast<uint8_t>((i / 3) % 64 + (i / 192));
  }
  absl::StatusOr<std::string> png = EncodePng(gradient);
  ASSERT_TRUE(png.ok());
  EXPECT_LT(png->size(), gradient.pixels.size() / 10);  // Up makes the rows nearly constant
  ExpectDecodesTo(*png, gradient);
}

TEST(PngWriterTest, FailedCompressionIsInternalNotACrash) {
  const RawImage image = Noisy(4, 4, 3, 1);
  absl::StatusOr<std::string> png = png_writer::Assemble(
      image, png_writer::FilterRows(image, png_writer::Filter::kUp), 16,
      [](const uint8_t*, size_t, uint8_t*, size_t) -> size_t { return 0; });
  EXPECT_EQ(png.status().code(), absl::StatusCode::kInternal);
}

TEST(PngWriterTest, ManyThreadsEncodeTheSameBytes) {
  // Each thread keeps its own libdeflate compressor: results never depend on
  // which thread encoded.
  const RawImage image = Noisy(50, 60, 3, 5);
  const std::string expected = *EncodePng(image);
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) results[t] = *EncodePng(image);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& r : results) EXPECT_TRUE(r == expected);
}

}  // namespace
}  // namespace tblog
