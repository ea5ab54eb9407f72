#include "daemon/metrics_server.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace tblog::daemon {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::function<std::string()> render) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", address, "' is not host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto self = std::unique_ptr<MetricsServer>(new MetricsServer());
  self->server_ = std::make_unique<httplib::Server>();
  self->server_->Get("/metrics", [render](const httplib::Request&, httplib::Response& res) {
    res.set_content(render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  self->server_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("tblogd: metrics at /metrics\n", "text/plain");
  });
  if (port == 0) {
    port = self->server_->bind_to_any_port(host);
  } else if (!self->server_->bind_to_port(host, port)) {
    port = -1;
  }
  if (port < 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, " for metrics"));
  }
  self->address_ = absl::StrCat(host, ":", port);
  self->thread_ = std::thread([server = self->server_.get()] { server->listen_after_bind(); });
  return self;
}

MetricsServer::~MetricsServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tblog::daemon
