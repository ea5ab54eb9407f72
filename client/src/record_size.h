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

// 64 MiB, the daemon's default --max-message-size, less 1 MiB for the rest of
// the batch the record is sealed in (a batch is sealed once it holds
// WriterOptions::max_batch_bytes, 1 MiB by default).
inline constexpr size_t kMaxRecordBytes = (size_t{64} << 20) - (size_t{1} << 20);

// OK when `record`, `bytes` long once encoded, may be sent; INVALID_ARGUMENT
// naming its tag, its size and the limit otherwise. Thread-safe.
absl::Status CheckRecordSize(const v1::Record& record, size_t bytes);

}  // namespace tblog

#endif  // TBLOG_CLIENT_SRC_RECORD_SIZE_H_
