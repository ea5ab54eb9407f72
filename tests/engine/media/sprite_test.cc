// engine/media/sprite.h: thumbnails tiled as torch's make_sprite tiles them,
// on a square RGB canvas, read back from the PNG.
#include "engine/media/sprite.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/media/png.h"
#include "gtest/gtest.h"

namespace tblog {
namespace {

TensorView View(const std::vector<uint8_t>& data, const std::vector<int64_t>& shape) {
  return TensorView{DType::kUint8, shape,
                    std::string_view(reinterpret_cast<const char*>(data.data()), data.size())};
}

TEST(SpriteTest, FiveGrayImagesMakeAThreeByThreeSquare) {
  std::vector<uint8_t> pixels;
  for (int image = 0; image < 5; ++image) {
    for (int i = 0; i < 2 * 3; ++i) pixels.push_back(static_cast<uint8_t>(10 * image + i));
  }
  std::vector<int64_t> shape = {5, 1, 2, 3};  // NCHW, 2 high, 3 wide
  absl::StatusOr<EmbeddingSprite> sprite = BuildSprite(View(pixels, shape), ImageLayout::kNCHW);
  ASSERT_TRUE(sprite.ok()) << sprite.status();
  EXPECT_EQ(sprite->image_width, 3);
  EXPECT_EQ(sprite->image_height, 2);
  absl::StatusOr<ImageHeader> header = ReadImageHeader(sprite->png);
  ASSERT_TRUE(header.ok());
  // ceil(sqrt(5)) = 3 columns of 3 pixels: a 9x9 canvas (the grid is 4 high).
  EXPECT_EQ(header->width, 9);
  EXPECT_EQ(header->height, 9);
}

TEST(SpriteTest, RefusesAnUnbatchedLayoutAndBadPixels) {
  std::vector<uint8_t> pixels(12);
  std::vector<int64_t> shape = {2, 2, 3};
  EXPECT_EQ(BuildSprite(View(pixels, shape), ImageLayout::kHWC).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<int64_t> five_channels = {1, 5, 1, 2};
  std::vector<uint8_t> ten(10);
  EXPECT_EQ(BuildSprite(View(ten, five_channels), ImageLayout::kNCHW).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tblog
