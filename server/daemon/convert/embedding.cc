#include "daemon/convert/embedding.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "engine/media/embedding.h"
#include "engine/media/sprite.h"

namespace tblog::daemon::convert {
namespace {

// The sprite of label_img: one image per point, bounded as an image batch
// (each by max_image_pixels, the square canvas too).
absl::StatusOr<EmbeddingSprite> SpriteOf(const v1::Embedding& embedding, int64_t points,
                                         const Limits& limits) {
  absl::StatusOr<TensorView> view = ViewTensor(embedding.label_img(), "label_img", limits);
  if (!view.ok()) return view.status();
  if (view->dtype != DType::kUint8 && !IsFloatDType(view->dtype)) {
    return Bad("label_img", absl::StrCat("dtype ", Sv(DTypeName(view->dtype)),
                                         " is not supported (uint8, or float in [0,1])"));
  }
  ImageLayout layout;
  switch (embedding.label_img_layout()) {
    case v1::PIXEL_LAYOUT_HWC:
    case v1::PIXEL_LAYOUT_NHWC: layout = ImageLayout::kNHWC; break;
    case v1::PIXEL_LAYOUT_CHW:
    case v1::PIXEL_LAYOUT_NCHW: layout = ImageLayout::kNCHW; break;
    default: return Bad("label_img_layout", UnknownEnum(embedding.label_img_layout()));
  }
  if (view->shape.size() != 4 || view->shape[0] != points) {
    return Bad("label_img", absl::StrCat("shape ", ShapeString(view->shape), " must be [", points,
                                         layout == ImageLayout::kNCHW ? ", C, H, W]" : ", H, W, C]",
                                         ": one image per point"));
  }
  const int64_t height = layout == ImageLayout::kNCHW ? view->shape[2] : view->shape[1];
  const int64_t width = layout == ImageLayout::kNCHW ? view->shape[3] : view->shape[2];
  // The canvas is a square of ceil(sqrt(N)) images a side.
  int64_t columns = 1;
  while (columns * columns < points) ++columns;
  const int64_t side = columns * std::max(height, width);
  if (side * side > limits.max_image_pixels) {
    return Bad("label_img", absl::StrCat("the sprite would be ", side, "x", side,
                                         " pixels, more than the limit of ",
                                         limits.max_image_pixels));
  }
  absl::StatusOr<EmbeddingSprite> sprite = BuildSprite(*view, layout);
  if (!sprite.ok()) return Annotate(sprite.status(), "label_img");
  return sprite;
}

}  // namespace

absl::Status ConvertEmbedding(const v1::Embedding& embedding, const Header& header,
                              const Limits& limits, Converted& out) {
  if (!embedding.has_matrix()) return Bad("matrix", "not set");
  absl::StatusOr<TensorView> matrix =
      ViewTensor(embedding.matrix(), "matrix", limits, /*allow_shm=*/true);
  if (!matrix.ok()) return matrix.status();
  TBLOG_RETURN_IF_ERROR(RequireFloat(*matrix, "matrix"));
  if (matrix->shape.size() != 2) {
    return Bad("matrix", absl::StrCat("shape ", ShapeString(matrix->shape),
                                      " must be [points, dims]"));
  }
  if (header.step < 0) {
    return Bad("step", absl::StrCat(header.step, " is negative; an embedding's step names its ",
                                    "directory and must be >= 0"));
  }
  EmbeddingLabels labels;
  labels.header.assign(embedding.metadata_header().begin(), embedding.metadata_header().end());
  labels.cells.assign(embedding.metadata().begin(), embedding.metadata().end());
  const bool has_labels = !labels.cells.empty() || !labels.header.empty();
  std::optional<EmbeddingSprite> sprite;
  if (embedding.has_label_img()) {
    absl::StatusOr<EmbeddingSprite> built = SpriteOf(embedding, matrix->shape[0], limits);
    if (!built.ok()) return built.status();
    sprite = *std::move(built);
  }
  absl::StatusOr<ProjectorFiles> files =
      BuildProjectorFiles(header.tag, header.step, *matrix, has_labels ? &labels : nullptr,
                          sprite ? &*sprite : nullptr);
  if (!files.ok()) return files.status();
  const std::string subrun(header.subrun);
  for (auto& [path, contents] : files->files) {
    out.files.push_back(SideFile{subrun, std::move(path), std::move(contents), false});
  }
  out.files.push_back(
      SideFile{subrun, "projector_config.pbtxt", std::move(files->config_block), true});
  return absl::OkStatus();
}

}  // namespace tblog::daemon::convert
