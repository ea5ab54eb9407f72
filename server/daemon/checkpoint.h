// A daemon's checkpoint of one run: the last batch sequence of each writer
// whose batch is wholly in its event files, the batches it holds only in
// part (or above a missing one), and where each sub-run's stream of its own
// event files stood. It is a fast start point for the resume scan
// (daemon/resume_scan.h), which reads only past it; it never makes the
// daemon cut or remove complete records.
//
// One per daemon: <run>/.tblogd/<daemon id>.checkpoint, so that any number of
// daemons (one per node, say) write one run on a shared file system without
// touching each other's checkpoint. A legacy <run>/.tblogd/checkpoint (tblogd
// before daemon identities) is read when the daemon has none of its own.
//
// Rewritten in place after every flush of the run (written over from offset
// 0, then cut: RewriteFile), fsynced when the flush was a sync. All I/O goes
// through a FileSystem (borrowed; it outlives the calls and the
// CheckpointFile). Format (text, one item per line, names percent-encoded):
//   tblogd-checkpoint 2                       (1: no batch lines)
//   writer <writer-id> <last sequence wholly in the files>
//   file <sub-run or "."> <event file name> <length in bytes>
//   batch <writer-id> <sequence> <sub-runs it completed in, 0 = unknown>
//         <sub-run> <events it holds there> <1: complete there, 0: not>
//   step <sub-run> <tag> <last reduced step written>   (reductions, see below)
//   pending <base64 of a tblog.v1.Record>     (a reduced point still pending)
//   time <seconds since the epoch, %.17g>        (optional)
//   end <crc32c of the lines above, hex>
// (a batch line is one line; one per sub-run a batch has events in.)
// A step line is the last step the run's reductions (daemon/aggregate.h)
// handed out for one series before the checkpoint: the resume scan reads the
// files only past the checkpoint, and a contribution resent after a crash to
// a point written before it must count as late, not write the point again.
// A pending line is the state of a reduced point whose group was not
// complete at the checkpoint, with its contributors, as a contribution record
// holds it (daemon/contribution_record.h): the contribution records of the
// files before the checkpoint's positions are not read again.
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
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/batch_marker.h"
#include "engine/io/file_system.h"

namespace tblog::daemon {

inline constexpr char kCheckpointDir[] = ".tblogd";
inline constexpr char kLegacyCheckpointFile[] = "checkpoint";
inline constexpr char kCheckpointSuffix[] = ".checkpoint";

// What the event files of one sub-run hold of one batch.
struct BatchPart {
  uint64_t events = 0;    // its events there
  bool complete = false;  // an end marker says the batch completed there
  bool operator==(const BatchPart&) const = default;
};

// A batch the files hold in part, or wholly but above a sequence they lack
// (files of several sub-runs reach the disk in any order). A resent batch
// writes only what its parts lack.
struct RecoveredBatch {
  std::map<std::string, BatchPart> parts;  // by sub-run ("" = the run directory)
  uint32_t parts_expected = 0;             // sub-runs it completed in; 0 = unknown
  // Every sub-run it put events in says so.
  bool Complete() const;
  bool operator==(const RecoveredBatch&) const = default;
};
using RecoveredBatches = std::map<BatchKey, RecoveredBatch>;

// Per series (sub-run, tag), a step: the last reduced point written
// (CheckpointState::reduced_steps, ResumeRepair::last_steps).
using SeriesSteps = std::map<std::pair<std::string, std::string>, int64_t>;

struct CheckpointState {
  struct EventFile {
    std::string subrun;     // "" = the run directory itself
    std::string file_name;  // base name of the sub-run's current event file
    uint64_t length = 0;    // its bytes handed to the OS at the checkpoint
    bool operator==(const EventFile&) const = default;
  };
  std::map<std::string, uint64_t> writer_sequences;  // writer id -> last written sequence
  std::vector<EventFile> files;                      // one per sub-run
  RecoveredBatches batches;  // held in part (before the files' positions)
  SeriesSteps reduced_steps;  // the reductions' last steps handed out
  // The reductions' pending points (RunReductions::PendingRecords):
  // serialized PartialRecords.
  std::vector<std::string> pending_points;
  // When it was taken, on the event files' clock, and never earlier than the
  // file_version wall_time of any event file the run created before it. For
  // people and tools reading it (the resume goes by positions, not times).
  // 0 = unknown.
  double time = 0;
  bool operator==(const CheckpointState&) const = default;
};

std::string EncodeCheckpoint(const CheckpointState& state);
// DATA_LOSS when the text is not a whole checkpoint (bad CRC, no end line).
absl::StatusOr<CheckpointState> DecodeCheckpoint(std::string_view text);

// What a resumed run's RunFiles starts from (daemon/resume_scan.h).
struct ResumedFiles {
  RecoveredBatches batches;  // held in part: a resend writes only what they lack
  // Per sub-run, the end of the daemon's own files after the resume; the
  // next checkpoint carries them over for sub-runs it does not write.
  std::vector<CheckpointState::EventFile> files;
};

// The checkpoint file of one run. Thread safety: none (the run's writer, one
// at a time, owns it).
class CheckpointFile {
 public:
  // Creates <run_dir>/.tblogd if needed and opens (creates) the checkpoint
  // file of daemon `daemon_id`, refusing symlinks at either; fsyncs the
  // directory of whatever it created when `sync_directories`. Errors name
  // the path.
  static absl::StatusOr<std::unique_ptr<CheckpointFile>> Open(
      const std::string& run_dir, const std::string& daemon_id, bool sync_directories = true,
      FileSystem* fs = FileSystem::Default());
  CheckpointFile(const CheckpointFile&) = delete;
  CheckpointFile& operator=(const CheckpointFile&) = delete;

  // Replaces the file's contents with `state`; fsyncs when `sync`. On an
  // error the file holds the previous checkpoint, the new one (only the
  // fsync failed), or a mix that ReadCheckpoint reports as DATA_LOSS (a
  // resume then scans all of the daemon's event files). Raises
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

// The path of daemon `daemon_id`'s checkpoint of `run_dir`.
std::string CheckpointPath(const std::string& run_dir, const std::string& daemon_id);

// Reads daemon `daemon_id`'s checkpoint of `run_dir` (or, when it has none,
// the legacy one). nullopt when there is none; DATA_LOSS when it is torn or
// corrupt; other errors name the path.
absl::StatusOr<std::optional<CheckpointState>> ReadCheckpoint(
    const std::string& run_dir, const std::string& daemon_id,
    FileSystem* fs = FileSystem::Default());

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_CHECKPOINT_H_
