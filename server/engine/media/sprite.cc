#include "engine/media/sprite.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/media/png.h"

namespace tblog {
namespace {

// Gray (+alpha) repeated into RGB, RGBA's alpha dropped.
RawImage ToRgb(const RawImage& image) {
  if (image.channels == 3) return image;
  RawImage rgb{image.height, image.width, 3, {}};
  const size_t pixels = static_cast<size_t>(image.height) * static_cast<size_t>(image.width);
  rgb.pixels.resize(pixels * 3);
  const size_t stride = static_cast<size_t>(image.channels);
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t* in = image.pixels.data() + i * stride;
    for (size_t c = 0; c < 3; ++c) rgb.pixels[i * 3 + c] = stride >= 3 ? in[c] : in[0];
  }
  return rgb;
}

}  // namespace

absl::StatusOr<EmbeddingSprite> BuildSprite(const TensorView& images, ImageLayout layout) {
  if (layout != ImageLayout::kNCHW && layout != ImageLayout::kNHWC) {
    return absl::InvalidArgumentError("sprite images must be a batch (NCHW or NHWC)");
  }
  absl::StatusOr<std::vector<RawImage>> decoded = ImagesFromTensor(images, layout);
  if (!decoded.ok()) return decoded.status();
  for (RawImage& image : *decoded) image = ToRgb(image);
  const int count = static_cast<int>(decoded->size());
  const int columns = std::max(1, static_cast<int>(std::ceil(std::sqrt(count))));
  absl::StatusOr<RawImage> grid = TileImages(*decoded, columns);
  if (!grid.ok()) return grid.status();
  const int side = std::max(grid->width, grid->height);
  RawImage square{side, side, 3, {}};
  if (static_cast<int64_t>(side) * side * 3 > kMaxImageBytes || side > kMaxImageSide) {
    return absl::InvalidArgumentError(
        absl::StrCat("the sprite would be ", side, "x", side, " pixels, beyond the PNG limits"));
  }
  square.pixels.assign(static_cast<size_t>(side) * static_cast<size_t>(side) * 3, 0);
  const size_t row_bytes = static_cast<size_t>(grid->width) * 3;
  for (int y = 0; y < grid->height; ++y) {
    std::copy_n(grid->pixels.begin() + static_cast<ptrdiff_t>(y * row_bytes), row_bytes,
                square.pixels.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(y) * side * 3));
  }
  absl::StatusOr<std::string> png = EncodePng(square);
  if (!png.ok()) return png.status();
  return EmbeddingSprite{*std::move(png), decoded->front().width, decoded->front().height};
}

}  // namespace tblog
