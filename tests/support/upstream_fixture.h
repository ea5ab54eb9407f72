// What the end-to-end tests of upstream mode (README "Upstream mode") and of
// the in-flight budget share: a fixture that starts named tblogd processes
// (an upstream, nodes forwarding to it, a lone daemon) under one temporary
// root, the C++ writer options they use, reading a run's points back, the
// daemons' memory and metrics, and raw WriteBatch calls.
// tests/daemon/upstream_e2e_test.cc, upstream_reduced_e2e_test.cc,
// upstream_ops_e2e_test.cc, reduce_durability_e2e_test.cc and
// budget_e2e_test.cc. CMake target tblog_upstream_fixture (tests/daemon/tests.cmake).
//
// Not thread-safe unless said otherwise: a test's main thread starts and
// stops the daemons; the free functions may be called from any thread.
#ifndef TBLOG_TESTS_SUPPORT_UPSTREAM_FIXTURE_H_
#define TBLOG_TESTS_SUPPORT_UPSTREAM_FIXTURE_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "support/daemon_process.h"
#include "tblog/client.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::testing {

// ---- What a run's files hold ----

// tag -> steps, in the order the event files directly in `dir` hold them.
std::map<std::string, std::vector<int64_t>> StepsByTag(const std::filesystem::path& dir);

// Every step 0..steps-1 of `tag` once, in order (a non-fatal failure saying
// how many are missing, doubled and out of order otherwise).
void ExpectEachStepOnce(const std::map<std::string, std::vector<int64_t>>& by_tag,
                        const std::string& tag, int64_t steps);

// One point of a tag at a step: a scalar's value (simple_value, or the
// tensor's first float or double); a histogram's count of values (also in
// `value`) and sum.
struct WrittenPoint {
  double value = 0;
  int64_t num = 0;
  double sum = 0;
};
// tag -> step -> the points written there, in file order.
using WrittenPoints = std::map<std::string, std::map<int64_t, std::vector<WrittenPoint>>>;

// The points of the event files directly in `dir`; empty when `dir` does not
// exist (a run never written).
WrittenPoints ReadPoints(const std::filesystem::path& dir);

// ---- Processes ----

// A figure of /proc/<pid>/status in bytes: `field` "VmRSS" (resident now) or
// "VmHWM" (the peak resident set); 0 when it cannot be read.
uint64_t ProcStatusBytes(pid_t pid, const std::string& field);
// The resident memory of `pid` now (VmRSS), signed for differences.
inline int64_t RssBytes(pid_t pid) { return static_cast<int64_t>(ProcStatusBytes(pid, "VmRSS")); }
// The peak resident set (VmHWM) a daemon may reach above its `idle` one with
// `budget` bytes of --max-inflight-bytes and `connections` clients: the
// budget, 48 MiB of allocator slack and gRPC, 1 MiB per connection (the
// budget benchmark's allowance). A memory bound, not a timing. Under
// ThreadSanitizer the daemon's shadow memory is resident too (several bytes
// per byte touched): the budget counts four times; under AddressSanitizer its
// 256 MiB quarantine of freed memory is added; under either the slack is
// twice (redzones, the sanitizer's allocator).
uint64_t PeakAllowance(uint64_t idle, uint64_t budget, int connections);

// The unlabelled samples of the /metrics page of the daemon whose log is
// `log_path` (its address read from the log line "metrics on
// http://ADDRESS/metrics"): name -> value. Empty, with a non-fatal failure,
// when the log names no address or the page cannot be read.
std::map<std::string, double> ScrapeMetrics(const std::string& log_path);

// The text of a file (a daemon's log); "" when it cannot be read.
std::string ReadTextFile(const std::string& path);

// ---- Raw gRPC ----

// A channel of its own (not shared with other channels to `target`): one
// connection per simulated client.
std::shared_ptr<grpc::Channel> Connect(const std::string& target);

// A histogram record of `floats` float32 values (i % 100): its conversion
// needs little memory, so its charge against the budget is about its message.
v1::Record HistogramRecord(const std::string& tag, int64_t step, size_t floats);

// Batch `sequence` of `writer` to `run_id` holding `record`.
v1::WriteRequest BatchOf(const std::string& run_id, const std::string& writer, uint64_t sequence,
                         v1::Record record);

