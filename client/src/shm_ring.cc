#include "shm_ring.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
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

// Copies with non-temporal stores from kStreamingBytes on (x86-64: SSE2 is
// baseline). A large tensor's copy then neither reads the destination's
// cache lines first (about a third of memcpy's time on a 4 MB tensor) nor
// evicts the trainer's working set for data the daemon reads later anyway.
// `dst` is 64-byte aligned (kAlign).
constexpr size_t kStreamingBytes = size_t{256} << 10;

// The range of float32 values a copy saw: finite when every value was
// (no NaN went by; lo and hi are then not infinite either).
struct SeenRange {
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  bool nan = false;

  bool finite() const { return !nan && std::isfinite(lo) && std::isfinite(hi); }
  void Add(float v) {
    nan = nan || std::isnan(v);
    lo = std::min(lo, v);
    hi = std::max(hi, v);  // a NaN keeps lo and hi: std::min and max return their first
  }
};

// The copy into a slice, streaming from kStreamingBytes on. kFindRange (n a
// multiple of 4, float32 values): it also finds their range for
// ShmSlice.range, in the same loop, whatever n. The min and max ride along
// the copy's loads: the loop waits on memory, not on them (a 4 MiB copy took
// 0.154 ms either way, by a micro-benchmark).
template <bool kFindRange>
SeenRange CopyIntoSlice(std::byte* dst, const std::byte* src, size_t n) {
  SeenRange seen;
  size_t i = 0;
#if defined(__x86_64__)
  const bool streaming = n >= kStreamingBytes;
  if (streaming || kFindRange) {
    __m128 lo = _mm_set1_ps(seen.lo), hi = _mm_set1_ps(seen.hi);
    __m128 nan = _mm_setzero_ps();  // all ones in a lane that saw a NaN
    for (; i + 64 <= n; i += 64) {
      const auto* from = reinterpret_cast<const float*>(src + i);
      auto* to = reinterpret_cast<float*>(dst + i);
      const __m128 a = _mm_loadu_ps(from);
      const __m128 b = _mm_loadu_ps(from + 4);
      const __m128 c = _mm_loadu_ps(from + 8);
      const __m128 d = _mm_loadu_ps(from + 12);
      if (streaming) {
        _mm_stream_ps(to, a);
        _mm_stream_ps(to + 4, b);
        _mm_stream_ps(to + 8, c);
        _mm_stream_ps(to + 12, d);
      } else {
        _mm_storeu_ps(to, a);
        _mm_storeu_ps(to + 4, b);
        _mm_storeu_ps(to + 8, c);
        _mm_storeu_ps(to + 12, d);
      }
      if constexpr (kFindRange) {
        // minps/maxps give their second operand when one is NaN: a NaN is
        // skipped here and caught by the unordered compares.
        lo = _mm_min_ps(_mm_min_ps(a, b), _mm_min_ps(_mm_min_ps(c, d), lo));
        hi = _mm_max_ps(_mm_max_ps(a, b), _mm_max_ps(_mm_max_ps(c, d), hi));
        nan = _mm_or_ps(nan, _mm_or_ps(_mm_cmpunord_ps(a, b), _mm_cmpunord_ps(c, d)));
      }
    }
    if (streaming) _mm_sfence();  // the stores are visible before the record names the slice
    if constexpr (kFindRange) {
      alignas(16) float lows[4], highs[4], nans[4];
      _mm_store_ps(lows, lo);
      _mm_store_ps(highs, hi);
      _mm_store_ps(nans, nan);
      for (int lane = 0; lane < 4; ++lane) {
        seen.lo = std::min(seen.lo, lows[lane]);
        seen.hi = std::max(seen.hi, highs[lane]);
        seen.nan = seen.nan || std::isnan(nans[lane]);  // all ones is a NaN
      }
    }
  }
#endif
  std::memcpy(dst + i, src + i, n - i);
  if constexpr (kFindRange) {
    for (; i + sizeof(float) <= n; i += sizeof(float)) {
      float v;
      std::memcpy(&v, src + i, sizeof v);
      seen.Add(v);
    }
  }
  return seen;
}

