// Who holds one run open: its writers' holds and their leases (tblog.proto,
// "Leases"). A plain value with no clock and no thread of its own: the
// RunRegistry keeps one per open run under its lock, passes the time in, and
// closes the run when the last hold goes. So the rules are tested here
// without waiting (tests/daemon/run_leases_test.cc).
//
// A hold is keyed by writer id ("" = the anonymous hold of an OpenRun
// without writer_id). While the writer has a Write stream bound to the run
// the hold cannot expire; from the moment its last stream ends (or from its
// OpenRun / WriteBatch) it expires after `lease` unless the writer comes back.
#ifndef TBLOG_DAEMON_RUN_LEASES_H_
#define TBLOG_DAEMON_RUN_LEASES_H_

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

// Not thread-safe: its owner serializes every call.
class RunLeases {
 public:
  explicit RunLeases(absl::Duration lease) : lease_(lease) {}

  // OpenRun or WriteBatch of `writer_id`: creates its hold, or renews it (a
  // hold without streams then expires at now + lease). `labels` replace the
  // hold's labels when not null.
  void Hold(const std::string& writer_id, absl::Time now,
            const std::map<std::string, std::string>* labels = nullptr);
  // A Write stream of `writer_id` was bound to the run: the hold (created if
  // the writer had none) lasts at least until the stream ends.
  void StreamStarted(const std::string& writer_id, absl::Time now);
  // That stream ended: with no other stream the lease runs from `now`. A
  // writer that released its hold meanwhile (CloseRun) stays released.
  void StreamEnded(const std::string& writer_id, absl::Time now);
  // CloseRun of `writer_id`: drops its hold whatever its streams. False when
  // it held nothing (released or expired before).
  bool Release(const std::string& writer_id);
  // Drops every hold and returns how many there were (CloseRun for all).
  size_t ReleaseAll();
  // Drops the holds whose lease ended at or before `now`; returns their
  // writer ids.
  std::vector<std::string> Expire(absl::Time now);

  bool empty() const { return holds_.empty(); }
  bool Holds(const std::string& writer_id) const { return holds_.count(writer_id) > 0; }
  // The holds as RunInfo.holders, in writer id order.
  void AppendTo(v1::RunInfo& info) const;

 private:
  struct Holder {
    int streams = 0;
    absl::Time expires = absl::InfiniteFuture();  // meaningful while streams == 0
    std::map<std::string, std::string> labels;
  };

  const absl::Duration lease_;
  std::map<std::string, Holder> holds_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_RUN_LEASES_H_
