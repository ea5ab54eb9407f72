// Validation of the names a client chooses (tags, experiment, run and sub-run
// names, run paths) and the run directory naming. Every name that becomes part
// of a path is checked here so that no request can reach outside the log
// directory: see ValidateRelativePath.
#ifndef TBLOG_DAEMON_NAMES_H_
#define TBLOG_DAEMON_NAMES_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/options.h"

namespace tblog::daemon {

// A tag: 1 to limits.max_tag_bytes bytes of valid UTF-8 without control
// characters (C0 including NUL, DEL, C1). "/" is allowed (it groups tags in
// TensorBoard), but no "/"-separated part of it may name ".tblogd" (see
// IsReservedName: an embedding's tag becomes a directory). INVALID_ARGUMENT
// naming the escaped tag and the byte offset of the first bad byte otherwise.
absl::Status ValidateTag(std::string_view tag, const Limits& limits);

// One path component chosen by a client; `what` names it in errors
// ("experiment", "run name", "sub-run"). Rules: non-empty, at most
// limits.max_name_bytes bytes, not "." or "..", no "/" or "\", valid UTF-8,
// no control characters. A leading "-" or "." is allowed: it is a valid file
// name ("-2", ".v2"), and nothing in the daemon passes names to a shell.
// INVALID_ARGUMENT naming `what`, the escaped name and the reason otherwise.
absl::Status ValidatePathComponent(std::string_view name, std::string_view what,
                                   const Limits& limits);

// Names the daemon keeps for itself, which no client-chosen name may use:
//   - ".tblogd" and every name starting with it, in any letter case (a
//     case-insensitive file system maps ".TBLOGD" onto ".tblogd"): each run's
//     own directory (checkpoint.h's kCheckpointDir), and room for the daemon's
//     later files beside it;
//   - "projector_config.pbtxt": the projector's config file, which the daemon
//     writes in a run's and a sub-run's directory (convert/embedding.cc).
// True when `component` (one path component) is one of them.
bool IsReservedName(std::string_view component);

// Refuses a client-chosen path (run_path, experiment, sub-run: "/"-separated)
// any of whose components IsReservedName: INVALID_ARGUMENT naming `what`, the
// path and the component. Paths the daemon builds itself (side files) are
// not checked here.
absl::Status CheckNotReserved(std::string_view path, std::string_view what);

// A relative path of components separated by "/" ("mnist/run1", "eval/top1"):
// not absolute, at most limits.max_path_bytes bytes, no empty component (so no
// "//" and no trailing "/"), each component valid for ValidatePathComponent.
// Since "." and ".." are refused, the path never leaves the directory it is
// joined to. The empty path is refused; callers that allow "no path" check for
// it first.
absl::Status ValidateRelativePath(std::string_view path, std::string_view what,
                                  const Limits& limits);

// "YYYYmmdd-HHMMSS" of `t` in UTC, followed by "-<name>" when name is not
// empty: the directory name of a run in the timestamped layout. `name` is
// expected to be valid for ValidatePathComponent already.
std::string TimestampedRunName(absl::Time t, std::string_view name);

// Short text a user sees (display names, hparam names, titles): at most
// max_bytes bytes of valid UTF-8 without control characters; may be empty.
// INVALID_ARGUMENT naming `what` otherwise.
absl::Status ValidateLabel(std::string_view text, std::string_view what, size_t max_bytes);

// Free text (descriptions, Markdown, table cells): at most max_bytes bytes of
// valid UTF-8; newlines and other control characters are allowed.
absl::Status ValidateFreeText(std::string_view text, std::string_view what, size_t max_bytes);

// `s` quoted for an error message: printable ASCII and valid multi-byte UTF-8
// as they are; quote and backslash escaped; control characters and invalid
// bytes as \n, \t, \xNN. Inputs longer than max_bytes are cut (at a character
// boundary) and end with "...(<size> bytes)" so a huge name stays a short message.
std::string EscapeForMessage(std::string_view s, size_t max_bytes = 96);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_NAMES_H_
