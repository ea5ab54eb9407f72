// Upstream mode (README "Upstream mode"): the settings of a tblogd that
// forwards what its clients send to another tblogd, the upstream, which
// writes the runs. A part of DaemonOptions (options.h); flags in
// upstream_flags.cc.
#ifndef TBLOG_DAEMON_UPSTREAM_OPTIONS_H_
#define TBLOG_DAEMON_UPSTREAM_OPTIONS_H_

#include <string>

#include "absl/time/time.h"

namespace tblog::daemon {

struct UpstreamOptions {
  // The upstream tblogd ("host:port", "unix:/path"); "" = off: this daemon
  // writes its runs itself.
  std::string address;
  // What is forwarded. "all": every call of tblog.v1.TBLog (OpenRun, the
  // Write stream, WriteBatch, Flush, CloseRun, ListRuns, GetRun) goes to the
  // upstream, each client batch as the same writer_id and sequence, and the
  // upstream's answers (acks, errors) come back unchanged; this daemon writes
  // nothing itself. "reduced": this daemon writes its runs itself, except the
  // reduced records, whose contributions it combines per point and sends
  // upstream as partials under its own writer id (node_reduce.h); a client
  // batch is acknowledged once written here and its partials upstream.
  std::string forward = "all";
  // How this daemon reaches the upstream: TLS (implied by any file), the CA
  // that signed the upstream's certificate ("" = the system's), a client
  // certificate and key for mTLS, the name to check in its certificate.
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_server_name;
  // A file whose first line is the bearer token this daemon presents to the
  // upstream (its own identity there: the upstream's runs belong to it, not
  // to this daemon's clients). Read at start, and again whenever the file
  // changes (token rotation, upstream_channel.h). "" = no token.
  std::string token_file;
  // Deadline of each forwarded unary call (OpenRun, Flush, CloseRun, ...),
  // unless the client's own deadline is sooner. Write streams have none.
  absl::Duration call_timeout = absl::Seconds(30);
  // How often the channel pings the upstream (gRPC keepalive), so that an
  // upstream gone silently is noticed (upstream_channel.h); at least
  // kMinKeepalive.
  absl::Duration keepalive = absl::Seconds(10);

  bool enabled() const { return !address.empty(); }
  // Every call goes upstream ("all"): this daemon writes nothing, so it
  // serves no shared memory (the upstream could not read a slice of a ring
  // attached here; clients send bytes).
  bool forwards_everything() const { return enabled() && forward == "all"; }
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_UPSTREAM_OPTIONS_H_
