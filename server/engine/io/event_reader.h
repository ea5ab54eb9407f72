// Reading event files back: one file's events, and the runs of a logdir found
// the way TensorBoard finds them. Used by tests, `tblog-inspect` and the
// daemon's own checks.
#ifndef TBLOG_ENGINE_IO_EVENT_READER_H_
#define TBLOG_ENGINE_IO_EVENT_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/io/record_reader.h"
#include "tblog/tensorboard/event.pb.h"

namespace tblog {

namespace tb = ::tblog::tensorboard;

// Events of one file, in order. Thread safety: none; one reader per thread.
class EventFileReader {
 public:
  enum class State {
    kEvent,        // *event holds the next event
    kEnd,          // clean end of file
    kTornTail,     // the file ends inside a record; a later Next() retries
    kCorrupt,      // a CRC mismatch; sticky
    kUndecodable,  // a record with correct CRCs that is not an Event; sticky
  };

  // Opens `path`; errors name the path.
  static absl::StatusOr<std::unique_ptr<EventFileReader>> Open(const std::string& path);

  // Reads the next event. After kEnd or kTornTail a later call picks up
  // records appended since; after kCorrupt or kUndecodable it returns the same.
  State Next(tensorboard::Event* event);

  // Offset of the next unread record.
  uint64_t offset() const { return records_->offset(); }
  // Why the last call returned kTornTail, kCorrupt or kUndecodable, with the
  // path and byte offset; empty otherwise.
  const std::string& error() const { return error_; }
  const std::string& path() const { return records_->path(); }

 private:
  explicit EventFileReader(std::unique_ptr<RecordReader> records);

  std::unique_ptr<RecordReader> records_;
  std::string payload_;
  std::string error_;
  bool undecodable_ = false;
};

// True for a file name TensorBoard reads as an event file: the basename
// contains "tfevents".
bool IsEventFileName(std::string_view path);

// A run: a directory that directly holds at least one event file.
struct RunFiles {
  std::string name;                // path relative to the logdir; "." for the logdir itself
  std::string dir;                 // the directory's path
  std::vector<std::string> files;  // full paths, in TensorBoard's (lexicographic) order
};

// Every run under `logdir`, recursively, following directory symlinks (once
// each), sorted by name. NOT_FOUND when `logdir` does not exist, and
// FAILED_PRECONDITION when it is not a directory; subdirectories that cannot
// be read are skipped, as TensorBoard does.
absl::StatusOr<std::vector<RunFiles>> ListRuns(const std::string& logdir);

}  // namespace tblog

#endif  // TBLOG_ENGINE_IO_EVENT_READER_H_
