#include "daemon/run_leases.h"

namespace tblog::daemon {

void RunLeases::Hold(const std::string& writer_id, absl::Time now,
                     const std::map<std::string, std::string>* labels) {
  Holder& hold = holds_[writer_id];
  if (hold.streams == 0) hold.expires = now + lease_;
  if (labels != nullptr) hold.labels = *labels;
}

void RunLeases::StreamStarted(const std::string& writer_id, absl::Time /*now*/) {
  ++holds_[writer_id].streams;
}

void RunLeases::StreamEnded(const std::string& writer_id, absl::Time now) {
  auto it = holds_.find(writer_id);
  if (it == holds_.end()) return;  // released by CloseRun while the stream ran
  if (it->second.streams > 0 && --it->second.streams == 0) it->second.expires = now + lease_;
}

bool RunLeases::Release(const std::string& writer_id) { return holds_.erase(writer_id) > 0; }

size_t RunLeases::ReleaseAll() {
  const size_t held = holds_.size();
  holds_.clear();
  return held;
}

std::vector<std::string> RunLeases::Expire(absl::Time now) {
  std::vector<std::string> expired;
  for (auto it = holds_.begin(); it != holds_.end();) {
    if (it->second.streams == 0 && it->second.expires <= now) {
      expired.push_back(it->first);
      it = holds_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

void RunLeases::AppendTo(v1::RunInfo& info) const {
  for (const auto& [writer_id, hold] : holds_) {
    v1::RunHolder* holder = info.add_holders();
    holder->set_writer_id(writer_id);
    holder->set_streams(static_cast<uint32_t>(hold.streams));
    if (hold.streams == 0) {
      holder->set_lease_expires_time(absl::ToDoubleSeconds(hold.expires - absl::UnixEpoch()));
    }
    holder->mutable_labels()->insert(hold.labels.begin(), hold.labels.end());
  }
}

}  // namespace tblog::daemon
