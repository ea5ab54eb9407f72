// TensorBufferPool: the tensor data buffers of batches the daemon has
// acknowledged, kept for the next large record. A training loop that logs a
// large histogram or image every step then copies it into warm memory instead
// of faulting in fresh pages each time.
//
// Bounded: at most kMaxBuffers buffers of kMinBufferBytes or more, max_bytes
// in all; what does not fit is freed with its batch. The pool's bytes are
// held beyond the Writer's max_buffer_bytes, so the Writer gives it a quarter
// of that.
//
// Not thread-safe: RecordStream guards it with its mutex.
#ifndef TBLOG_CLIENT_TENSOR_BUFFER_POOL_H_
#define TBLOG_CLIENT_TENSOR_BUFFER_POOL_H_

#include <cstddef>
#include <string>
#include <vector>

#include "tblog/v1/tblog.pb.h"

namespace tblog {

class TensorBufferPool {
 public:
  // Buffers smaller than this are not worth keeping (nor asking for).
  static constexpr size_t kMinBufferBytes = size_t{64} << 10;
  static constexpr size_t kMaxBuffers = 4;

  explicit TensorBufferPool(size_t max_bytes) : max_bytes_(max_bytes) {}
  TensorBufferPool(const TensorBufferPool&) = delete;
  TensorBufferPool& operator=(const TensorBufferPool&) = delete;

  // Moves the tensor data of `request`'s histogram and pixel-image records
  // into the pool, as far as the bounds allow. `request` is an acknowledged
  // batch that nothing will send again.
  void Reclaim(v1::WriteRequest& request);
  // The smallest kept buffer of at least `bytes` capacity (so a small tensor
  // does not take a large buffer), or an empty string when none fits.
  std::string Take(size_t bytes);

 private:
  const size_t max_bytes_;
  std::vector<std::string> buffers_;
  size_t bytes_ = 0;  // sum of the buffers' capacities
};

}  // namespace tblog

#endif  // TBLOG_CLIENT_TENSOR_BUFFER_POOL_H_
