// A byte buffer that grows without zero-filling what it adds. std::string's
// resize writes every byte it adds: over the daemon's scalar path (a batch's
// packed events, then the event file's buffer they are framed into) that was
// a pass as long as the encoding itself, and the first touch of fresh pages.
// Holds whatever bytes its caller writes; not thread-safe.
#ifndef TBLOG_ENGINE_IO_RAW_BYTES_H_
#define TBLOG_ENGINE_IO_RAW_BYTES_H_

#include <cstddef>
#include <memory>
#include <string_view>

namespace tblog {

class RawBytes {
 public:
  RawBytes() = default;
  RawBytes(RawBytes&& other) noexcept
      : data_(std::move(other.data_)), size_(other.size_), capacity_(other.capacity_) {
    other.size_ = other.capacity_ = 0;
  }
  RawBytes& operator=(RawBytes&& other) noexcept {
    data_ = std::move(other.data_);
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.size_ = other.capacity_ = 0;
    return *this;
  }
  RawBytes(const RawBytes& other) { *this += other; }
  RawBytes& operator=(const RawBytes& other) {
    if (this != &other) {
      clear();
      *this += other;
    }
    return *this;
  }

  // Sets the size to `size`. Bytes past the old size are left as they are
  // (uninitialised when newly allocated): the caller writes them. When it
  // must grow, the capacity becomes at least twice the old one, and the bytes
  // up to the old size are kept.
  void resize_for_overwrite(size_t size);
  // Grows the capacity to at least `capacity` (exactly that when it grows),
  // keeping the bytes.
  void reserve(size_t capacity);
  // Appends `bytes` (which must not lie in this buffer).
  RawBytes& operator+=(std::string_view bytes);
  // Drops the first `n` (<= size()) bytes, keeping the capacity.
  void erase_front(size_t n);
  void clear() { size_ = 0; }

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {data_.get(), size_}; }
  operator std::string_view() const { return view(); }

 private:
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace tblog

#endif  // TBLOG_ENGINE_IO_RAW_BYTES_H_
