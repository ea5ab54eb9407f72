#include "daemon/permissions.h"

#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_util.h"

namespace tblog::daemon {

absl::StatusOr<uint32_t> ParseMode(std::string_view text) {
  std::string_view digits = text;
  if (digits.starts_with("0o") || digits.starts_with("0O")) digits.remove_prefix(2);
  uint32_t mode = 0;
  bool octal = !digits.empty() && digits.size() <= 4;
  for (char c : digits) {
    if (c < '0' || c > '7') octal = false;
    else mode = mode * 8 + static_cast<uint32_t>(c - '0');
  }
  if (!octal) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", Sv(text), "' is not an octal mode (e.g. 0660)"));
  }
  if (mode > 0777) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", Sv(text), "' has bits above 0777 (setuid, setgid, sticky), which tblogd never sets"));
  }
  return mode;
}

std::string FormatMode(uint32_t mode) { return absl::StrFormat("%04o", mode); }

absl::StatusOr<gid_t> ResolveGroup(const std::string& group) {
  uint32_t number = 0;
  if (absl::SimpleAtoi(group, &number)) return static_cast<gid_t>(number);
  std::vector<char> buffer(4096);
  for (;;) {
    struct group entry {};
    struct group* found = nullptr;
    const int error = ::getgrnam_r(group.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (found != nullptr) return found->gr_gid;
    if (error != 0) return absl::ErrnoToStatus(error, absl::StrCat("looking up group ", group));
    return absl::NotFoundError(absl::StrCat("no group named '", group, "' (a name or a gid)"));
  }
}

absl::StatusOr<gid_t> ResolveSocketGroup(const std::string& group) {
  absl::StatusOr<gid_t> gid = ResolveGroup(group);
  if (!gid.ok() || ::geteuid() == 0 || *gid == ::getegid()) return gid;
  const int count = ::getgroups(0, nullptr);
  std::vector<gid_t> groups(static_cast<size_t>(std::max(count, 0)));
  if (count > 0 && ::getgroups(count, groups.data()) == count &&
      std::find(groups.begin(), groups.end(), *gid) != groups.end()) {
    return gid;
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "cannot give the unix socket to group ", group, " (gid ", *gid, "): tblogd's user (uid ",
      ::geteuid(), ") must be a member of that group"));
}

mode_t UnixSocketBindUmask(const std::string& path, uint32_t mode, std::optional<gid_t> gid) {
  if (gid.has_value()) {
    const std::string dir = std::filesystem::path(path).parent_path().string();
    struct stat st {};
    const bool setgid_dir = ::stat(dir.empty() ? "." : dir.c_str(), &st) == 0 &&
                            (st.st_mode & S_ISGID) != 0;
    const gid_t as_created = setgid_dir ? st.st_gid : ::getegid();
    if (*gid != as_created) return 0177;
  }
  return static_cast<mode_t>(~mode & 0777);
}

absl::Status SetUnixSocketAccess(const std::string& path, uint32_t mode,
                                 std::optional<gid_t> gid) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("stat of unix socket ", path));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("unix socket ", path, " is no longer a socket (replaced after binding?)"));
  }
  // The group first: until the mode opens the socket, nobody else may
  // connect, so no client of the wrong group slips in between.
  if (gid.has_value() && st.st_gid != *gid &&
      ::lchown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
    const int error = errno;
    return absl::ErrnoToStatus(
        error, absl::StrCat("setting the group of unix socket ", path, " to gid ", *gid,
                            error == EPERM ? " (tblogd's user must be a member of that group)"
                                           : ""));
  }
  if (::chmod(path.c_str(), mode) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("setting the mode of unix socket ", path, " to ", FormatMode(mode)));
  }
  return absl::OkStatus();
}

absl::Status CreateLogdir(FileSystem& fs, const std::string& path) {
  std::filesystem::path prefix;
  for (const std::filesystem::path& part : std::filesystem::path(path)) {
    if (part.empty()) continue;  // a trailing slash
    prefix /= part;
    const std::string name = prefix.string();
    struct stat st {};
    if (::stat(name.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return absl::FailedPreconditionError(
            absl::StrCat("creating the log directory ", path, ": ", name, " is not a directory"));
      }
      continue;
    }
    if (errno != ENOENT) {
      return absl::ErrnoToStatus(errno,
                                 absl::StrCat("creating the log directory ", path, ": stat of ", name));
    }
    const absl::Status made = fs.CreateDir(name);
    // Made meanwhile by another process: as good.
    if (!made.ok() && !absl::IsAlreadyExists(made)) {
      return Annotate(made, absl::StrCat("creating the log directory ", path));
    }
  }
  return absl::OkStatus();
}

}  // namespace tblog::daemon
