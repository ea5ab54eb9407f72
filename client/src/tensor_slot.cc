// TensorSlot (tblog/client.h): the memory of one tensor that the caller
// fills in place, a slice of the shared-memory ring or a plain buffer; the
// Writer builds it (histogram_slot) and logs it (submit).
#include <utility>

#include "shm_ring.h"
#include "tblog/client.h"

namespace tblog {

TensorSlot::TensorSlot(TensorSlot&& other) noexcept { *this = std::move(other); }

TensorSlot& TensorSlot::operator=(TensorSlot&& other) noexcept {
  if (this == &other) return *this;
  Reset();
  record_ = std::move(other.record_);
  bytes_ = other.bytes_;
  ring_ = std::exchange(other.ring_, nullptr);
  offset_ = other.offset_;
  ring_data_ = std::exchange(other.ring_data_, nullptr);
  heap_ = std::move(other.heap_);
  valid_ = std::exchange(other.valid_, false);
  return *this;
}

TensorSlot::~TensorSlot() { Reset(); }

void TensorSlot::Reset() {
  // A slice never handed to the daemon goes back to the ring, so that the
  // ring's FIFO does not wait on it.
  if (ring_ != nullptr) ring_->Free(offset_);
  ring_ = nullptr;
  ring_data_ = nullptr;
  valid_ = false;
}

std::span<std::byte> TensorSlot::bytes() {
  if (!valid_) return {};
  if (ring_ != nullptr) return {ring_data_, bytes_};
  return {reinterpret_cast<std::byte*>(heap_.data()), heap_.size()};
}

}  // namespace tblog
