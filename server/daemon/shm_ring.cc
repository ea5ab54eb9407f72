#include "daemon/shm_ring.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"

namespace tblog::daemon {
namespace {

thread_local const ShmRing* current_ring = nullptr;

// Closes the fd it holds when it goes.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<ShmRing>> ShmRing::Map(int fd, uint64_t declared_bytes) {
  FdCloser closer{fd};
  if (fd < 0) return absl::InvalidArgumentError("no file descriptor came with the request");
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("fstat of the ring: ", std::strerror(errno)));
  }
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError("the ring is not a memfd (not a regular file)");
  }
  // F_GET_SEALS fails (EINVAL) on files that cannot be sealed: only a memfd
  // made with MFD_ALLOW_SEALING (or a sealable shmem file) passes.
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    return absl::InvalidArgumentError(
        "the ring must be a memfd sealed against shrinking (memfd_create with "
        "MFD_ALLOW_SEALING, then fcntl F_ADD_SEALS F_SEAL_SHRINK), so that it cannot be "
        "truncated under the daemon's mapping");
  }
  // Sealed: the size can only grow from here, so a mapping of what it holds
  // now (or less) never loses its pages. Less: a client whose growth was
  // refused keeps using, and declares, the size it had.
  const auto file_size = static_cast<uint64_t>(info.st_size);
  if (declared_bytes == 0 || declared_bytes > file_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ring_bytes is ", declared_bytes, " but the memfd holds ", file_size,
        " bytes (must be > 0 and at most that)"));
  }
  const uint64_t size = declared_bytes;
  // Populated now, while attaching, so that converting a slice takes no page
  // faults (the client pre-faulted the pages; this fills our page tables).
  void* base = ::mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (base == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mapping a ring of ", size, " bytes: ", std::strerror(errno)));
  }
  return std::unique_ptr<ShmRing>(
      new ShmRing(static_cast<const std::byte*>(base), size, info.st_dev, info.st_ino));
}

ShmRing::~ShmRing() { ::munmap(const_cast<std::byte*>(base_), size_); }

absl::StatusOr<std::string_view> ShmRing::Slice(const v1::ShmSlice& slice,
                                                std::string_view field) const {
  if (slice.offset() > size_ || slice.length() > size_ - slice.offset()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(field), ": shm: slice at offset ", slice.offset(), " of ", slice.length(),
        " bytes is not inside the ring of ", size_, " bytes"));
  }
  return std::string_view(reinterpret_cast<const char*>(base_) + slice.offset(), slice.length());
}

ScopedShmRing::ScopedShmRing(const ShmRing* ring) : previous_(current_ring) { current_ring = ring; }

ScopedShmRing::~ScopedShmRing() { current_ring = previous_; }

const ShmRing* ScopedShmRing::Current() { return current_ring; }

}  // namespace tblog::daemon
