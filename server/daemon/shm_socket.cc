#include "daemon/shm_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {
namespace {

// A request is a few bytes; anything longer is not ours.
constexpr size_t kMaxRequestBytes = 256;
// Room for a few descriptors, so that extra ones arrive (and are closed)
// rather than being left in the kernel's truncated message.
constexpr size_t kMaxFds = 4;
// How often the thread wakes to expire unbound rings.
constexpr int kPollMillis = 1000;

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

void SendResponse(int connection, const absl::StatusOr<std::string>& token) {
  v1::ShmAttachResponse response;
  response.set_code(static_cast<int>(token.status().code()));
  if (token.ok()) {
    response.set_token(*token);
  } else {
    response.set_message(std::string(token.status().message()));
  }
  const std::string bytes = response.SerializeAsString();
  // A client that went away meanwhile loses its ring at kBindWithin.
  (void)::send(connection, bytes.data(), bytes.size(), MSG_NOSIGNAL);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShmSocket>> ShmSocket::Start(const std::string& path,
                                                            ShmRings* rings) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--shm-socket ", path, " is longer than a unix socket path may be (",
        sizeof(address.sun_path) - 1, " bytes)"));
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("creating the shm socket");
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 ||
      ::listen(fd, 64) != 0) {
    absl::Status status = Errno(absl::StrCat("binding the shm socket ", path));
    ::close(fd);
    return status;
  }
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) {
    absl::Status status = Errno("creating the shm socket's wake-up pipe");
    ::close(fd);
    ::unlink(path.c_str());
    return status;
  }
  std::unique_ptr<ShmSocket> socket(new ShmSocket(path, fd, wake[0], wake[1], rings));
  socket->thread_ = std::thread([s = socket.get()] { s->Serve(); });
  return socket;
}

ShmSocket::ShmSocket(std::string path, int listen_fd, int wake_read, int wake_write,
                     ShmRings* rings)
    : path_(std::move(path)),
      listen_fd_(listen_fd),
      wake_read_(wake_read),
      wake_write_(wake_write),
      rings_(rings) {}

ShmSocket::~ShmSocket() { Stop(); }

void ShmSocket::Stop() {
  if (stopped_) return;
  stopped_ = true;
  ::close(wake_write_);  // the thread's poll sees the hang-up
  if (thread_.joinable()) thread_.join();
  ::close(wake_read_);
  ::close(listen_fd_);
  ::unlink(path_.c_str());
}

void ShmSocket::Serve() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    const int ready = ::poll(fds, 2, kPollMillis);
    rings_->ExpireUnbound(absl::Now());
    if (ready < 0 && errno != EINTR) {
      spdlog::error("shm socket {}: poll: {}; shared memory is off from now on", path_,
                    std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;  // Stop()
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int connection = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) continue;  // the client gave up, or EMFILE: it sends bytes
    Answer(connection);
    ::close(connection);
  }
}

void ShmSocket::Answer(int connection) {
  const timeval timeout{static_cast<time_t>(absl::ToInt64Seconds(kReceiveTimeout)), 0};
  (void)::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  (void)::setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  char data[kMaxRequestBytes];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{data, sizeof(data)};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  const ssize_t n = ::recvmsg(connection, &message, MSG_CMSG_CLOEXEC);
  if (n < 0) return;  // timed out or gone: nothing was handed over
  // Every descriptor that came is ours to close; the first is the ring.
  std::vector<int> received;
  for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      received.push_back(fd);
    }
  }
  const int ring_fd = received.empty() ? -1 : received.front();
  for (size_t i = 1; i < received.size(); ++i) ::close(received[i]);
  v1::ShmAttachRequest request;
  absl::StatusOr<std::string> token;
  if ((message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
      !request.ParseFromArray(data, static_cast<int>(n))) {
    if (ring_fd >= 0) ::close(ring_fd);
    token = absl::InvalidArgumentError(
        "the request is not one ShmAttachRequest with one file descriptor");
  } else if (ring_fd < 0) {
    token = absl::InvalidArgumentError(
        "no file descriptor came with the request (SCM_RIGHTS): send the ring's memfd");
  } else if (!request.grow_token().empty()) {
    absl::Status grown = rings_->Grow(ring_fd, request.ring_bytes(), request.grow_token());
    if (grown.ok()) {
      token = request.grow_token();
    } else {
      token = grown;
    }
  } else {
    token = rings_->Attach(ring_fd, request.ring_bytes(), absl::Now());
  }
  // The client is told why; the log only at debug, as a client may ask often.
  if (!token.ok()) spdlog::debug("shm socket {}: ring refused: {}", path_, token.status().ToString());
  SendResponse(connection, token);
}

}  // namespace tblog::daemon
