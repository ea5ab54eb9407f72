// The projector's sprite: the thumbnails of an embedding's points tiled into
// one square PNG, as PyTorch's add_embedding(label_img=...) writes
// <step>/<tag>/sprite.png. Pure and thread-safe.
#ifndef TBLOG_ENGINE_MEDIA_SPRITE_H_
#define TBLOG_ENGINE_MEDIA_SPRITE_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/io/tensor_view.h"
#include "engine/media/image_summary.h"  // ImageLayout

namespace tblog {

struct EmbeddingSprite {
  std::string png;
  int image_width = 0;  // one thumbnail's size: the config's single_image_dim
  int image_height = 0;
};

// Tiles the N images of `images` (kNCHW or kNHWC; pixels as
// ImagesFromTensor reads them) row by row into ceil(sqrt(N)) columns, on a
// black square canvas as wide as the grid (or as tall, if taller), RGB: gray
// is repeated into the three channels and alpha dropped, as torch's
// make_sprite does. INVALID_ARGUMENT for another layout, bad pixels, or a
// canvas beyond png.h's limits.
absl::StatusOr<EmbeddingSprite> BuildSprite(const TensorView& images, ImageLayout layout);

}  // namespace tblog

#endif  // TBLOG_ENGINE_MEDIA_SPRITE_H_
