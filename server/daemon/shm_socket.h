// The side socket (--shm-socket) on which clients on the daemon's host hand
// over their shared-memory rings: a SOCK_SEQPACKET unix socket; a client
// connects, sends one ShmAttachRequest with its sealed memfd as SCM_RIGHTS
// ancillary data, and reads one ShmAttachResponse (tblog.proto, "Shared-
// memory rings"). The work per request is an fstat, an fcntl and an mmap, so
// one thread serves them one at a time; a client that sends nothing is cut
// off after kReceiveTimeout.
//
// Who may attach is who may connect: the socket gets the gRPC unix socket's
// mode and group (daemon.cc binds it the same way). An attached ring does
// nothing until a Write stream binds it by its token.
#ifndef TBLOG_DAEMON_SHM_SOCKET_H_
#define TBLOG_DAEMON_SHM_SOCKET_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/shm_rings.h"

namespace tblog::daemon {

class ShmSocket {
 public:
  static constexpr absl::Duration kReceiveTimeout = absl::Seconds(2);

  // Binds and listens on `path` (which must not exist: the caller removes a
  // stale one, and sets the umask the socket is bound under), and starts the
  // thread that serves it. `rings` is borrowed and must outlive the socket.
  static absl::StatusOr<std::unique_ptr<ShmSocket>> Start(const std::string& path,
                                                          ShmRings* rings);
  // Stop().
  ~ShmSocket();
  ShmSocket(const ShmSocket&) = delete;
  ShmSocket& operator=(const ShmSocket&) = delete;

  // Stops serving: joins the thread, closes the socket and removes its file
  // (a client then fails to connect and sends bytes). Idempotent; not to be
  // called from two threads at once (the daemon's Shutdown and destructor).
  void Stop();

  const std::string& path() const { return path_; }

 private:
  ShmSocket(std::string path, int listen_fd, int wake_read, int wake_write, ShmRings* rings);
  void Serve();
  // Reads one request from `connection` and answers it.
  void Answer(int connection);

  const std::string path_;
  int listen_fd_;
  // A pipe whose write end Stop() closes, waking the thread's poll.
  int wake_read_;
  int wake_write_;
  ShmRings* const rings_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_SHM_SOCKET_H_
