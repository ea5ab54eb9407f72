// A run's checkpoint: which batches of which writers its event files hold,
// and how long each sub-run's current event file was at that moment. Lets a
// resumed run drop whatever was written after the last checkpoint (a torn
// record, or records of batches the client will resend), so every batch is
// in the files exactly once across daemon crashes.
//
// File: <run>/.tblogd/checkpoint, rewritten in place after every flush of the
// run (written over from offset 0, then cut: RewriteFile), fsynced when the
// flush was a sync. All I/O goes through a FileSystem (borrowed; it outlives
// the calls and the CheckpointFile). Format (text,
// one item per line, names percent-encoded):
//   tblogd-checkpoint 1
//   writer <writer-id> <last written sequence>
//   file <sub-run or "."> <event file name> <length in bytes>
//   time <seconds since the epoch, %.17g>        (optional)
//   end <crc32c of the lines above, hex>
// Bytes after the "end" line are ignored (a shorter rewrite whose ftruncate
// did not happen).
#ifndef TBLOG_DAEMON_CHECKPOINT_H_
#define TBLOG_DAEMON_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/io/file_system.h"

namespace tblog::daemon {

inline constexpr char kCheckpointDir[] = ".tblogd";
inline constexpr char kCheckpointFile[] = "checkpoint";

struct CheckpointState {
  struct EventFile {
    std::string subrun;     // "" = the run directory itself
    std::string file_name;  // base name of the sub-run's current event file
    uint64_t length = 0;    // its bytes handed to the OS at the checkpoint
    bool operator==(const EventFile&) const = default;
  };
  std::map<std::string, uint64_t> writer_sequences;  // writer id -> last written sequence
  std::vector<EventFile> files;                      // one per sub-run
  // When it was taken, on the event files' clock, and never earlier than the
  // file_version wall_time of any event file the run created before it: an
  // event file of tblogd's with a later one was created after it. 0 = unknown.
  double time = 0;
  bool operator==(const CheckpointState&) const = default;
};

std::string EncodeCheckpoint(const CheckpointState& state);
// DATA_LOSS when the text is not a whole checkpoint (bad CRC, no end line).
absl::StatusOr<CheckpointState> DecodeCheckpoint(std::string_view text);

// The checkpoint file of one run. Thread safety: none (the run's writer, one
// at a time, owns it).
class CheckpointFile {
 public:
  // Creates <run_dir>/.tblogd if needed and opens (creates) the checkpoint
  // file, refusing symlinks at either; fsyncs the directory of whatever it
  // created when `sync_directories`. Errors name the path.
  static absl::StatusOr<std::unique_ptr<CheckpointFile>> Open(
      const std::string& run_dir, bool sync_directories = true,
      FileSystem* fs = FileSystem::Default());
  CheckpointFile(const CheckpointFile&) = delete;
  CheckpointFile& operator=(const CheckpointFile&) = delete;

  // Replaces the file's contents with `state`; fsyncs when `sync`. On an
  // error the file holds the previous checkpoint, the new one (only the
  // fsync failed), or a mix that ReadCheckpoint reports as DATA_LOSS (a
  // resume then scans the event files). Raises
  // state.time to the previous checkpoint's (this one's or, for a resumed run,
  // the one found at Open), so a clock stepped back cannot make older files
  // look newer than the checkpoint.
  absl::Status Write(CheckpointState state, bool sync);

  const std::string& path() const { return path_; }

 private:
  CheckpointFile(std::string path, FileSystem* fs, double previous_time)
      : path_(std::move(path)), fs_(fs), previous_time_(previous_time) {}
  std::string path_;
  FileSystem* fs_;
  double previous_time_;  // the latest CheckpointState::time written or found
};

// Reads <run_dir>/.tblogd/checkpoint. nullopt when there is none; DATA_LOSS
// when it is torn or corrupt; other errors name the path.
absl::StatusOr<std::optional<CheckpointState>> ReadCheckpoint(
    const std::string& run_dir, FileSystem* fs = FileSystem::Default());

// What RepairRunForResume did.
struct ResumeRepair {
  bool had_checkpoint = false;
  std::map<std::string, uint64_t> writer_sequences;  // from the checkpoint
  int files_truncated = 0;
  int files_removed = 0;  // event files created after the checkpoint
  uint64_t bytes_removed = 0;
  std::vector<std::string> warnings;  // e.g. a file shorter than its checkpoint
};

// Prepares an existing run directory to be written again (new event files are
// always started; old ones are never appended to). With a checkpoint: cuts
// each listed event file back to its recorded length, and removes every other
// event file of the run (any sub-run, listed or not) that tblogd created after
// the checkpoint (its file_version event says writer "tblogd" and has a later
// wall_time): those hold only batches the checkpoint does not count, which
// the clients resend. Files of other writers, and tblogd's older files, are
// left alone. Without a checkpoint (or with a corrupt one): scans the newest
// event file of every directory of the run and cuts a torn or corrupt tail.
// Never follows symlinks. Every cut or removal is listed in `warnings`.
absl::StatusOr<ResumeRepair> RepairRunForResume(const std::string& run_dir,
                                                FileSystem* fs = FileSystem::Default());

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_CHECKPOINT_H_
