// Serves Prometheus metrics over HTTP (GET /metrics) on its own thread, with
// cpp-httplib. Knows nothing of what it serves: `render` produces the text.
#ifndef TBLOG_DAEMON_METRICS_SERVER_H_
#define TBLOG_DAEMON_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

namespace tblog::daemon {

class MetricsServer {
 public:
  // Binds `address` ("host:port"; port 0 = any free port) and starts serving.
  // `render` is called on the server's thread for every scrape; it must be
  // thread-safe and outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& address,
                                                              std::function<std::string()> render);
  ~MetricsServer();  // stops serving and joins the thread
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // "host:port" actually bound.
  const std::string& address() const { return address_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::string address_;
  std::thread thread_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_METRICS_SERVER_H_
