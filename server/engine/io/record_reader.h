// Reads TFRecords from a file, checking both CRCs. Tells a clean end, a torn
// tail (the file ends inside a record: a writer is mid-append or crashed) and
// corruption (a CRC mismatch) apart, as TensorBoard's readers do. Reads go
// through a buffer of kBufferBytes, filled from a FileSystem's ReadableFile;
// records larger than that are read whole into the payload once the file is
// known to hold them.
#ifndef TBLOG_ENGINE_IO_RECORD_READER_H_
#define TBLOG_ENGINE_IO_RECORD_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/io/file_system.h"

namespace tblog {

class RecordReader {
 public:
  static constexpr size_t kBufferBytes = size_t{1} << 20;

  enum class State {
    kRecord,    // *payload holds the next record, both CRCs correct
    kEnd,       // clean end of file: no bytes after the last record
    kTornTail,  // the file ends inside a record (see error())
    kCorrupt,   // a length or payload CRC does not match (see error())
  };

  // Opens `path` on `fs` (borrowed; it must outlive the reader); errors
  // name the path. Reading starts at `start_offset`, which must be the start
  // of a record (a position a writer or an earlier reader reported).
  static absl::StatusOr<std::unique_ptr<RecordReader>> Open(
      const std::string& path, FileSystem* fs = FileSystem::Default(), uint64_t start_offset = 0);
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  // Reads the next record. After kCorrupt, the reader stays in that state.
  // After kEnd or kTornTail, a later call reads the file again from the same
  // record start, so bytes appended since are picked up (tailing a live
  // file). A read error is reported as kTornTail, with errno in error().
  State Next(std::string* payload);

  // Byte offset of the start of the next unread record.
  uint64_t offset() const { return offset_; }
  // Why the last call returned kTornTail or kCorrupt, with the offset.
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

 private:
  RecordReader(std::string path, std::unique_ptr<ReadableFile> file, uint64_t start_offset);

  // Makes the buffer hold at least `bytes` bytes from offset_ if the file
  // has them; returns how many it holds (possibly fewer), or -1 on a read
  // error (error_ set).
  int64_t Buffer(size_t bytes);
  // Forgets buffered bytes past offset_, so that the next call reads them
  // from the file again (a repaired torn tail may differ).
  void DropUnconsumed();
  State TornTail(std::string message);

  std::string path_;
  std::unique_ptr<ReadableFile> file_;
  uint64_t offset_ = 0;
  std::vector<char> buffer_;
  uint64_t buffer_offset_ = 0;  // file offset of buffer_[0]
  size_t buffer_size_ = 0;      // valid bytes in buffer_
  bool corrupt_ = false;
  std::string error_;
};

}  // namespace tblog

#endif  // TBLOG_ENGINE_IO_RECORD_READER_H_
