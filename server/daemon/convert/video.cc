#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/fields.h"
#include "daemon/convert/summaries.h"
#include "engine/media/gif.h"
#include "engine/media/image_summary.h"

namespace tblog::daemon::convert {

// PyTorch's add_video default.
constexpr double kDefaultVideoFps = 4;

absl::StatusOr<tb::Summary::Value> ConvertVideo(std::string_view tag, const v1::Video& video,
                                                const Limits& limits) {
  if (!video.has_frames()) return Bad("frames", "not set");
  absl::StatusOr<TensorView> view = ViewTensor(video.frames(), "frames", limits);
  if (!view.ok()) return view.status();
  if (view->dtype != DType::kUint8 && !IsFloatDType(view->dtype)) {
    return Bad("frames", absl::StrCat("dtype ", Sv(DTypeName(view->dtype)),
                                      " is not supported (uint8, or float in [0,1])"));
  }
  if (view->shape.size() != 4 || (view->shape[3] != 1 && view->shape[3] != 3 &&
                                  view->shape[3] != 4)) {
    return Bad("frames", absl::StrCat("shape ", ShapeString(view->shape),
                                      " must be [frames, height, width, 1|3|4]"));
  }
  // The GIF holds about one byte per pixel of every frame: bound the whole
  // clip as one image.
  const int64_t pixels = view->shape[0] * view->shape[1] * view->shape[2];
  if (pixels > limits.max_image_pixels) {
    return Bad("frames", absl::StrCat(view->shape[0], " frames of ", view->shape[1], "x",
                                      view->shape[2], " = ", pixels,
                                      " pixels is more than the limit of ",
                                      limits.max_image_pixels));
  }
  const double fps = video.fps() == 0 ? kDefaultVideoFps : video.fps();
  if (!std::isfinite(fps) || fps < 0) {
    return Bad("fps", absl::StrCat("is ", video.fps(), "; must be finite and > 0 (0 = 4)"));
  }
  absl::StatusOr<std::vector<RawImage>> frames = ImagesFromTensor(*view, ImageLayout::kNHWC);
  if (!frames.ok()) return Annotate(frames.status(), "frames");
  absl::StatusOr<std::string> gif = EncodeAnimatedGif(*frames, fps);
  if (!gif.ok()) return Annotate(gif.status(), "frames");
  tb::Summary::Value value;
  value.set_tag(std::string(tag));
  tb::Summary::Image* image = value.mutable_image();
  image->set_height(static_cast<int>(view->shape[1]));
  image->set_width(static_cast<int>(view->shape[2]));
  image->set_colorspace(static_cast<int>(view->shape[3]));
  image->set_encoded_image_string(*std::move(gif));
  return value;
}

}  // namespace tblog::daemon::convert
