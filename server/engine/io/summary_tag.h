// The check every summary builder makes of the tag it is given.
#ifndef TBLOG_ENGINE_IO_SUMMARY_TAG_H_
#define TBLOG_ENGINE_IO_SUMMARY_TAG_H_

#include <string_view>

#include "absl/status/status.h"

namespace tblog {

// OK for a tag TensorBoard can show; INVALID_ARGUMENT "summary tag is empty"
// otherwise. (Names the daemon validates further, for paths and UTF-8, in
// daemon/names.h.)
inline absl::Status CheckSummaryTag(std::string_view tag) {
  if (tag.empty()) return absl::InvalidArgumentError("summary tag is empty");
  return absl::OkStatus();
}

}  // namespace tblog

#endif  // TBLOG_ENGINE_IO_SUMMARY_TAG_H_
