// PolledFileWatcher: notices that credential files (certificates, keys, the
// token file) changed on disk, by polling stat().
//
// Polling, not inotify, because Kubernetes updates a mounted Secret by
// swapping a symlink two levels up ("..data"): stat() through the path sees
// the new file whatever way it was replaced, and a poll every few seconds
// costs nothing.
#ifndef TBLOG_DAEMON_TLS_FILE_WATCHER_H_
#define TBLOG_DAEMON_TLS_FILE_WATCHER_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "base/sync.h"

namespace tblog::daemon {

class PolledFileWatcher {
 public:
  // Starts a thread that stats `paths` every `interval` and calls
  // `on_change` (on that thread) once per poll in which any of them changed:
  // device, inode, size, modification or status-change time, or whether it
  // exists. The state at construction is the baseline.
  PolledFileWatcher(std::vector<std::string> paths, absl::Duration interval,
                    absl::AnyInvocable<void()> on_change);
  // Stops the thread and joins it; `on_change` is not running afterwards.
  ~PolledFileWatcher();
  PolledFileWatcher(const PolledFileWatcher&) = delete;
  PolledFileWatcher& operator=(const PolledFileWatcher&) = delete;

 private:
  // What stat() says of one path, as compared between polls.
  struct Snapshot {
    bool exists = false;
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    timespec modified{};
    timespec changed{};
    bool operator==(const Snapshot& other) const;
  };
  static Snapshot Stat(const std::string& path);
  std::vector<Snapshot> StatAll() const;
  void Loop();

  const std::vector<std::string> paths_;
  const absl::Duration interval_;
  absl::AnyInvocable<void()> on_change_;  // used by the thread only
  std::vector<Snapshot> last_;            // used by the thread only
  Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_TLS_FILE_WATCHER_H_