// The tensor of `record` that may name a slice, or null.
const v1::Tensor* SliceTensor(const v1::Record& record) {
  if (record.has_histogram()) return &record.histogram().values();
  if (record.has_image() && record.image().has_pixels()) return &record.image().pixels();
  if (record.has_embedding()) return &record.embedding().matrix();
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

absl::StatusOr<std::unique_ptr<ShmRing>> ShmRing::Create(size_t bytes, size_t max_bytes) {
  max_bytes = std::max(max_bytes, bytes);
  const int fd = ::memfd_create("tblog-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return Errno("memfd_create");
  // Sized, its pages allocated (so that neither side faults them in while
  // logging), then sealed: the daemon refuses a ring that could shrink. It
  // may still grow (Grow).
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0 ||
      ::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    absl::Status status = Errno(absl::StrCat("preparing a shared-memory ring of ", bytes, " bytes"));
    ::close(fd);
    return status;
  }
  // The whole range the ring may grow to, reserved (no memory: PROT_NONE,
  // MAP_NORESERVE), then the memfd mapped over its start.
  void* range = ::mmap(nullptr, max_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
  if (range == MAP_FAILED) {
    absl::Status status = Errno("reserving the shared-memory ring's addresses");
    ::close(fd);
    return status;
  }
  if (::mmap(range, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd, 0) ==
      MAP_FAILED) {
    absl::Status status = Errno("mapping the shared-memory ring");
    ::munmap(range, max_bytes);
    ::close(fd);
    return status;
  }
  return std::unique_ptr<ShmRing>(
      new ShmRing(fd, static_cast<std::byte*>(range), bytes, max_bytes));
}

ShmRing::~ShmRing() {
  ::munmap(base_, capacity_);
  ::close(fd_);
}

absl::StatusOr<v1::ShmAttachResponse> ShmRing::Exchange(const std::string& socket_path, int fd,
                                                        uint64_t ring_bytes,
                                                        absl::Duration timeout,
                                                        const std::string& grow_token) {
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
  request.set_grow_token(grow_token);
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
  absl::StatusOr<v1::ShmAttachResponse> response = Exchange(socket_path, fd_, size(), timeout);
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
  token_ = token.ok() ? *token : "";
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

absl::Status ShmRing::Grow(const std::string& socket_path, absl::Duration timeout) {
  const size_t wanted = grow_wanted_.exchange(0, std::memory_order_relaxed);
  std::string token;
  size_t size = 0;
  {
    MutexLock lock(&mu_);
    token = token_;
    size = size_;
  }
  if (wanted <= size || wanted >= grow_refused_ || token.empty()) return absl::OkStatus();
  // Extended without allocating: until the daemon accepts the growth, the
  // new part costs no memory (and, refused, it never will).
  if (wanted > file_bytes_) {
    if (::ftruncate(fd_, static_cast<off_t>(wanted)) != 0) {
      grow_refused_ = wanted;
      return Errno(absl::StrCat("growing the shared-memory ring to ", wanted, " bytes"));
    }
    file_bytes_ = wanted;
  }
  absl::StatusOr<v1::ShmAttachResponse> response =
      Exchange(socket_path, fd_, wanted, timeout, token);
  absl::Status status;
  if (!response.ok()) {
    status = response.status();
  } else if (response->code() != 0) {
    status = absl::Status(static_cast<absl::StatusCode>(response->code()),
                          absl::StrCat("tblogd refused to grow the shared-memory ring to ", wanted,
                                       " bytes: ", response->message()));
  } else if (::mmap(base_ + size, wanted - size, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd_, static_cast<off_t>(size)) ==
             MAP_FAILED) {
    // The daemon maps more than we use: harmless, until the next attach.
    status = Errno("mapping the grown shared-memory ring");
  }
  if (!status.ok()) {
    grow_refused_ = wanted;
    return status;
  }
  MutexLock lock(&mu_);
  size_ = wanted;
  return absl::OkStatus();
}

bool ShmRing::ShrinkUnused(size_t bytes) {
  MutexLock lock(&mu_);
  if (!allocations_.empty() || usable_ || bytes >= size_) return false;
  // The pages stay mapped here; nothing reads or writes past size_.
  (void)::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(bytes),
                    static_cast<off_t>(file_bytes_ - bytes));
  grow_refused_ = size_;  // what the daemon just refused; no growth asks for it again
  size_ = bytes;
  return true;
}

size_t ShmRing::size() const {
  MutexLock lock(&mu_);
  return size_;
}

size_t ShmRing::used() const {
  MutexLock lock(&mu_);
  if (allocations_.empty()) return 0;
  const uint64_t tail = allocations_.front().offset;
  return head_ > tail ? head_ - tail : size_ - tail + head_;
}

std::optional<uint64_t> ShmRing::FitLocked(uint64_t length) const {
  if (allocations_.empty()) return length <= size_ ? std::optional<uint64_t>(0) : std::nullopt;
  const uint64_t tail = allocations_.front().offset;
  if (head_ > tail) {  // in use: [tail, head_); free: [head_, size_) and [0, tail)
    if (length <= size_ - head_) return head_;
    if (length <= tail) return 0;
    return std::nullopt;
  }
  // Wrapped: in use [tail, end of the newest before the wrap) and [0, head_);
  // free: [head_, tail).
  if (length > tail - head_) return std::nullopt;
  return head_;
}

size_t ShmRing::SizeFor(size_t tensor_bytes, size_t bytes, size_t max_bytes) {
  const size_t length = (tensor_bytes + kAlign - 1) / kAlign * kAlign;
  size_t target = bytes;
  while (target > 0 && target < 2 * length && target < max_bytes) target *= 2;
  return std::max(bytes, std::min(target, max_bytes));
}

void ShmRing::WantGrowthLocked(uint64_t length) {
  if (2 * length <= size_ || size_ >= capacity_) return;
  RaiseGrowthWanted(SizeFor(length, size_, capacity_));
}

void ShmRing::RaiseGrowthWanted(size_t target) {
  size_t previous = grow_wanted_.load(std::memory_order_relaxed);
  while (previous < target &&
         !grow_wanted_.compare_exchange_weak(previous, target, std::memory_order_relaxed)) {
  }
}

bool ShmRing::WantGrowthFor(size_t bytes) {
  const uint64_t length = (bytes + kAlign - 1) / kAlign * kAlign;
  MutexLock lock(&mu_);
  if (length <= size_) return false;
  const size_t refused = grow_refused_.load(std::memory_order_relaxed);
  for (const size_t target :
       {SizeFor(length, size_, capacity_), SizeFor((length + 1) / 2, size_, capacity_)}) {
    if (target >= length && target < refused) {
      RaiseGrowthWanted(target);
      return true;
    }
  }
  return false;
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

std::optional<ShmRing::Slice> ShmRing::Take(size_t bytes, bool wait) {
  if (bytes < kMinSliceBytes) return std::nullopt;
  const uint64_t length = (bytes + kAlign - 1) / kAlign * kAlign;
  MutexLock lock(&mu_);
  if (!usable_) return std::nullopt;
  WantGrowthLocked(length);
  std::optional<uint64_t> offset = FitLocked(length);
  if (!offset && wait && length <= size_) {
    // Full of slices on their way: wait for acknowledgements (Release) to
    // free room rather than send the tensor as bytes, which would cost the
    // trainer and the daemon four copies. A growth may make room too.
    const auto room = [this, length]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !usable_ || allocations_.empty() || FitLocked(length).has_value();
    };
    mu_.AwaitWithTimeout(Condition(&room), kRoomWait);
    offset = usable_ ? FitLocked(length) : std::nullopt;
  }
  if (!offset) return std::nullopt;
  allocations_.push_back(Allocation{*offset, length, false});
  head_ = *offset + length;
  return Slice{*offset, base_ + *offset};
}

void ShmRing::Point(const Slice& slice, size_t bytes, v1::Tensor* tensor) {
  tensor->clear_data();
  tensor->mutable_shm()->set_offset(slice.offset);
  tensor->mutable_shm()->set_length(bytes);
  tensors_.fetch_add(1, std::memory_order_relaxed);
}

void ShmRing::Free(uint64_t offset) {
  MutexLock lock(&mu_);
  FreeLocked(offset);
}

bool ShmRing::CopyIn(std::span<const std::byte> data, v1::Tensor* tensor, bool wait,
                     bool with_range) {
  std::optional<Slice> slice = Take(data.size(), wait);
  if (!slice) return false;
  // Outside the lock: the one copy of the tensor on the training thread.
  if (with_range && tensor->dtype() == v1::DTYPE_FLOAT32 && data.size() % sizeof(float) == 0) {
    const SeenRange seen = CopyIntoSlice<true>(slice->data, data.data(), data.size());
    Point(*slice, data.size(), tensor);
    // Only a range the daemon can count from (tblog.proto): all finite, a width.
    if (seen.finite() && seen.lo < seen.hi) {
      v1::ShmSlice::Range* range = tensor->mutable_shm()->mutable_range();
      range->set_min(seen.lo);
      range->set_max(seen.hi);
    }
    return true;
  }
  CopyIntoSlice<false>(slice->data, data.data(), data.size());
  Point(*slice, data.size(), tensor);
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

v1::Tensor* ShmRing::SliceTensorOf(v1::Record& record) {
  if (record.has_histogram()) return record.mutable_histogram()->mutable_values();
  if (record.has_image() && record.image().has_pixels()) return record.mutable_image()->mutable_pixels();
  if (record.has_embedding()) return record.mutable_embedding()->mutable_matrix();
  return nullptr;
}

int ShmRing::Inline(v1::WriteRequest& request) {
  int inlined = 0;
  for (v1::Record& record : *request.mutable_records()) {
    v1::Tensor* tensor = SliceTensorOf(record);
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
