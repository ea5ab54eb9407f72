#include "engine/media/audio_summary.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "engine/io/summary_tag.h"
#include "base/wire.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {
namespace {

void AppendLe16(std::string* out, uint32_t v) { wire::AppendLittleEndian(v, 2, out); }
void AppendLe32(std::string* out, uint32_t v) { wire::AppendLittleEndian(v, 4, out); }

bool IsFloat(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat64 || dtype == DType::kFloat16 ||
         dtype == DType::kBfloat16;
}

absl::Status CheckSampleRate(double sample_rate) {
  // The range check comes before llround, which is undefined beyond long long.
  if (!std::isfinite(sample_rate) || sample_rate <= 0 || sample_rate >= 4294967295.0 ||
      std::llround(sample_rate) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample rate ", sample_rate, " Hz is not a positive number below 2^32"));
  }
  return absl::OkStatus();
}

// One clip: `count` = frames * channels samples of `samples` starting at
// element `first`, already validated.
absl::StatusOr<std::string> EncodeClip(const TensorView& samples, int64_t first, int64_t frames,
                                       int64_t channels, double sample_rate) {
  if (frames < 1) return absl::InvalidArgumentError("audio clip has no frames");
  if (channels < 1 || channels > kMaxAudioChannels) {
    return absl::InvalidArgumentError(absl::StrCat("audio has ", channels,
                                                   " channels; expected 1..", kMaxAudioChannels));
  }
  if (frames > kMaxAudioBytes / (2 * channels)) {
    return absl::InvalidArgumentError(absl::StrCat("audio clip of ", frames, " frames x ", channels,
                                                   " channels exceeds the limit of ", kMaxAudioBytes,
                                                   " bytes of 16-bit samples"));
  }
  const uint32_t data_bytes = static_cast<uint32_t>(frames * channels * 2);
  const uint32_t rate = static_cast<uint32_t>(std::llround(sample_rate));
  const uint32_t block_align = static_cast<uint32_t>(channels * 2);
  std::string wav;
  wav.reserve(44 + data_bytes);
  wav.append("RIFF");
  AppendLe32(&wav, 36 + data_bytes);
  wav.append("WAVEfmt ");
  AppendLe32(&wav, 16);  // fmt chunk size
  AppendLe16(&wav, 1);   // PCM
  AppendLe16(&wav, static_cast<uint32_t>(channels));
  AppendLe32(&wav, rate);
  AppendLe32(&wav, rate * block_align);  // byte rate
  AppendLe16(&wav, block_align);
  AppendLe16(&wav, 16);  // bits per sample
  wav.append("data");
  AppendLe32(&wav, data_bytes);
  const bool wide = samples.dtype == DType::kFloat64;
  for (int64_t i = first; i < first + frames * channels; ++i) {
    const double x = samples.ElementAsDouble(i);
    if (!std::isfinite(x)) {
      return absl::InvalidArgumentError(
          absl::StrCat("audio sample at flat index ", i, " is ", x, "; must be finite"));
    }
    // torch computes in the array's precision: float64 stays double, others float32.
    const int16_t pcm = wide ? static_cast<int16_t>(std::clamp(x, -1.0, 1.0) * 32767.0)
                             : static_cast<int16_t>(std::clamp(static_cast<float>(x), -1.0f, 1.0f) *
                                                    32767.0f);
    AppendLe16(&wav, static_cast<uint16_t>(pcm));
  }
  return wav;
}

// Frames and channels of a single clip shaped [frames] or [frames, channels].
absl::Status ClipShape(const TensorView& samples, int64_t* frames, int64_t* channels) {
  TBLOG_RETURN_IF_ERROR(samples.Validate());
  if (!IsFloat(samples.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("audio samples are ", Sv(DTypeName(samples.dtype)),
                     "; expected float16, bfloat16, float32 or float64 in [-1, 1]"));
  }
  if (samples.shape.size() == 1) {
    *frames = samples.shape[0];
    *channels = 1;
  } else if (samples.shape.size() == 2) {
    *frames = samples.shape[0];
    *channels = samples.shape[1];
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "audio clip has rank ", samples.shape.size(), "; expected [frames] or [frames, channels]"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> EncodeWav(const TensorView& samples, double sample_rate) {
  TBLOG_RETURN_IF_ERROR(CheckSampleRate(sample_rate));
  int64_t frames = 0;
  int64_t channels = 0;
  TBLOG_RETURN_IF_ERROR(ClipShape(samples, &frames, &channels));
  return EncodeClip(samples, 0, frames, channels, sample_rate);
}

absl::StatusOr<tb::Summary::Value> MakeAudioSummaryV1(std::string_view tag,
                                                      const TensorView& samples,
                                                      double sample_rate) {
  TBLOG_RETURN_IF_ERROR(CheckSummaryTag(tag));
  absl::StatusOr<std::string> wav = EncodeWav(samples, sample_rate);
  if (!wav.ok()) return wav.status();
  tb::Summary::Value value;
  value.set_tag(std::string(tag));
  tb::Summary::Audio* audio = value.mutable_audio();
  audio->set_sample_rate(static_cast<float>(sample_rate));
  audio->set_num_channels(samples.shape.size() == 2 ? samples.shape[1] : 1);
  audio->set_length_frames(samples.shape[0]);
  audio->set_encoded_audio_string(*std::move(wav));
  audio->set_content_type("audio/wav");
  return value;
}

absl::StatusOr<tb::Summary::Value> MakeAudioSummaryV2(std::string_view tag,
                                                      const TensorView& clips,
                                                      double sample_rate, int max_outputs) {
  TBLOG_RETURN_IF_ERROR(CheckSummaryTag(tag));
  TBLOG_RETURN_IF_ERROR(CheckSampleRate(sample_rate));
  TBLOG_RETURN_IF_ERROR(CheckMaxOutputs(max_outputs));
  int64_t count = 1;
  int64_t frames = 0;
  int64_t channels = 0;
  if (clips.shape.size() == 3) {
    TBLOG_RETURN_IF_ERROR(clips.Validate());
    if (!IsFloat(clips.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat("audio samples are ", Sv(DTypeName(clips.dtype)),
                                                     "; expected a float type"));
    }
    count = clips.shape[0];
    frames = clips.shape[1];
    channels = clips.shape[2];
    if (count < 1) return absl::InvalidArgumentError("audio batch has no clips");
  } else {
    TBLOG_RETURN_IF_ERROR(ClipShape(clips, &frames, &channels));
  }
  const int64_t kept = std::min<int64_t>(count, max_outputs);
  tb::Summary::Value value;
  value.set_tag(std::string(tag));
  tb::TensorProto* tensor = value.mutable_tensor();
  tensor->set_dtype(tb::DT_STRING);
  tensor->mutable_tensor_shape()->add_dim()->set_size(kept);
  for (int64_t k = 0; k < kept; ++k) {
    absl::StatusOr<std::string> wav =
        EncodeClip(clips, k * frames * channels, frames, channels, sample_rate);
    if (!wav.ok()) return Annotate(wav.status(), absl::StrCat("audio clip ", k));
    tensor->add_string_val(*std::move(wav));
  }
  tb::AudioPluginData content;
  content.set_encoding(tb::AudioPluginData::WAV);
  tb::SummaryMetadata* metadata = value.mutable_metadata();
  metadata->mutable_plugin_data()->set_plugin_name("audio");
  metadata->mutable_plugin_data()->set_content(content.SerializeAsString());
  metadata->set_data_class(tb::DATA_CLASS_BLOB_SEQUENCE);
  return value;
}

}  // namespace tblog
