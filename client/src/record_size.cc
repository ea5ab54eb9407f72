#include "record_size.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tblog {

absl::Status CheckRecordSize(const v1::Record& record, size_t bytes, size_t limit) {
  if (bytes <= limit) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "tblog: record \"", absl::CHexEscape(record.tag()), "\" is ", bytes,
      " bytes, more than the ", limit,
      " one record may hold (WriterOptions::max_record_bytes, or less to fit tblogd's "
      "--max-message-size, 64 MiB by default, with 1 MiB for the rest of a request); log it "
      "in smaller pieces (fewer images per call, a sample of the values)"));
}

}  // namespace tblog
