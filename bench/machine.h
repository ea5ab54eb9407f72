// What the benchmarks print about the machine and read about a process, from
// /proc (Linux): shared by tblog-loadgen and tblog-budget-bench.
#ifndef TBLOG_BENCH_MACHINE_H_
#define TBLOG_BENCH_MACHINE_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tblog::bench {

// The value after the colon of the first line of `path` that starts with
// `prefix` ("model name" in /proc/cpuinfo), or "unknown".
std::string FirstLineStartingWith(const std::string& path, std::string_view prefix);
// The whole file, or "" when it cannot be read.
std::string ReadFile(const std::string& path);
// "1.05 0.98 0.87" from /proc/loadavg, or "unknown".
std::string LoadAverage();
// "Linux 6.1.0 x86_64", or "unknown".
std::string Kernel();
// CPU model, core count, RAM and kernel, on one line.
std::string MachineLine();

// CPU seconds used so far by process `pid` (utime + stime of /proc/pid/stat),
// or nullopt when it cannot be read (not our child, not Linux).
std::optional<double> ProcessCpuSeconds(pid_t pid);
// Peak resident memory of process `pid` so far (VmHWM), or "unknown".
std::string PeakRss(pid_t pid);
// A kB line of /proc/<pid>/status ("VmRSS", "VmHWM") in bytes, or nullopt.
std::optional<uint64_t> StatusBytes(pid_t pid, std::string_view field);

}  // namespace tblog::bench

#endif  // TBLOG_BENCH_MACHINE_H_
