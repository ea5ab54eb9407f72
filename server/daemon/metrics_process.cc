#include "daemon/metrics_process.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/metrics_families.h"

namespace tblog::daemon {
namespace {

using metrics::AddSample;
using metrics::MakeFamily;
using prometheus::MetricType;

bool ReadFile(const char* path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

// The system's boot time in seconds since the epoch ("btime" of /proc/stat).
bool BootTime(double* seconds) {
  std::string stat;
  if (!ReadFile("/proc/stat", &stat)) return false;
  for (absl::string_view line : absl::StrSplit(stat, '\n')) {
    if (line.substr(0, 6) == "btime ") return absl::SimpleAtod(line.substr(6), seconds);
  }
  return false;
}

// Entries of /proc/self/fd, less the one opendir itself holds.
bool OpenFds(int64_t* count) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return false;
  int64_t n = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++n;
  }
  closedir(dir);
  *count = n - 1;
  return true;
}

void AddGauge(std::vector<prometheus::MetricFamily>* families, const char* name,
              const char* help, double value) {
  families->push_back(MakeFamily(name, help, MetricType::Gauge));
  AddSample(families->back(), value);
}

}  // namespace

absl::StatusOr<ProcStat> ParseProcStat(absl::string_view line, long ticks_per_second,
                                       long page_size) {
  const size_t close = line.rfind(')');
  if (close == absl::string_view::npos || ticks_per_second <= 0 || page_size <= 0) {
    return absl::InvalidArgumentError("proc stat: no ')' after the command name");
  }
  // Fields after the command: state is field 3 of proc(5), so field N is
  // fields[N - 3].
  const std::vector<absl::string_view> fields =
      absl::StrSplit(line.substr(close + 1), ' ', absl::SkipEmpty());
  auto field = [&fields](size_t n, uint64_t* value) {
    return n - 3 < fields.size() && absl::SimpleAtoi(fields[n - 3], value);
  };
  uint64_t utime = 0, stime = 0, starttime = 0, vsize = 0, rss = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(22, &starttime) || !field(23, &vsize) ||
      !field(24, &rss)) {
    return absl::InvalidArgumentError(
        absl::StrCat("proc stat: fields 14, 15, 22, 23, 24 are not numbers in '", line, "'"));
  }
  ProcStat stat;
  const auto ticks = static_cast<double>(ticks_per_second);
  stat.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  stat.start_seconds_after_boot = static_cast<double>(starttime) / ticks;
  stat.virtual_memory_bytes = vsize;
  stat.resident_memory_bytes = rss * static_cast<uint64_t>(page_size);
  return stat;
}

void AppendProcessFamilies(std::vector<prometheus::MetricFamily>* families) {
  std::string line;
  if (ReadFile("/proc/self/stat", &line)) {
    auto stat = ParseProcStat(line, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE));
    if (stat.ok()) {
      families->push_back(MakeFamily("process_cpu_seconds_total",
                                     "Total user and system CPU time spent in seconds.",
                                     MetricType::Counter));
      AddSample(families->back(), stat->cpu_seconds);
      AddGauge(families, "process_resident_memory_bytes", "Resident memory size in bytes.",
               static_cast<double>(stat->resident_memory_bytes));
      AddGauge(families, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
               static_cast<double>(stat->virtual_memory_bytes));
      double boot = 0;
      if (BootTime(&boot)) {
        AddGauge(families, "process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.",
                 boot + stat->start_seconds_after_boot);
      }
    }
  }
  int64_t fds = 0;
  if (OpenFds(&fds)) {
    AddGauge(families, "process_open_fds", "Number of open file descriptors.",
             static_cast<double>(fds));
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    AddGauge(families, "process_max_fds", "Maximum number of open file descriptors.",
             static_cast<double>(limit.rlim_cur));
  }
}

}  // namespace tblog::daemon
