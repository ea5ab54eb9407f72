// Reads TFRecords from a file, checking both CRCs. Tells a clean end, a torn
// tail (the file ends inside a record: a writer is mid-append or crashed) and
// corruption (a CRC mismatch) apart, as TensorBoard's readers do.
#ifndef TBLOG_ENGINE_RECORD_READER_H_
#define TBLOG_ENGINE_RECORD_READER_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tblog {

class RecordReader {
 public:
  enum class State {
    kRecord,    // *payload holds the next record, both CRCs correct
    kEnd,       // clean end of file: no bytes after the last record
    kTornTail,  // the file ends inside a record (see error())
    kCorrupt,   // a length or payload CRC does not match (see error())
  };

  // Opens `path`; errors name the path.
  static absl::StatusOr<std::unique_ptr<RecordReader>> Open(const std::string& path);
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  // Reads the next record. After kCorrupt, the reader stays in that state.
  // After kEnd or kTornTail, a later call reads on from the same record
  // start, so bytes appended since are picked up (tailing a live file).
  State Next(std::string* payload);

  // Byte offset of the start of the next unread record.
  uint64_t offset() const { return offset_; }
  // Why the last call returned kTornTail or kCorrupt, with the offset.
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

 private:
  RecordReader(std::string path, std::FILE* file);

  std::string path_;
  std::FILE* file_;
  uint64_t offset_ = 0;
  bool corrupt_ = false;
  std::string error_;
};

}  // namespace tblog

#endif  // TBLOG_ENGINE_RECORD_READER_H_
