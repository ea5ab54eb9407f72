// Who may use what tblogd makes: the mode and group of its unix socket
// (--unix-socket-mode, --unix-socket-group), the modes of the files and
// directories it creates (--file-mode, --dir-mode, applied by the file
// system: engine/io/file_system.h FileModes), and the log directory made with
// them. The defaults let a trainer of another uid that is in the socket's
// group connect (0660), and TensorBoard of any uid read the logs (0644 files,
// 0755 directories), whatever umask the daemon was started with.
#ifndef TBLOG_DAEMON_PERMISSIONS_H_
#define TBLOG_DAEMON_PERMISSIONS_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/io/file_system.h"

namespace tblog::daemon {

// "0660", "660" or "0o660" -> 0660: one to four octal digits, at most 0777
// (no setuid, setgid or sticky bits). INVALID_ARGUMENT otherwise.
absl::StatusOr<uint32_t> ParseMode(std::string_view text);
// The inverse of ParseMode for defaults and messages: 0660 -> "0660".
std::string FormatMode(uint32_t mode);

// The group `group` names: a group name (NSS: /etc/group, LDAP...) or a
// number. NOT_FOUND naming the group when no such name exists.
absl::StatusOr<gid_t> ResolveGroup(const std::string& group);

// The group `group` names (ResolveGroup), checked before anything is bound
// that this process may give its socket to it: root, or a member (primary or
// supplementary group). PERMISSION_DENIED says it must be a member.
absl::StatusOr<gid_t> ResolveSocketGroup(const std::string& group);

// The umask under which gRPC should bind the unix socket at `path`, to have
// `mode` and group `gid` (unset: as created). When the socket will have that
// group as created (no gid, or the group a new file in its directory gets:
// the directory's when setgid, else this process's), the umask that gives it
// `mode` at once, so no client ever finds it with other permissions. Else
// 0177: private until SetUnixSocketAccess has given it its group and mode
// (a client of that group that connects in between is refused, and retries).
mode_t UnixSocketBindUmask(const std::string& path, uint32_t mode, std::optional<gid_t> gid);

// Sets the process umask to `mask` for the object's lifetime, then restores
// it, around the bind of the unix socket (UnixSocketBindUmask). The umask
// belongs to the whole process: only for start-up. Files made through
// FileSystem::Posix meanwhile are unaffected (their modes are set exactly).
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : previous_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(previous_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  const mode_t previous_;
};

// Gives the unix socket file at `path` permission bits `mode` and, when
// `gid` is set and differs, group `gid`. Refuses (FAILED_PRECONDITION) a name that is not
// a socket, a symlink included. A daemon that is not root must be a member of
// `gid`; errors say so and name the path, the group and the mode.
absl::Status SetUnixSocketAccess(const std::string& path, uint32_t mode,
                                 std::optional<gid_t> gid);

// Creates the log directory `path` with its missing parents through `fs`,
// so they get its directory mode. Existing ancestors are used as they are
// (symlinks followed: a log directory may be reached through a link); one
// that is not a directory is FAILED_PRECONDITION naming it.
absl::Status CreateLogdir(FileSystem& fs, const std::string& path);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_PERMISSIONS_H_
