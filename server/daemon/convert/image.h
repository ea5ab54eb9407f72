// Image records: a pixel tensor that the engine encodes as PNG, or an encoded
// PNG/JPEG passed through. The tensor style writes TensorBoard 2's image
// summary (up to max_outputs images); the summary-image style writes the
// legacy Summary.Image PyTorch's add_image writes, tiling a batch into one
// grid.
#ifndef TBLOG_DAEMON_CONVERT_IMAGE_H_
#define TBLOG_DAEMON_CONVERT_IMAGE_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "daemon/options.h"
#include "engine/io/tensor_view.h"  // the tb:: alias
#include "tblog/tensorboard/summary.pb.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// Pixels are uint8 or float in [0, 1], shaped as `image.layout` says (HW,
// HWC, CHW, or batched NHWC/NCHW); encoded bytes must carry a PNG or JPEG
// signature and a readable header. Bounded by limits.max_image_pixels per
// image (and per tiled grid) and limits.max_images_per_record per batch.
absl::StatusOr<tb::Summary::Value> ConvertImage(std::string_view tag, const v1::Image& image,
                                                const Limits& limits);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_IMAGE_H_