// Sends `request` with WriteBatch (deadline 300 s) until it is accepted,
// retrying every 20 ms while the daemon answers the documented transient
// refusal RESOURCE_EXHAUSTED naming --max-inflight-bytes (each retry counted
// in `*refused`). Fails the test (fatally: call through ASSERT_NO_FATAL_FAILURE
// or from a thread that returns) on any other answer or after 2000 tries; the
// accepted answer's written_sequence must be the request's sequence.
void WriteBatchRetryingRefusals(v1::TBLog::Stub& stub, const v1::WriteRequest& request,
                                std::atomic<int>* refused);

// ---- Daemons under one root ----

// A temporary root holding named daemons: "<root>/<name>.sock" and
// "<root>/<name>-logs". StartDaemon(name) again restarts "the same" daemon
// (same logdir and socket). Each start logs to a file of its own,
// "<root>/<name>.sock.<n>.log" (LogOf(name): the latest), so the logs of
// killed daemons stay to be read.
//
// A test that fails leaves its root behind when $TBLOG_TEST_KEEP_DIR names a
// directory: copied there (logs, log directories) for a post-mortem.
class UpstreamFixture : public ::testing::Test {
 public:
  void TearDown() override;

  std::string SocketOf(const std::string& name) const;
  std::string LogdirOf(const std::string& name) const;
  // Run `run` as daemon `name` writes it.
  std::filesystem::path RunDirOf(const std::string& name, const std::string& run) const;
  // The log of the latest start of daemon `name`.
  std::string LogOf(const std::string& name) const;

  // Starts daemon `name` (--daemon-id name) with `args`.
  absl::StatusOr<std::unique_ptr<DaemonProcess>> StartDaemon(const std::string& name,
                                                             const std::vector<std::string>& args);
  // Starts (or restarts) "upstream" with upstream_args_ and then `extra`.
  absl::StatusOr<std::unique_ptr<DaemonProcess>> StartUpstream(std::vector<std::string> extra = {});
  // Starts (or restarts) node `name` forwarding to "upstream" (--upstream),
  // with node_args_ and then `extra`.
  absl::StatusOr<std::unique_ptr<DaemonProcess>> StartNode(const std::string& name,
                                                           std::vector<std::string> extra = {});

  // Daemons by name ("upstream", "node-a", ...).
  using Daemons = std::map<std::string, std::unique_ptr<DaemonProcess>>;
  // Starts the upstream and `nodes` into `daemons`; a fatal failure naming
  // the one that did not start (call through ASSERT_NO_FATAL_FAILURE).
  void StartUpstreamAndNodes(Daemons& daemons,
                             const std::vector<std::string>& nodes = {"node-a", "node-b"});
  // Stops every daemon of `daemons` still running with SIGTERM, the nodes
  // before the upstream (they drain into it): each must exit 0.
  static void StopAll(Daemons& daemons);

  // A C++ writer of `run` as `writer_id` through daemon `daemon`, quick to
  // reconnect (10 ms to 200 ms backoff) and patient to close (120 s).
  WriterOptions QuickOptions(const std::string& daemon, const std::string& run,
                             const std::string& writer_id) const;
  // QuickOptions that retain batches until they are durable (a crash of any
  // daemon loses nothing acknowledged) and send a batch 2 ms after its first
  // record.
  WriterOptions DurableOptions(const std::string& daemon, const std::string& run,
                               const std::string& writer_id) const;

 protected:
  // The arguments every upstream (after --daemon-id) and every node (after
  // --daemon-id and --upstream) starts with; a test's constructor may change
  // them. Every rank contributes to every reduced point in these tests: a
  // point written at the reduce timeout short of a rank (the default 30 s,
  // reached by kill-and-restart rounds under TSan on a loaded machine) would
  // be wrong, so the timeout is out of reach.
  std::vector<std::string> upstream_args_ = {"--flush-interval", "50ms", "--fsync", "flush",
                                             "--reduce-timeout", "600s"};
  std::vector<std::string> node_args_;

  TempDir root_;

 private:
  std::map<std::string, int> starts_;  // per daemon name: for its log's name
};

}  // namespace tblog::testing

#endif  // TBLOG_TESTS_SUPPORT_UPSTREAM_FIXTURE_H_
