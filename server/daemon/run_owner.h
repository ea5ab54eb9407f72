// Who owns a run, and who is calling.
//
// A caller's identity is the name under which it authenticated: with bearer
// tokens (--auth-token-file), the identity of its token; without, "" for
// every caller, so that all callers are one anonymous owner and only the
// writer binding (writer_binding.h) applies. A run records the identity that
// opened it first (its owner, RunRegistry); opening, writing to, flushing,
// closing and reading a run are then limited to that identity
// (PERMISSION_DENIED), and ListRuns lists the caller's runs only.
//
// The owner outlives the daemon process: a run opened by a named identity
// records it in <run>/.tblogd/<daemon id>.owner (OwnerFilePath), so that
// after a restart (or once the registry dropped the closed run) only that
// identity resumes it. The file holds "sha256:<hex>\n", the SHA-256 of the
// identity, not the identity itself: the run directory is read by whoever
// reads the logs, and an identity may be a secret's name. One file per daemon
// id, as its checkpoint: identities are those of that daemon's token file.
// The anonymous owner ("", no tokens) records nothing; a run without a file
// (or with one torn by a crash as it was first written) is owned by the
// first identity that opens it.
#ifndef TBLOG_DAEMON_RUN_OWNER_H_
#define TBLOG_DAEMON_RUN_OWNER_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/io/file_system.h"

namespace grpc {
class ServerContextBase;
}

namespace tblog::daemon {

// The seam between authentication and ownership: returns the identity of
// the caller of `context` ("" = anonymous). Called on gRPC's threads: must
// not block. The token authentication (auth.h) provides the daemon's; an
// empty function means "no authentication" (every caller is "").
using CallerIdentityFn = std::function<std::string(const grpc::ServerContextBase& context)>;

// The identity of `context`'s caller under `identify` ("" when it is empty).
std::string IdentifyCaller(const CallerIdentityFn& identify,
                           const grpc::ServerContextBase& context);

// OK when `caller` may use the run `run_id` owned by `owner` (the same
// identity); PERMISSION_DENIED naming the run and `action` ("write to",
// "close") otherwise. Never names either identity: they may be secrets'
// names an attacker should not learn.
absl::Status CheckRunOwner(std::string_view owner, std::string_view caller,
                           std::string_view run_id, std::string_view action);

// <run_dir>/.tblogd/<daemon_id>.owner.
std::string OwnerFilePath(std::string_view run_dir, std::string_view daemon_id);

// What OwnerFilePath holds for `owner` (not ""): "sha256:<64 hex digits>\n".
std::string OwnerRecord(std::string_view owner);

// The record of the owner of the run in `run_dir` for daemon `daemon_id`:
// "" when none is recorded (no file, an empty or torn one). An I/O error
// other than NOT_FOUND names the path.
absl::StatusOr<std::string> ReadOwnerRecord(FileSystem& fs, std::string_view run_dir,
                                            std::string_view daemon_id);

// OK when `caller` may open the run whose recorded owner is `record`
// (ReadOwnerRecord: "" = none, anyone may); PERMISSION_DENIED as
// CheckRunOwner otherwise.
absl::Status CheckOwnerRecord(std::string_view record, std::string_view caller,
                              std::string_view run_id);

// Records `owner` (not "") as the owner of the run in `run_dir`: creates
// .tblogd if missing, writes the file and fsyncs it (and the directories it
// created) when `sync`. Errors name the path.
absl::Status WriteOwnerRecord(FileSystem& fs, std::string_view run_dir,
                              std::string_view daemon_id, std::string_view owner, bool sync);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_RUN_OWNER_H_
