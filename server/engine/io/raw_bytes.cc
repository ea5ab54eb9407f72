#include "engine/io/raw_bytes.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace tblog {

void RawBytes::reserve(size_t capacity) {
  if (capacity <= capacity_) return;
  // Default-initialised: no zero-fill.
  std::unique_ptr<char[]> data = std::make_unique_for_overwrite<char[]>(capacity);
  if (size_ > 0) std::memcpy(data.get(), data_.get(), size_);
  data_ = std::move(data);
  capacity_ = capacity;
}

void RawBytes::resize_for_overwrite(size_t size) {
  if (size > capacity_) reserve(std::max(size, 2 * capacity_));
  size_ = size;
}

RawBytes& RawBytes::operator+=(std::string_view bytes) {
  const size_t at = size_;
  resize_for_overwrite(at + bytes.size());
  if (!bytes.empty()) std::memcpy(data_.get() + at, bytes.data(), bytes.size());
  return *this;
}

void RawBytes::erase_front(size_t n) {
  if (n == 0) return;
  if (n < size_) std::memmove(data_.get(), data_.get() + n, size_ - n);
  size_ -= n;
}

}  // namespace tblog
