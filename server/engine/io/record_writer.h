// TFRecord framing: u64 length | u32 masked crc(length) | payload | u32 masked
// crc(payload), all little-endian. Knows nothing of files or policy.
#ifndef TBLOG_ENGINE_IO_RECORD_WRITER_H_
#define TBLOG_ENGINE_IO_RECORD_WRITER_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace tblog {

// Bytes a record of `payload_size` bytes takes on disk.
constexpr size_t kRecordHeaderBytes = 12;  // length + its crc
constexpr size_t kRecordFooterBytes = 4;   // payload crc
inline size_t FramedRecordSize(size_t payload_size) {
  return kRecordHeaderBytes + payload_size + kRecordFooterBytes;
}

// Appends the framed record for `payload` to *out.
void AppendFramedRecord(std::string_view payload, std::string* out);

// Writes the framed record for `payload` at `out`, which has room for
// FramedRecordSize(payload.size()) bytes; returns the end of what it wrote.
// For callers that size a buffer once for many records.
char* FrameRecordTo(std::string_view payload, char* out);

}  // namespace tblog

#endif  // TBLOG_ENGINE_IO_RECORD_WRITER_H_
