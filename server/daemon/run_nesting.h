// Runs do not nest. A run's directory belongs to it and its sub-runs: a run
// opened inside another run's directory would have its event files read as
// the outer run's sub-run by TensorBoard, and repaired (cut back to the
// outer run's checkpoint) when the outer run resumes; and a run opened
// around an existing run would take that run's directory for its sub-run.
// So OpenRun refuses a run_path (or an experiment) below a run, and a
// run_path above one. A directory is a run when the registry knows a run
// there (open or closed, in this daemon process) or, on disk, when it holds
// the daemon's own directory (checkpoint.h's kCheckpointDir, written by every
// run that has written anything).
#ifndef TBLOG_DAEMON_RUN_NESTING_H_
#define TBLOG_DAEMON_RUN_NESTING_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "engine/io/file_system.h"

namespace tblog::daemon {

// The proper ancestors of relative path `path`, outermost first:
// "a", "a/b" for "a/b/c".
std::vector<std::string_view> ProperAncestors(std::string_view path);

// INVALID_ARGUMENT: `what` `path` would be inside the run `outer`.
absl::Status RunInsideRunError(std::string_view what, std::string_view path,
                               std::string_view outer);
// INVALID_ARGUMENT: run_path `path` would contain the run `inner`.
absl::Status RunAroundRunError(std::string_view path, std::string_view inner);

// The disk half of the check, for `path` relative to `logdir` (`what` names
// it in errors: "run_path", "experiment"): no proper ancestor of `path`, nor
// `path` itself when `path_is_parent` (an experiment, under which a new run
// goes), holds the daemon's directory; and, unless `path_is_parent`, no
// directory below `path` does (the whole tree is walked, symlinks not
// followed, as a resume's repair walks it). Missing directories are fine.
// I/O errors other than NOT_FOUND are returned.
absl::Status CheckNoRunNearOnDisk(FileSystem& fs, const std::string& logdir, std::string_view path,
                                  std::string_view what, bool path_is_parent);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_RUN_NESTING_H_
