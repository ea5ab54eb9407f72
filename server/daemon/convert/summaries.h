// The converters of the summary kinds whose record becomes exactly one
// Summary.Value of the record's tag, bounded by the daemon's Limits: images,
// audio, video, text and PR curves (and a mesh, several values of one event). A bad record is INVALID_ARGUMENT naming the
// field; nothing is kept of the arguments after the call, and the converters
// hold no state, so any thread may call them. (Kinds with another result,
// scalars, histograms, hparams, graphs, embeddings and custom scalars, have
// a header each.)
#ifndef TBLOG_DAEMON_CONVERT_SUMMARIES_H_
#define TBLOG_DAEMON_CONVERT_SUMMARIES_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/options.h"
#include "engine/io/tensor_view.h"  // the tb:: alias
#include "tblog/tensorboard/summary.pb.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// Images: a pixel tensor that the engine encodes as PNG, or an encoded
// PNG/JPEG passed through. The tensor style writes TensorBoard 2's image
// summary (up to max_outputs images); the summary-image style writes the
// legacy Summary.Image PyTorch's add_image writes, tiling a batch into one
// grid. Pixels are uint8 or float in [0, 1], shaped as `image.layout` says
// (HW, HWC, CHW, or batched NHWC/NCHW); encoded bytes must carry a PNG or
// JPEG signature and a readable header. Bounded by limits.max_image_pixels
// per image (and per tiled grid) and limits.max_images_per_record per batch.
absl::StatusOr<tb::Summary::Value> ConvertImage(std::string_view tag, const v1::Image& image,
                                                const Limits& limits);

// Audio: float PCM samples encoded as WAV by the engine, in TensorBoard 2's
// audio summary or, with torch_style, the layout of PyTorch's add_audio.
// `audio.samples` must be a float tensor shaped [frames] or [frames,
// channels], with at most limits.max_audio_frames frames, and sample_rate
// finite and > 0. Errors name the field (samples, sample_rate).
absl::StatusOr<tb::Summary::Value> ConvertAudio(std::string_view tag, const v1::Audio& audio,
                                                const Limits& limits);

// Video: frames [T, H, W, C] (C 1, 3 or 4; uint8 or float in [0, 1]) as
// the animated GIF of PyTorch's add_video in a Summary.Image (gif.h
// EncodeAnimatedGif); fps 0 means 4. Each frame is bounded by
// limits.max_image_pixels and the frames by limits.max_images_per_record.
absl::StatusOr<tb::Summary::Value> ConvertVideo(std::string_view tag, const v1::Video& video,
                                                const Limits& limits);

// Mesh: the values of TensorBoard's mesh plugin, "<tag>_VERTEX" and the
// optional "<tag>_FACE" and "<tag>_COLOR" (mesh_summary.h), for one event.
// config_json must be UTF-8 of at most limits.max_text_bytes.
absl::StatusOr<std::vector<tb::Summary::Value>> ConvertMesh(std::string_view tag,
                                                            const v1::Mesh& mesh,
                                                            const Limits& limits);

// Text: markdown, in TensorBoard's text plugin layout or (torch_style)
// PyTorch's add_text one, or a table of strings of rank 1 or 2. Exactly one
// of markdown and table must be set. A table's shape has rank 1 or 2 with
// dims >= 1 and one cell per element, in row-major order; it has no
// torch_style form. Each cell, and all cells together, hold at most
// limits.max_text_bytes.
absl::StatusOr<tb::Summary::Value> ConvertText(std::string_view tag, const v1::Text& text,
                                               const Limits& limits);

// PR curves: either the counts per threshold, written as TensorBoard's
// pr_curve raw_data_pb writes them, or labels and predictions that the
// engine bins into thresholds, written as PyTorch's add_pr_curve writes them.
// Counts: four rows of one length, at most limits.max_pr_thresholds.
// Predictions: float predictions, labels (and optional weights) of as many
// elements, all finite; num_thresholds 0 means PyTorch's default of 127 and
// must lie in [2, limits.max_pr_thresholds].
absl::StatusOr<tb::Summary::Value> ConvertPrCurve(std::string_view tag, const v1::PrCurve& pr,
                                                  const Limits& limits);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_SUMMARIES_H_
