#include "record_size.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tblog {

absl::Status CheckRecordSize(const v1::Record& record, size_t bytes) {
  if (bytes <= kMaxRecordBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "tblog: record \"", absl::CHexEscape(record.tag()), "\" is ", bytes,
      " bytes, more than the ", kMaxRecordBytes,
      " one record may hold (a request is at most 64 MiB, tblogd's default "
      "--max-message-size); log it in smaller pieces (fewer images per call, a sample of "
      "the values)"));
}

}  // namespace tblog
