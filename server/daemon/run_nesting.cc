#include "daemon/run_nesting.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/checkpoint.h"
#include "daemon/names.h"

namespace tblog::daemon {
namespace {

// Whether directory `dir` holds the daemon's own directory.
absl::StatusOr<bool> HoldsDaemonDir(FileSystem& fs, const std::string& dir) {
  auto info = fs.Stat(absl::StrCat(dir, "/", kCheckpointDir));
  if (info.ok()) return true;
  if (absl::IsNotFound(info.status())) return false;
  return info.status();
}

}  // namespace

std::vector<std::string_view> ProperAncestors(std::string_view path) {
  std::vector<std::string_view> ancestors;
  for (size_t slash = path.find('/'); slash != std::string_view::npos;
       slash = path.find('/', slash + 1)) {
    ancestors.push_back(path.substr(0, slash));
  }
  return ancestors;
}

absl::Status RunInsideRunError(std::string_view what, std::string_view path,
                               std::string_view outer) {
  return absl::InvalidArgumentError(absl::StrCat(
      Sv(what), " ", EscapeForMessage(path), ": ", EscapeForMessage(outer),
      " is a run, and a run cannot be opened inside another run's directory; write to a "
      "sub-run of it (Record.subrun) or choose a path outside it"));
}

absl::Status RunAroundRunError(std::string_view path, std::string_view inner) {
  return absl::InvalidArgumentError(absl::StrCat(
      "run_path ", EscapeForMessage(path), ": it contains the run ", EscapeForMessage(inner),
      ", and a run cannot be opened around another run; choose a path outside it"));
}

absl::Status CheckNoRunNearOnDisk(FileSystem& fs, const std::string& logdir, std::string_view path,
                                  std::string_view what, bool path_is_parent) {
  std::vector<std::string_view> outer = ProperAncestors(path);
  if (path_is_parent) outer.push_back(path);
  for (std::string_view ancestor : outer) {
    auto holds = HoldsDaemonDir(fs, absl::StrCat(logdir, "/", Sv(ancestor)));
    if (!holds.ok()) return holds.status();
    if (*holds) return RunInsideRunError(what, path, ancestor);
  }
  if (path_is_parent) return absl::OkStatus();
  // Breadth first below `path`; a missing `path` has nothing below it. A
  // directory below it is a run when its listing holds the daemon's
  // directory (one ListDir and one Stat per entry, as the resume's repair).
  std::vector<std::string> dirs = {absl::StrCat(logdir, "/", Sv(path))};
  for (size_t i = 0; i < dirs.size(); ++i) {
    auto names = fs.ListDir(dirs[i]);
    if (!names.ok()) {
      if (i == 0 && absl::IsNotFound(names.status())) return absl::OkStatus();
      return names.status();
    }
    if (i > 0 && std::find(names->begin(), names->end(), kCheckpointDir) != names->end()) {
      return RunAroundRunError(path, std::string_view(dirs[i]).substr(logdir.size() + 1));
    }
    for (const std::string& name : *names) {
      if (name == kCheckpointDir) continue;  // the top's own
      std::string child = absl::StrCat(dirs[i], "/", name);
      auto info = fs.Stat(child);
      if (info.ok() && info->type == FileInfo::Type::kDirectory) dirs.push_back(std::move(child));
    }
  }
  return absl::OkStatus();
}

}  // namespace tblog::daemon
