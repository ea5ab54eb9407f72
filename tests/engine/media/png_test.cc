#include "engine/media/png.h"

#include <gtest/gtest.h>

#include <string>

namespace tblog {
namespace {

RawImage Pattern(int height, int width, int channels) {
  RawImage image{height, width, channels, {}};
  image.pixels.resize(static_cast<size_t>(height * width * channels));
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    image.pixels[i] = static_cast<uint8_t>((i * 37 + i / 7) & 0xFF);
  }
  return image;
}

class PngRoundTrip : public ::testing::TestWithParam<int> {};

TEST_P(PngRoundTrip, DecodeGivesBackThePixels) {
  const RawImage image = Pattern(7, 13, GetParam());
  absl::StatusOr<std::string> png = EncodePng(image);
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(DetectImageFormat(*png), ImageFormat::kPng);
  absl::StatusOr<RawImage> decoded = DecodePng(*png);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->height, 7);
  EXPECT_EQ(decoded->width, 13);
  EXPECT_EQ(decoded->channels, GetParam());
  EXPECT_EQ(decoded->pixels, image.pixels);

  absl::StatusOr<ImageHeader> header = ReadImageHeader(*png);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->width, 13);
  EXPECT_EQ(header->height, 7);
  EXPECT_EQ(header->channels, GetParam());
}

INSTANTIATE_TEST_SUITE_P(AllChannelCounts, PngRoundTrip, ::testing::Values(1, 2, 3, 4));

TEST(PngTest, CompressionLevelsDecodeAlike) {
  const RawImage image = Pattern(16, 16, 3);
  absl::StatusOr<std::string> fastest = EncodePng(image, 0);
  absl::StatusOr<std::string> best = EncodePng(image, 3);
  ASSERT_TRUE(fastest.ok() && best.ok());
  EXPECT_EQ(DecodePng(*fastest)->pixels, image.pixels);
  EXPECT_EQ(DecodePng(*best)->pixels, image.pixels);
  EXPECT_EQ(EncodePng(image, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng(image, -2).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PngTest, RejectsInvalidImages) {
  RawImage image = Pattern(2, 2, 3);
  image.pixels.pop_back();
  EXPECT_EQ(EncodePng(image).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng(Pattern(2, 2, 5)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng(RawImage{0, 3, 1, {}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng(RawImage{kMaxImageSide + 1, 1, 1, {}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PngTest, CorruptDataIsAnErrorNotACrash) {
  absl::StatusOr<std::string> png = EncodePng(Pattern(20, 20, 3));
  ASSERT_TRUE(png.ok());
  EXPECT_FALSE(DecodePng("not a png").ok());
  // Truncated in the middle of the image data.
  absl::StatusOr<RawImage> truncated = DecodePng(png->substr(0, png->size() / 2));
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("cannot decode PNG"), std::string::npos);
  // A flipped bit inside IDAT breaks a CRC or the zlib stream.
  std::string corrupt = *png;
  corrupt[corrupt.size() / 2] = static_cast<char>(corrupt[corrupt.size() / 2] ^ 0x5A);
  EXPECT_FALSE(DecodePng(corrupt).ok());
}

TEST(PngTest, DetectsFormatsBySignature) {
  EXPECT_EQ(DetectImageFormat(std::string("\xFF\xD8\xFF\xE0", 4)), ImageFormat::kJpeg);
  EXPECT_EQ(DetectImageFormat("GIF89a...."), ImageFormat::kGif);
  EXPECT_EQ(DetectImageFormat("BM......"), ImageFormat::kBmp);
  EXPECT_EQ(DetectImageFormat("\x89PN"), ImageFormat::kUnknown);
  EXPECT_EQ(DetectImageFormat(""), ImageFormat::kUnknown);
  EXPECT_EQ(ImageMimeType(ImageFormat::kJpeg), "image/jpeg");
  EXPECT_FALSE(ReadImageHeader("hello").ok());
}

TEST(PngTest, ReadsJpegSizeFromTheFrameHeader) {
  // SOI, an APP0 segment of 4 bytes, then SOF0: 8-bit, height 480, width 640, 3 components.
  static constexpr char kJpeg[] =
      "\xFF\xD8"
      "\xFF\xE0\x00\x04\x00\x00"
      "\xFF\xC0\x00\x11\x08\x01\xE0\x02\x80\x03";
  const std::string jpeg(kJpeg, sizeof kJpeg - 1);  // 18 bytes (the literal has no more)
  absl::StatusOr<ImageHeader> header = ReadImageHeader(jpeg);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->format, ImageFormat::kJpeg);
  EXPECT_EQ(header->height, 480);
  EXPECT_EQ(header->width, 640);
  EXPECT_EQ(header->channels, 3);
  // Cut before the SOF marker: no size can be read.
  EXPECT_FALSE(ReadImageHeader(jpeg.substr(0, 8)).ok());
}

TEST(PngTest, ReadsGifAndBmpSizes) {
  const std::string gif("GIF89a\x30\x00\x20\x00", 10);
  ASSERT_TRUE(ReadImageHeader(gif).ok());
  EXPECT_EQ(ReadImageHeader(gif)->width, 48);
  EXPECT_EQ(ReadImageHeader(gif)->height, 32);
  std::string bmp(30, '\0');
  bmp[0] = 'B';
  bmp[1] = 'M';
  bmp[18] = 5;                                    // width 5
  bmp[22] = static_cast<char>(0xFD);              // height -3 (top-down)
  bmp[23] = bmp[24] = bmp[25] = static_cast<char>(0xFF);
  bmp[28] = 32;
  absl::StatusOr<ImageHeader> header = ReadImageHeader(bmp);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->width, 5);
  EXPECT_EQ(header->height, 3);
  EXPECT_EQ(header->channels, 4);
}

}  // namespace
}  // namespace tblog
