// Animated GIF (GIF89a) encoding, for video summaries: PyTorch's add_video
// writes a looping GIF into a Summary.Image, and TensorBoard's image
// dashboard plays it. Pure and thread-safe.
#ifndef TBLOG_ENGINE_MEDIA_GIF_H_
#define TBLOG_ENGINE_MEDIA_GIF_H_

#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "engine/media/png.h"  // RawImage

namespace tblog {

// Encodes `frames` (equal height, width and channels; 1 gray, 2 gray+alpha,
// 3 RGB, 4 RGBA, alpha dropped) as one GIF that loops forever, showing each
// frame for round(100 / fps) hundredths of a second (at least 1). Each frame
// has its own 256-entry colour table: a frame with at most 256 distinct
// colours keeps them exactly (gray frames always do); other frames are
// mapped to a fixed palette of 3 bits red, 3 green, 2 blue (no dithering).
// INVALID_ARGUMENT for no frames, frames that differ in size, a bad
// RawImage (png.h ValidateRawImage), a side over 65535 or fps not finite
// and > 0.
absl::StatusOr<std::string> EncodeAnimatedGif(std::span<const RawImage> frames, double fps);

}  // namespace tblog

#endif  // TBLOG_ENGINE_MEDIA_GIF_H_
