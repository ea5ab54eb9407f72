// Writes one run directory's event files: the policy around RecordWriter.
// File names, the first file_version record, buffering, flushing, fsync,
// rotation past a size limit, re-creating a file that was deleted or moved,
// and errors that stay sticky once the on-disk state is unknown.
//
// Thread safety: none. One owner (the daemon's per-run writer) calls it.
#ifndef TBLOG_ENGINE_IO_EVENT_FILE_WRITER_H_
#define TBLOG_ENGINE_IO_EVENT_FILE_WRITER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/io/file_system.h"
#include "tblog/tensorboard/event.pb.h"

namespace tblog {

enum class SyncPolicy {
  kNever,     // leave durability to the OS
  kOnFlush,   // fsync on every Flush()
  kInterval,  // fsync on Flush() when sync_interval has passed since the last
};

struct EventFileOptions {
  // Appended to the file name, e.g. ".v2" or ".profile-empty".
  std::string filename_suffix;
  // Start a new file once the current one is at least this large; 0 = never.
  // Larger files are fewer to list; smaller ones bound what a reader re-reads.
  uint64_t max_file_bytes = 0;
  // Bytes buffered in memory before they are written to the OS.
  size_t buffer_bytes = 256 * 1024;
  SyncPolicy sync = SyncPolicy::kOnFlush;
  absl::Duration sync_interval = absl::Seconds(5);
  // Unless 0 (or `sync` is kNever), each time this many bytes were handed to
  // the OS since the last time, asks it to start writing them to the disk
  // without waiting (WritableFile::StartWriteback). The fsync that follows
  // (interval, close) then waits on at most about this much instead of on
  // everything written since the last one: ~45 ms for the 100 MB of 1M
  // scalars. Costs a syscall per this many bytes.
  uint64_t writeback_bytes = 0;
  // Unless `sync` is kNever, a new file's name (and the directories made for
  // it) must reach the disk before the file's data is called durable. False:
  // the directories are fsynced as the file is created. True: they are
  // fsynced right after the file's next fsync, so opening a file costs no
  // fsync; what a flush without fsync hands to the OS was never promised to
  // survive a machine crash, and a synced file's name is as durable as with
  // false. The daemon defers them (its flushes must not wait on the disk).
  bool defer_directory_syncs = false;
  // Host name in the file name; empty = gethostname().
  std::string hostname;
  // Written as source_metadata.writer in each file's first event, as
  // TensorBoard's writer does (it puts its module name there).
  std::string source_writer = "tblogd";
  // Clock for file names and the file_version event; tests replace it.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Where the files go. Borrowed: it must outlive every writer using these
  // options. Tests put a fault-injecting one here; the daemon uses this one
  // for all of its files (run directories, side files, checkpoints).
  FileSystem* file_system = FileSystem::Default();
};

struct EventFileStats {
  uint64_t records_written = 0;  // events accepted by Write*, file_version excluded
  uint64_t bytes_written = 0;    // bytes of whole records handed to the OS
  uint64_t files_opened = 0;
  uint64_t syncs = 0;
  // Records that reached a file which was then deleted or moved away before
  // tblog noticed; they are gone from the run.
  uint64_t records_lost = 0;
  // Write() or Flush() calls that failed with an I/O error (see Flush()).
  uint64_t write_errors = 0;
  // Partial records cut from a file after a short write (see Write()).
  uint64_t partial_records_cut = 0;
  // fsyncs of a directory after an entry was created in it (sync != kNever),
  // so a machine crash cannot lose a synced file's name.
  uint64_t directory_syncs = 0;
  // The latest file_version wall_time of the files opened (seconds since the
  // epoch, on options.clock): a checkpoint taken no earlier tells the files
  // created after it from those before.
  double latest_file_time = 0;
};

class EventFileWriter {
 public:
  // Creates directory `dir` if needed and opens a new event file in it named
  // events.out.tfevents.<10-digit secs>.<host>.<pid>.<counter><suffix>; the
  // counter makes names unique within the process even in the same second.
  // Writes the file_version "brain.Event:2" record first. Unless the policy
  // is kNever, fsyncs the directory after creating each file (and its parent
  // when the directory itself was created): once per file, never per write;
  // with options.defer_directory_syncs, at the file's first fsync instead.
  static absl::StatusOr<std::unique_ptr<EventFileWriter>> Create(std::string dir,
                                                                 EventFileOptions options);
  ~EventFileWriter();  // Close()s, ignoring the error (call Close() to see it).
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  // Appends one event. Rotates to a new file first when the current one has
  // reached max_file_bytes. An error means the event was NOT accepted (the
  // caller may offer it again later); an accepted event that could not be
  // handed to the OS stays buffered for the next file, and the I/O error shows
  // at the next call. Fails (and keeps failing) after an I/O error that
  // leaves the file's tail unknown; a later Flush() tries a fresh file.
  //
  // Files hold whole records only: a write that fails after putting part of
  // a record in the file (ENOSPC, EFBIG past RLIMIT_FSIZE) is followed by a
  // truncate back to the last whole record. If that truncate fails too, the
  // writer stays in error and retries the cut at every Flush(); it opens no
  // new file (and the old one stays as it is) before the cut succeeds, unless
  // the old file holds no event, in which case it is removed instead.
  absl::Status Write(const tensorboard::Event& event);
  // Same, for an already-serialized Event.
  absl::Status WriteSerialized(std::string_view event_bytes);
  // Same as `count` calls of WriteSerialized, one per event of `bytes`
  // (serialized Events back to back; event i ends at offset end_of(i) of
  // `bytes`, each end past the previous one), with the same rotation,
  // buffering and errors, but framed in bulk: the buffer grows once per
  // buffer-full of events instead of once per event. *accepted: how many
  // events were taken, all of them unless an error is returned, the error of
  // the first one not taken.
  absl::Status WriteSerializedRun(std::string_view bytes, size_t count,
                                  absl::FunctionRef<size_t(size_t)> end_of, size_t* accepted);

  // Hands buffered bytes to the OS and fsyncs per the policy (always when
  // `sync` is true). Notices a deleted or moved file and starts a new one;
  // records_lost says what went with it.
  absl::Status Flush(bool sync = false);
  // Hands buffered bytes to the OS and never fsyncs, whatever the policy: the
  // records are then visible to readers and survive the process being killed
  // (not the machine). Does nothing when nothing is buffered; otherwise
  // notices a moved file as Flush() does.
  absl::Status WriteOut();

  // Flushes, syncs per policy and closes. Idempotent.
  absl::Status Close();

  const std::string& current_path() const;
  const EventFileStats& stats() const;

 private:
  class Impl;
  explicit EventFileWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tblog

#endif  // TBLOG_ENGINE_IO_EVENT_FILE_WRITER_H_
