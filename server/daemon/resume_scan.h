// Resuming a run after a crash without rewriting what a reader already read.
//
// TensorBoard reads event files while they are written: it keeps each file
// open, reads on from its offset, never re-reads, and takes the files of a
// directory in name order. So once a record is complete in a file it is
// final: the daemon never cuts or removes one. On resume it only cuts a torn
// tail (an incomplete last record, or a CRC mismatch at the tail) off its own
// files, leaves a 0-byte file as it is, and always continues in a new file
// whose name sorts after every event file of the directory.
//
// Which batches the files hold comes from the batch markers
// (daemon/batch_marker.h): the scan reads the daemon's own event files of
// every sub-run past the checkpoint's positions (all of them when there is no
// checkpoint), counts per batch and sub-run the events it finds and whether
// the batch completed there, and reports per writer the last sequence whose
// batch, and every one before it, is whole in the files. A batch held in part
// (or whole, above one the files lack) goes to RunFiles, which skips what
// the files hold when the client resends it: nothing is written twice, even
// after a crash before the run's first checkpoint.
//
// Many daemons, one run: each daemon has an identity (--daemon-id, default
// the host name) that is in its event file names and names its checkpoint;
// it scans, repairs and resumes only its own files, never another daemon's.
#ifndef TBLOG_DAEMON_RESUME_SCAN_H_
#define TBLOG_DAEMON_RESUME_SCAN_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/checkpoint.h"
#include "engine/io/event_file_writer.h"
#include "engine/io/file_system.h"

namespace tblog::daemon {

// The daemon identity of `options`: its hostname, or the machine's host name
// when that is empty.
std::string DaemonIdentity(const EventFileOptions& options);

// OK when `id` can name a daemon: 1..64 of [A-Za-z0-9._-], not starting with
// '.'. The message names the flag.
absl::Status ValidateDaemonId(std::string_view id);

// True when `name` (a base name) is an event file that daemon `daemon_id`
// created: events.out.tfevents.<secs>.<daemon_id>.<pid>.<counter of 6 or
// more digits><any suffix>.
bool IsOwnEventFile(std::string_view name, std::string_view daemon_id);

// The largest <secs> in the names of the event files in `dir` (any writer's),
// 0 when there are none. A new file named with a later second sorts after
// all of them.
uint64_t LatestEventFileSecond(FileSystem& fs, const std::string& dir);

// What a resume found, and what it repaired.
struct ResumeRepair {
  bool had_checkpoint = false;
  // Per writer, the last sequence whose batch (and every earlier one) is
  // whole in the files: what Run continues from.
  std::map<std::string, uint64_t> writer_sequences;
  // For RunFiles (ResumedFiles): batches held in part, and each sub-run's
  // stream position after the scan (its last own file and length).
  ResumedFiles resumed;
  // Per (sub-run, tag), the highest step of the checkpoint's reduced_steps
  // and of the events the scan read past it. Reduced points are ordinary
  // events: the run's RunReductions takes these as its series' last written
  // steps (NoteWritten), so a resent contribution to a point already written
  // counts as late instead of writing the point a second time.
  SeriesSteps last_steps;
  // The same for reduced series only: the checkpoint's reduced_steps and the
  // reduced points the scan read past it. NoteWritten marks these series as
  // reduced, so the run's next checkpoint keeps their steps.
  SeriesSteps reduced_steps;
  // The reduced points pending at the crash, for RunReductions::Restore
  // (daemon/aggregate.h): the checkpoint's pending points, then the
  // contribution records (daemon/contribution_record.h) the scan read past
  // it whose point's event it did not read, each a serialized PartialRecord.
  // Records of a point written since are dropped as the scan reads its event,
  // so this holds about the points pending at the crash, whatever the length
  // of the files read.
  std::vector<std::string> contributions;
  int files_scanned = 0;
  uint64_t bytes_scanned = 0;
  int files_truncated = 0;  // torn tails cut
  uint64_t bytes_removed = 0;
  std::vector<std::string> warnings;  // every cut, and anything odd
};

// Prepares run directory `run_dir` to be written again by daemon `daemon_id`
// (see the file comment). Never follows symlinks; never touches files of
// other daemons or writers. An I/O error leaves the run as it was or with
// some torn tails cut: a retry does the rest.
absl::StatusOr<ResumeRepair> RepairRunForResume(const std::string& run_dir,
                                                const std::string& daemon_id,
                                                FileSystem* fs = FileSystem::Default());

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_RESUME_SCAN_H_
