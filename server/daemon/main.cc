// tblogd: parses the command line, starts the daemon and waits for SIGTERM or
// SIGINT, then drains every queue and exits 0 (also as PID 1 in a container,
// where the kernel installs no default handlers: signals are taken with
// sigwait, not left to their default action).
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>

#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/health_probe.h"
#include "daemon/metrics_server.h"
#include "engine/io/inspect.h"
#include "spdlog/spdlog.h"

namespace {

int RunInspect(const tblog::daemon::Command& cmd) {
  auto report = tblog::InspectLogdir(cmd.inspect_logdir);
  if (!report.ok()) {
    std::cerr << "tblogd inspect: " << report.status().message() << "\n";
    return 1;
  }
  std::cout << (cmd.inspect_json ? tblog::FormatReportJson(*report)
                                 : tblog::FormatReportText(*report));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using tblog::daemon::Command;
  Command cmd = tblog::daemon::ParseCommandLine(argc, argv);
  if (cmd.kind == Command::Kind::kExit) return cmd.exit_code;
  if (cmd.kind == Command::Kind::kInspect) return RunInspect(cmd);
  if (cmd.kind == Command::Kind::kHealth) {
    absl::Status health =
        tblog::daemon::CheckHealth(cmd.health_address, cmd.health_service, cmd.health_timeout,
                                  cmd.health_connection);
    std::cout << (health.ok() ? std::string("SERVING") : std::string(health.message())) << "\n";
    return health.ok() ? 0 : 1;
  }

  if (auto s = tblog::daemon::SetUpLogging(cmd.options.log_format, cmd.options.log_level);
      !s.ok()) {
    std::cerr << "tblogd: " << s.message() << "\n";
    return 2;
  }

  // Block the shutdown signals in every thread (threads inherit the mask), so
  // only sigwait below receives them. A closed client socket must not kill us.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  // A write past RLIMIT_FSIZE then fails with EFBIG, which the run reports to
  // its writers and retries (into a new file), instead of killing the daemon.
  std::signal(SIGXFSZ, SIG_IGN);

  auto daemon = tblog::daemon::Daemon::Start(cmd.options);
  if (!daemon.ok()) {
    spdlog::critical("tblogd could not start: {}", std::string(daemon.status().message()));
    return 1;
  }
  for (const auto& address : (*daemon)->listening_addresses()) {
    spdlog::info("tblogd listening on {} logdir={}", address, cmd.options.logdir);
  }

  std::unique_ptr<tblog::daemon::MetricsServer> metrics;
  if (!cmd.options.metrics_listen.empty()) {
    tblog::daemon::Daemon* d = daemon->get();
    auto started = tblog::daemon::MetricsServer::Start(cmd.options.metrics_listen,
                                                       [d] { return d->RenderMetrics(); });
    if (!started.ok()) {
      spdlog::critical("tblogd could not serve metrics: {}", std::string(started.status().message()));
      return 1;
    }
    metrics = std::move(*started);
    spdlog::info("tblogd metrics on http://{}/metrics", metrics->address());
  }

  int signo = 0;
  sigwait(&signals, &signo);
  spdlog::info("received {}, draining (grace {})", signo == SIGTERM ? "SIGTERM" : "SIGINT",
               absl::FormatDuration(cmd.options.shutdown_grace));
  absl::Status status = (*daemon)->Shutdown(cmd.options.shutdown_grace);
  metrics.reset();  // after the drain, so a scrape during shutdown still answers
  if (!status.ok()) {
    spdlog::error("shutdown: {}", std::string(status.message()));
    return 1;
  }
  spdlog::info("tblogd stopped cleanly");
  spdlog::shutdown();
  return 0;
}
