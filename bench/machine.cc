#include "machine.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tblog::bench {

std::string FirstLineStartingWith(const std::string& path, std::string_view prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      const size_t colon = line.find(':');
      std::string value = colon == std::string::npos ? line : line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  }
  return "unknown";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  if (!(in >> one >> five >> fifteen)) return "unknown";
  return absl::StrCat(one, " ", five, " ", fifteen);
}

std::string Kernel() {
  utsname name{};
  if (uname(&name) != 0) return "unknown";
  return absl::StrCat(name.sysname, " ", name.release, " ", name.machine);
}

std::string MachineLine() {
  return absl::StrCat(FirstLineStartingWith("/proc/cpuinfo", "model name"), ", ",
                      std::thread::hardware_concurrency(), " hardware threads, ",
                      FirstLineStartingWith("/proc/meminfo", "MemTotal"), " RAM, ", Kernel());
}

std::optional<double> ProcessCpuSeconds(pid_t pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t paren = stat.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  // Fields after the name start at 3 (state); utime and stime are 14 and 15.
  for (int i = 3; i < 14; ++i) fields >> field;
  uint64_t utime = 0, stime = 0;
  if (!(fields >> utime >> stime)) return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string PeakRss(pid_t pid) {
  return FirstLineStartingWith(absl::StrCat("/proc/", pid, "/status"), "VmHWM");
}

std::optional<uint64_t> StatusBytes(pid_t pid, std::string_view field) {
  std::string value = FirstLineStartingWith(absl::StrCat("/proc/", pid, "/status"), field);
  const size_t space = value.find(' ');
  uint64_t kb = 0;
  if (space == std::string::npos || !absl::SimpleAtoi(value.substr(0, space), &kb)) {
    return std::nullopt;
  }
  return kb * 1024;
}

}  // namespace tblog::bench
