// Image summaries: pixels (uint8, or float in [0,1]) or already-encoded
// PNG/JPEG/GIF/BMP bytes to the Summary.Value TensorBoard's image plugin reads,
// in the two shapes writers produce:
//   v1  Summary.Image {height, width, colorspace, PNG}, as PyTorch's
//       SummaryWriter.add_image / add_images write it (no metadata);
//   v2  DT_STRING tensor [width, height, png_1 .. png_k], plugin "images",
//       as TensorBoard's image summary writes it.
// The caller wraps the Value in an Event with step and wall_time. Functions
// are pure and thread-safe.
#ifndef TBLOG_ENGINE_MEDIA_IMAGE_SUMMARY_H_
#define TBLOG_ENGINE_MEDIA_IMAGE_SUMMARY_H_

#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/media/png.h"
#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog {

// Order of a pixel tensor's dimensions (N batch, C channels, H height, W width).
// kHW is one gray image; the others carry C = 1..4 (gray, gray+alpha, RGB, RGBA).
enum class ImageLayout { kHW, kHWC, kCHW, kNHWC, kNCHW };

// TensorBoard's default for how many images of a batch a v2 summary keeps.
inline constexpr int kDefaultMaxImageOutputs = 3;
// torch's make_grid: at most this many images per grid row.
inline constexpr int kGridMaxColumns = 8;

// Converts a pixel tensor to 8-bit HWC images, one per batch entry (one for
// the unbatched layouts). uint8 pixels are taken as they are. Float pixels
// (float16/bfloat16/float32/float64) are read as float32, multiplied by 255,
// clipped to [0,255] and truncated toward zero, exactly as torch's
// summary.image does (so 1.0 -> 255, 0.999 -> 254, 1.5 -> 255, -0.2 -> 0);
// NaN or infinity is INVALID_ARGUMENT with the element index. Other dtypes,
// a rank that does not match `layout`, C outside 1..4, an empty batch or a
// size beyond png.h's limits are INVALID_ARGUMENT.
absl::StatusOr<std::vector<RawImage>> ImagesFromTensor(const TensorView& pixels,
                                                       ImageLayout layout);

// Tiles equally sized images into one, as torch's make_grid does for
// add_images: min(N, max_columns) columns, ceil(N / columns) rows, no padding,
// unfilled cells zero. Images must share height, width and channels
// (INVALID_ARGUMENT otherwise, or for an empty list).
absl::StatusOr<RawImage> TileImages(std::span<const RawImage> images,
                                    int max_columns = kGridMaxColumns);

// v1, torch add_image: one image (unbatched layout) as Summary.Image.
// Deviation from torch: gray (and gray+alpha) images keep their channel count
// and colorspace instead of being widened to RGB; TensorBoard shows the same.
absl::StatusOr<tb::Summary::Value> MakeImageSummaryV1(std::string_view tag,
                                                      const TensorView& pixels,
                                                      ImageLayout layout);

// v1, torch add_images: a batch (kNCHW or kNHWC) tiled by TileImages into one
// Summary.Image.
absl::StatusOr<tb::Summary::Value> MakeImageGridSummaryV1(std::string_view tag,
                                                          const TensorView& batch,
                                                          ImageLayout layout);

// v2: the first min(N, max_outputs) images of a batch (an unbatched layout is
// a batch of one) as [width, height, png...], plugin "images", content
// ImagePluginData{converted_to_tensor: true} (the bytes TensorBoard's golden
// image_v2 carries), data_class BLOB_SEQUENCE. max_outputs >= 1.
absl::StatusOr<tb::Summary::Value> MakeImageSummaryV2(std::string_view tag,
                                                      const TensorView& pixels,
                                                      ImageLayout layout,
                                                      int max_outputs = kDefaultMaxImageOutputs);

// Pre-encoded images pass through after a signature check; height, width and
// colorspace come from the header (png.h ReadImageHeader).
absl::StatusOr<tb::Summary::Value> MakeEncodedImageSummaryV1(std::string_view tag,
                                                             std::string_view encoded);
// As MakeImageSummaryV2 for encoded images, which must share width and height.
absl::StatusOr<tb::Summary::Value> MakeEncodedImageSummaryV2(
    std::string_view tag, std::span<const std::string_view> encoded,
    int max_outputs = kDefaultMaxImageOutputs);

}  // namespace tblog

#endif  // TBLOG_ENGINE_MEDIA_IMAGE_SUMMARY_H_
