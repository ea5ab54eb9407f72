#include "shm_ring.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tblog {
namespace {

// Slices start at cache-line boundaries (and so suit every dtype).
constexpr uint64_t kAlign = 64;

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// The tensor of `record` that may name a slice, or null.
const v1::Tensor* SliceTensor(const v1::Record& record) {
  if (record.has_histogram()) return &record.histogram().values();
  if (record.has_image() && record.image().has_pixels()) return &record.image().pixels();
  if (record.has_embedding()) return &record.embedding().matrix();
  return nullptr;
}

v1::Tensor* MutableSliceTensor(v1::Record& record) {
  if (record.has_histogram()) return record.mutable_histogram()->mutable_values();
  if (record.has_image() && record.image().has_pixels()) return record.mutable_image()->mutable_pixels();
  if (record.has_embedding()) return record.mutable_embedding()->mutable_matrix();
  return nullptr;
}

}  // namespace

std::string ShmRing::SocketFor(const std::string& target, const std::string& explicit_path) {
  if (explicit_path == "off") return "";
  if (!explicit_path.empty()) return explicit_path;
  // Only a unix socket proves the daemon is on this host.
  if (!absl::StartsWith(target, "unix:")) return "";
  std::string path = target.substr(5);
  if (absl::StartsWith(path, "//")) path = path.substr(2);  // unix:///abs/path
  return path.empty() ? "" : path + ".shm";
}

absl::StatusOr<std::unique_ptr<ShmRing>> ShmRing::Create(size_t bytes) {
  const int fd = ::memfd_create("tblog-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return Errno("memfd_create");
  // Sized, its pages allocated (so that neither side faults them in while
  // logging), then sealed: the daemon refuses a ring that could shrink.
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0 ||
      ::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    absl::Status status = Errno(absl::StrCat("preparing a shared-memory ring of ", bytes, " bytes"));
    ::close(fd);
    return status;
  }
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (base == MAP_FAILED) {
    absl::Status status = Errno("mapping the shared-memory ring");
    ::close(fd);
    return status;
  }
  return std::unique_ptr<ShmRing>(new ShmRing(fd, static_cast<std::byte*>(base), bytes));
}

ShmRing::~ShmRing() {
  ::munmap(base_, size_);
  ::close(fd_);
}

