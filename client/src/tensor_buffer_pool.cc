#include "tensor_buffer_pool.h"

#include <utility>

namespace tblog {

void TensorBufferPool::Reclaim(v1::WriteRequest& request) {
  for (v1::Record& record : *request.mutable_records()) {
    v1::Tensor* tensor = nullptr;
    if (record.has_histogram()) {
      tensor = record.mutable_histogram()->mutable_values();
    } else if (record.has_image() && record.image().has_pixels()) {
      tensor = record.mutable_image()->mutable_pixels();
    }
    if (tensor == nullptr) continue;
    const size_t capacity = tensor->data().capacity();
    if (capacity < kMinBufferBytes || buffers_.size() >= kMaxBuffers ||
        bytes_ + capacity > max_bytes_) {
      continue;
    }
    bytes_ += capacity;
    buffers_.push_back(std::move(*tensor->mutable_data()));
  }
}

std::string TensorBufferPool::Take(size_t bytes) {
  auto best = buffers_.end();
  for (auto it = buffers_.begin(); it != buffers_.end(); ++it) {
    if (it->capacity() >= bytes && (best == buffers_.end() || it->capacity() < best->capacity())) {
      best = it;
    }
  }
  if (best == buffers_.end()) return {};
  std::string buffer = std::move(*best);
  bytes_ -= buffer.capacity();
  buffers_.erase(best);
  return buffer;
}

}  // namespace tblog
