// The checks every summary builder makes of the arguments all of them share:
// the tag, and (for the kinds that keep a batch) max_outputs.
#ifndef TBLOG_ENGINE_IO_SUMMARY_TAG_H_
#define TBLOG_ENGINE_IO_SUMMARY_TAG_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tblog {

// OK for a tag TensorBoard can show; INVALID_ARGUMENT "summary tag is empty"
// otherwise. (Names the daemon validates further, for paths and UTF-8, in
// daemon/names.h.)
inline absl::Status CheckSummaryTag(std::string_view tag) {
  if (tag.empty()) return absl::InvalidArgumentError("summary tag is empty");
  return absl::OkStatus();
}

// OK for max_outputs >= 1 (how many items of a batch an image or audio
// summary keeps); INVALID_ARGUMENT "max_outputs is N; must be >= 1" otherwise.
inline absl::Status CheckMaxOutputs(int max_outputs) {
  if (max_outputs < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_outputs is ", max_outputs, "; must be >= 1"));
  }
  return absl::OkStatus();
}

}  // namespace tblog

#endif  // TBLOG_ENGINE_IO_SUMMARY_TAG_H_