absl::StatusOr<v1::ShmAttachResponse> ShmRing::Exchange(const std::string& socket_path, int fd,
                                                        uint64_t ring_bytes,
                                                        absl::Duration timeout) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("shm socket path too long: ", socket_path));
  }
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return Errno("shm socket");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{s};
  const timeval tv{static_cast<time_t>(absl::ToInt64Seconds(timeout)),
                   static_cast<suseconds_t>(absl::ToInt64Microseconds(timeout) % 1000000)};
  (void)::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  (void)::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(s, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    return Errno(absl::StrCat("connecting to the shm socket ", socket_path));
  }
  v1::ShmAttachRequest request;
  request.set_ring_bytes(ring_bytes);
  std::string bytes = request.SerializeAsString();
  iovec iov{bytes.data(), bytes.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  if (fd >= 0) {
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  if (::sendmsg(s, &message, MSG_NOSIGNAL) < 0) return Errno("sending the ring");
  char reply[1024];
  const ssize_t n = ::recv(s, reply, sizeof(reply), 0);
  if (n < 0) return Errno("reading the shm socket's answer");
  v1::ShmAttachResponse response;
  if (!response.ParseFromArray(reply, static_cast<int>(n))) {
    return absl::UnavailableError("the shm socket's answer does not parse");
  }
  return response;
}

absl::StatusOr<std::string> ShmRing::Attach(const std::string& socket_path,
                                            absl::Duration timeout) {
  absl::StatusOr<v1::ShmAttachResponse> response = Exchange(socket_path, fd_, size_, timeout);
  absl::StatusOr<std::string> token;
  if (!response.ok()) {
    token = response.status();
  } else if (response->code() != 0) {
    token = absl::Status(static_cast<absl::StatusCode>(response->code()),
                         absl::StrCat("tblogd refused the shared-memory ring: ", response->message()));
  } else {
    token = response->token();
  }
  MutexLock lock(&mu_);
  usable_ = token.ok();
  attach_status_ = token.status();
  return token;
}

absl::Status ShmRing::attach_status() const {
  MutexLock lock(&mu_);
  return attach_status_;
}

bool ShmRing::usable() const {
  MutexLock lock(&mu_);
  return usable_;
}

size_t ShmRing::used() const {
  MutexLock lock(&mu_);
  if (allocations_.empty()) return 0;
  const uint64_t tail = allocations_.front().offset;
  return head_ > tail ? head_ - tail : size_ - tail + head_;
}

std::optional<uint64_t> ShmRing::AllocateLocked(uint64_t bytes) {
  const uint64_t length = (bytes + kAlign - 1) / kAlign * kAlign;
  uint64_t offset = 0;
  if (allocations_.empty()) {
    if (length > size_) return std::nullopt;
    offset = 0;
  } else {
    const uint64_t tail = allocations_.front().offset;
    if (head_ > tail) {  // in use: [tail, head_); free: [head_, size_) and [0, tail)
      if (length <= size_ - head_) {
        offset = head_;
      } else if (length <= tail) {
        offset = 0;
      } else {
        return std::nullopt;
      }
    } else {  // wrapped: in use [tail, size_) and [0, head_); free: [head_, tail)
      if (length > tail - head_) return std::nullopt;
      offset = head_;
    }
  }
  allocations_.push_back(Allocation{offset, length, false});
  head_ = offset + length;
  return offset;
}

void ShmRing::FreeLocked(uint64_t offset) {
  for (Allocation& allocation : allocations_) {
    if (allocation.offset == offset && !allocation.freed) {
      allocation.freed = true;
      break;
    }
  }
  while (!allocations_.empty() && allocations_.front().freed) allocations_.pop_front();
  if (allocations_.empty()) head_ = 0;
}

bool ShmRing::CopyIn(std::span<const std::byte> data, v1::Tensor* tensor) {
  if (data.size() < kMinSliceBytes) return false;
  std::optional<uint64_t> offset;
  {
    MutexLock lock(&mu_);
    if (!usable_) return false;
    offset = AllocateLocked(data.size());
  }
  if (!offset) return false;
  // Outside the lock: the one copy of the tensor on the training thread.
  std::memcpy(base_ + *offset, data.data(), data.size());
  tensor->clear_data();
  tensor->mutable_shm()->set_offset(*offset);
  tensor->mutable_shm()->set_length(data.size());
  tensors_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void ShmRing::Release(const v1::WriteRequest& request) {
  MutexLock lock(&mu_);
  for (const v1::Record& record : request.records()) {
    const v1::Tensor* tensor = SliceTensor(record);
    if (tensor != nullptr && tensor->has_shm()) FreeLocked(tensor->shm().offset());
  }
}

void ShmRing::Release(const v1::Record& record) {
  const v1::Tensor* tensor = SliceTensor(record);
  if (tensor == nullptr || !tensor->has_shm()) return;
  MutexLock lock(&mu_);
  FreeLocked(tensor->shm().offset());
}

bool ShmRing::NamesSlice(const v1::Record& record) {
  const v1::Tensor* tensor = SliceTensor(record);
  return tensor != nullptr && tensor->has_shm();
}

int ShmRing::Inline(v1::WriteRequest& request) {
  int inlined = 0;
  for (v1::Record& record : *request.mutable_records()) {
    v1::Tensor* tensor = MutableSliceTensor(record);
    if (tensor == nullptr || !tensor->has_shm()) continue;
    const v1::ShmSlice slice = tensor->shm();
    tensor->set_data(reinterpret_cast<const char*>(base_) + slice.offset(), slice.length());
    tensor->clear_shm();
    MutexLock lock(&mu_);
    FreeLocked(slice.offset());
    ++inlined;
  }
  return inlined;
}

}  // namespace tblog
