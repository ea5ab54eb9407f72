// The process collector: the standard process_* metrics that every Prometheus
// client library exports (CPU time, resident and virtual memory, open and
// maximum file descriptors, start time), read from /proc/self at scrape time.
// prometheus-cpp 1.0 has no process collector, so it is written here, with the
// names and units of the official clients (Go's and Python's).
#ifndef TBLOG_DAEMON_METRICS_PROCESS_H_
#define TBLOG_DAEMON_METRICS_PROCESS_H_

#include <cstdint>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "prometheus/metric_family.h"

namespace tblog::daemon {

// What /proc/<pid>/stat says, in the units of the metrics.
struct ProcStat {
  double cpu_seconds = 0;            // user + system time
  double start_seconds_after_boot = 0;
  uint64_t virtual_memory_bytes = 0;
  uint64_t resident_memory_bytes = 0;
};

// Parses one /proc/<pid>/stat line (see proc(5)). The command name is in
// parentheses and may itself hold spaces and parentheses: fields are counted
// from the last ')'. `ticks_per_second` is sysconf(_SC_CLK_TCK), `page_size`
// sysconf(_SC_PAGESIZE). INVALID_ARGUMENT when the line is malformed.
absl::StatusOr<ProcStat> ParseProcStat(absl::string_view line, long ticks_per_second,
                                       long page_size);

// Appends the process_* families for this process. A value that cannot be
// read (no /proc, as in some sandboxes) leaves its family out rather than
// reporting a wrong number. Thread-safe.
void AppendProcessFamilies(std::vector<prometheus::MetricFamily>* families);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_METRICS_PROCESS_H_
