#include "daemon/tls_file_watcher.h"

#include <sys/stat.h>

#include <utility>

namespace tblog::daemon {

bool PolledFileWatcher::Snapshot::operator==(const Snapshot& other) const {
  auto same_time = [](const timespec& a, const timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
  };
  return exists == other.exists && device == other.device && inode == other.inode &&
         size == other.size && same_time(modified, other.modified) &&
         same_time(changed, other.changed);
}

PolledFileWatcher::PolledFileWatcher(std::vector<std::string> paths, absl::Duration interval,
                                     absl::AnyInvocable<void()> on_change)
    : paths_(std::move(paths)), interval_(interval), on_change_(std::move(on_change)) {
  last_ = StatAll();
  thread_ = std::thread([this] { Loop(); });
}

PolledFileWatcher::~PolledFileWatcher() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

PolledFileWatcher::Snapshot PolledFileWatcher::Stat(const std::string& path) {
  struct stat info{};
  Snapshot snapshot;
  if (::stat(path.c_str(), &info) != 0) return snapshot;  // missing or unreadable: "gone"
  snapshot.exists = true;
  snapshot.device = info.st_dev;
  snapshot.inode = info.st_ino;
  snapshot.size = info.st_size;
  snapshot.modified = info.st_mtim;
  snapshot.changed = info.st_ctim;
  return snapshot;
}

std::vector<PolledFileWatcher::Snapshot> PolledFileWatcher::StatAll() const {
  std::vector<Snapshot> snapshots;
  snapshots.reserve(paths_.size());
  for (const std::string& path : paths_) snapshots.push_back(Stat(path));
  return snapshots;
}

void PolledFileWatcher::Loop() {
  MutexLock lock(&mu_);
  while (true) {
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithTimeout(Condition(&stop), interval_)) return;
    mu_.Unlock();  // no lock across the file system or the callback
    std::vector<Snapshot> now = StatAll();
    if (now != last_) {
      last_ = std::move(now);
      on_change_();
    }
    mu_.Lock();
  }
}

}  // namespace tblog::daemon
