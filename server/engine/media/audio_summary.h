// Audio summaries: float PCM to 16-bit PCM WAV, as PyTorch's
// SummaryWriter.add_audio writes it (v1 Summary.Audio), and as the v2 "audio"
// plugin tensor. The caller wraps the Value in an Event with step and
// wall_time. Functions are pure and thread-safe.
#ifndef TBLOG_ENGINE_MEDIA_AUDIO_SUMMARY_H_
#define TBLOG_ENGINE_MEDIA_AUDIO_SUMMARY_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog {

// Limits: a WAV holds at most kMaxAudioChannels channels and kMaxAudioBytes
// bytes of 16-bit samples (per clip), well inside RIFF's 32-bit sizes.
inline constexpr int64_t kMaxAudioChannels = 64;
inline constexpr int64_t kMaxAudioBytes = int64_t{256} << 20;
inline constexpr int kDefaultMaxAudioOutputs = 3;

// Encodes one clip as a 44-byte-header PCM WAV (RIFF, "fmt " chunk of 16
// bytes, format 1, 16 bits, then "data"), the bytes Python's wave module
// writes for torch. `samples` is float16/bfloat16/float32/float64 shaped
// [frames] (mono) or [frames, channels] (interleaved on output). Each sample
// is clipped to [-1, 1] (torch clips too, with a warning), multiplied by 32767
// (in the input's precision: float32 unless the input is float64) and
// truncated toward zero, as torch's `(x * 32767).astype("<i2")`.
// INVALID_ARGUMENT for NaN/inf (with its index), a bad dtype or shape, zero
// frames, a sample rate that is not finite, > 0 and < 2^32, or sizes over the
// limits. The header stores the rate rounded to an integer.
absl::StatusOr<std::string> EncodeWav(const TensorView& samples, double sample_rate);

// v1, torch add_audio: Summary.Audio {sample_rate, num_channels,
// length_frames, WAV, content_type "audio/wav"}, no metadata. torch accepts
// mono only; here [frames, channels] is also accepted.
absl::StatusOr<tb::Summary::Value> MakeAudioSummaryV1(std::string_view tag,
                                                      const TensorView& samples,
                                                      double sample_rate);

// v2: DT_STRING rank-1 [k] of WAV clips, plugin "audio" with
// AudioPluginData{encoding: WAV}, data_class BLOB_SEQUENCE (the shape
// tensorboard-format.md §3 asks for when the data class is set). `clips` is
// [k, frames, channels], or one clip shaped [frames] / [frames, channels];
// the first min(k, max_outputs) clips are kept. max_outputs >= 1.
absl::StatusOr<tb::Summary::Value> MakeAudioSummaryV2(std::string_view tag,
                                                      const TensorView& clips,
                                                      double sample_rate,
                                                      int max_outputs = kDefaultMaxAudioOutputs);

}  // namespace tblog

#endif  // TBLOG_ENGINE_MEDIA_AUDIO_SUMMARY_H_
