#include "daemon/convert/summaries.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/fields.h"
#include "engine/media/audio_summary.h"

namespace tblog::daemon::convert {

absl::StatusOr<tb::Summary::Value> ConvertAudio(std::string_view tag, const v1::Audio& audio,
                                                const Limits& limits) {
  if (!audio.has_samples()) return Bad("samples", "not set");
  absl::StatusOr<TensorView> view = ViewTensor(audio.samples(), "samples", limits);
  if (!view.ok()) return view.status();
  TBLOG_RETURN_IF_ERROR(RequireFloat(*view, "samples"));
  if (view->shape.size() != 1 && view->shape.size() != 2) {
    return Bad("samples", absl::StrCat("shape ", ShapeString(view->shape),
                                       " must be [frames] or [frames, channels]"));
  }
  if (view->shape[0] > limits.max_audio_frames) {
    return Bad("samples", absl::StrCat(view->shape[0], " frames is more than the limit of ",
                                       limits.max_audio_frames));
  }
  const double rate = audio.sample_rate();
  if (!std::isfinite(rate) || rate <= 0) {
    return Bad("sample_rate", absl::StrCat("is ", rate, "; must be finite and > 0"));
  }
  absl::StatusOr<tb::Summary::Value> value = audio.torch_style()
                                                 ? MakeAudioSummaryV1(tag, *view, rate)
                                                 : MakeAudioSummaryV2(tag, *view, rate, 1);
  if (!value.ok()) return Annotate(value.status(), "samples");
  return value;
}

}  // namespace tblog::daemon::convert
