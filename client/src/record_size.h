// The largest record the client sends. A record travels in one request, and
// tblogd refuses a request above its --max-message-size (64 MiB by default)
// with RESOURCE_EXHAUSTED before reading it: a code the stream retries, so a
// record that can never fit would be resent forever and block the records
// behind it. The Writer refuses such a record when it is logged instead, as
// the Python client does (client/python/tblog/writer.py, _MAX_RECORD_BYTES).
#ifndef TBLOG_CLIENT_SRC_RECORD_SIZE_H_
#define TBLOG_CLIENT_SRC_RECORD_SIZE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog {

// OK when `record`, `bytes` long once encoded, fits `limit`
// (WriterOptions::max_record_bytes); INVALID_ARGUMENT naming its tag, its
// size and the limit otherwise. Thread-safe.
absl::Status CheckRecordSize(const v1::Record& record, size_t bytes, size_t limit);

}  // namespace tblog

#endif  // TBLOG_CLIENT_SRC_RECORD_SIZE_H_
