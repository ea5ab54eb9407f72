// The partial sender of `--upstream-forward reduced` (node_reduce.h): one
// thread that takes the due points of each run from NodeReduce and sends
// them to the upstream tblogd as WriteBatch calls of the node's own writer
// (NodeWriterId: "tblogd:<daemon id>:<start>"), with its own consecutive sequence
// numbers per run, one batch in flight per run.
//
// The hop keeps the guarantees of a client: a batch is resent, with the same
// sequence, until the upstream acknowledges it (written, or a duplicate it
// already holds); then NodeReduce acknowledges the client batches it held.
// The node's OpenRun upstream (run_path = the local run's path, mode
// DEFAULT: created or resumed; with the run's reduce group size and timeout)
// tells it where its sequences stand: a batch in flight at or below what the
// upstream reports was written. It is sent before the run's first batch, and
// again whenever the upstream no longer knows the run (NOT_FOUND,
// FAILED_PRECONDITION: a restarted upstream, a run closed when the node's
// lease ran out) or refuses a sequence (OUT_OF_RANGE). Other failures
// (UNAVAILABLE, DEADLINE_EXCEEDED, ...) are retried with a backoff of 100 ms
// doubling to 2 s. After a restart of this daemon the unacknowledged
// partials are gone with its memory; the clients resend their batches
// (NodeReduce reports their sequences low enough) and the points are
// combined and sent again.
//
// Thread safety: Stop may be called from any thread; everything else runs on
// the sender's own thread, which the constructor starts and Stop (or the
// destructor) joins.
#ifndef TBLOG_DAEMON_NODE_REDUCE_SENDER_H_
#define TBLOG_DAEMON_NODE_REDUCE_SENDER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "daemon/node_reduce.h"

namespace tblog::daemon {

class UpstreamChannel;

// The writer id a node daemon started at `start` sends its partials under:
// "tblogd:<daemon id>:<start, Unix milliseconds>". One per process: a batch
// the previous process had in flight when it was killed may still reach the
// upstream after this one opened the run, and must not take a sequence
// number this one uses (the upstream would drop one of the two as a resend).
std::string NodeWriterId(const std::string& daemon_id, absl::Time start);

class NodeReduceSender {
 public:
  // `reduce` and `channel` are borrowed and outlive the sender. `call_timeout`
  // bounds each call (--upstream-timeout).
  NodeReduceSender(NodeReduce* reduce, UpstreamChannel* channel, std::string writer_id,
                   absl::Duration call_timeout);
  ~NodeReduceSender();
  NodeReduceSender(const NodeReduceSender&) = delete;
  NodeReduceSender& operator=(const NodeReduceSender&) = delete;

  // Sends every pending point (without waiting for their delay) until none is
  // left or `deadline` passes, then stops the thread. Idempotent.
  void Stop(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One run's side of the hop; only the sender's thread touches it.
  struct Upstream {
    std::string run_id;  // the upstream's, once opened
    bool open = false;
    uint64_t next_sequence = 1;
    // The batch in flight: its request (sequence 0 until first sent) and
    // the partials it carries.
    std::optional<v1::WriteRequest> request;
    std::vector<NodePartial> partials;
    absl::Time retry_at = absl::InfinitePast();
    absl::Duration backoff = absl::ZeroDuration();
  };

  void Loop();
  // One attempt for `run_id`: opens upstream if needed, sends the batch in
  // flight, and handles the answer.
  void Attempt(const std::string& run_id, Upstream& up);
  bool Open(const std::string& run_id, Upstream& up);
  // Now + call_timeout_, or the stop deadline if sooner.
  absl::Time CallDeadline() ABSL_LOCKS_EXCLUDED(mu_);
  void Failed(Upstream& up, const std::string& what, const std::string& error);
  void Acked(const std::string& run_id, Upstream& up);

  NodeReduce* const reduce_;
  UpstreamChannel* const channel_;
  const std::string writer_id_;
  const absl::Duration call_timeout_;
  std::map<std::string, Upstream> upstreams_;  // by local run id; the thread's own

  Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::thread thread_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_NODE_REDUCE_SENDER_H_
