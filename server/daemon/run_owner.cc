#include "daemon/run_owner.h"

#include <openssl/sha.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "daemon/checkpoint.h"
#include "base/status_util.h"
#include "daemon/names.h"

namespace tblog::daemon {

std::string IdentifyCaller(const CallerIdentityFn& identify,
                           const grpc::ServerContextBase& context) {
  return identify ? identify(context) : std::string();
}

absl::Status CheckRunOwner(std::string_view owner, std::string_view caller,
                           std::string_view run_id, std::string_view action) {
  if (owner == caller) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("run ", EscapeForMessage(run_id), " was opened by another identity; only it ",
                   "may ", Sv(action), " the run"));
}

std::string OwnerFilePath(std::string_view run_dir, std::string_view daemon_id) {
  return absl::StrCat(Sv(run_dir), "/", kCheckpointDir, "/", Sv(daemon_id), ".owner");
}

std::string OwnerRecord(std::string_view owner) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(owner.data()), owner.size(), digest);
  return absl::StrCat("sha256:",
                      absl::BytesToHexString(absl::string_view(
                          reinterpret_cast<const char*>(digest), sizeof digest)),
                      "\n");
}

absl::StatusOr<std::string> ReadOwnerRecord(FileSystem& fs, std::string_view run_dir,
                                            std::string_view daemon_id) {
  const std::string path = OwnerFilePath(run_dir, daemon_id);
  absl::StatusOr<std::string> contents = ReadFileToString(fs, path);
  if (absl::IsNotFound(contents.status())) return std::string();
  if (!contents.ok()) return Annotate(contents.status(), absl::StrCat("reading ", path));
  // Anything but a whole record is a write a crash cut short: no owner yet.
  if (contents->size() != OwnerRecord("").size() || !contents->starts_with("sha256:") ||
      !contents->ends_with("\n")) {
    return std::string();
  }
  return *std::move(contents);
}

absl::Status CheckOwnerRecord(std::string_view record, std::string_view caller,
                              std::string_view run_id) {
  if (record.empty()) return absl::OkStatus();
  return record == OwnerRecord(caller) ? absl::OkStatus()
                                       : CheckRunOwner(record, caller, run_id, "open");
}

absl::Status WriteOwnerRecord(FileSystem& fs, std::string_view run_dir,
                              std::string_view daemon_id, std::string_view owner, bool sync) {
  // The run's state directory, shared with the checkpoint (checkpoint.h):
  // made here when the owner comes before the first checkpoint.
  const std::string dir = absl::StrCat(Sv(run_dir), "/", kCheckpointDir);
  const absl::Status made = fs.CreateDir(dir);
  if (absl::IsAlreadyExists(made)) {
    auto info = fs.Stat(dir);  // never through a symlink
    if (!info.ok() || info->type != FileInfo::Type::kDirectory) {
      return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
    }
  } else if (!made.ok()) {
    return Annotate(made, absl::StrCat("creating ", dir));
  } else if (sync) {
    TBLOG_RETURN_IF_ERROR(Annotate(fs.SyncDir(std::string(run_dir)),
                                   absl::StrCat("syncing ", Sv(run_dir))));
  }
  const std::string path = OwnerFilePath(run_dir, daemon_id);
  const bool existed = fs.Stat(path).ok();
  TBLOG_RETURN_IF_ERROR(
      Annotate(RewriteFile(fs, path, OwnerRecord(owner), sync), absl::StrCat("writing ", path)));
  if (!existed && sync) {
    TBLOG_RETURN_IF_ERROR(Annotate(fs.SyncDir(dir), absl::StrCat("syncing ", dir)));
  }
  return absl::OkStatus();
}

}  // namespace tblog::daemon
