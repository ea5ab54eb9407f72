// tblog-inspect [--json] LOGDIR: what TensorBoard would find in LOGDIR.
// Exit status: 0 on success, 1 when LOGDIR cannot be inspected, 2 for bad usage.
#include <cstdio>
#include <string>
#include <string_view>

#include "engine/io/inspect.h"

namespace {

constexpr char kUsage[] =
    "usage: tblog-inspect [--json] LOGDIR\n"
    "Lists the runs TensorBoard would find under LOGDIR, their event files\n"
    "(noting torn or corrupt ones) and per tag its kind, data class, count,\n"
    "step range and last scalar value.\n";

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  std::string logdir;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if ((arg.size() > 1 && arg[0] == '-') || !logdir.empty()) {
      std::fputs(kUsage, stderr);
      return 2;
    } else {
      logdir = std::string(arg);
    }
  }
  if (logdir.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  auto report = tblog::InspectLogdir(logdir);
  if (!report.ok()) {
    std::fprintf(stderr, "tblog-inspect: %s\n", std::string(report.status().message()).c_str());
    return 1;
  }
  const std::string text =
      json ? tblog::FormatReportJson(*report) + "\n" : tblog::FormatReportText(*report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}
