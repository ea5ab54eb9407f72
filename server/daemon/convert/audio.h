// Audio records: float PCM samples encoded as WAV by the engine, in
// TensorBoard 2's audio summary or, with torch_style, the layout of PyTorch's
// add_audio.
#ifndef TBLOG_DAEMON_CONVERT_AUDIO_H_
#define TBLOG_DAEMON_CONVERT_AUDIO_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "daemon/options.h"
#include "engine/io/tensor_view.h"  // the tb:: alias
#include "tblog/tensorboard/summary.pb.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// `audio.samples` must be a float tensor shaped [frames] or [frames,
// channels], with at most limits.max_audio_frames frames, and sample_rate
// finite and > 0. Errors name the field (samples, sample_rate).
absl::StatusOr<tb::Summary::Value> ConvertAudio(std::string_view tag, const v1::Audio& audio,
                                                const Limits& limits);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_AUDIO_H_
