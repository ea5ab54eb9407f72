#include "daemon/byte_budget.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace tblog::daemon {

ByteBudget::ByteBudget(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

ByteBudget::ParkId ByteBudget::ChargeOrPark(size_t bytes, absl::AnyInvocable<void() &&> resume) {
  MutexLock lock(&mu_);
  used_ += bytes;
  if (used_ < capacity_) return 0;
  const ParkId id = next_id_++;
  parked_.emplace(id, std::move(resume));
  return id;
}

void ByteBudget::Charge(size_t bytes) {
  MutexLock lock(&mu_);
  used_ += bytes;
}

void ByteBudget::Release(size_t bytes) {
  std::vector<absl::AnyInvocable<void() &&>> wake;
  {
    MutexLock lock(&mu_);
    used_ -= std::min(bytes, used_);
    if (used_ >= capacity_ || parked_.empty()) return;
    wake.reserve(parked_.size());
    for (auto& [id, resume] : parked_) wake.push_back(std::move(resume));
    parked_.clear();
  }
  for (auto& resume : wake) std::move(resume)();
}

bool ByteBudget::Unpark(ParkId id) {
  MutexLock lock(&mu_);
  return parked_.erase(id) > 0;
}

size_t ByteBudget::used() const {
  MutexLock lock(&mu_);
  return used_;
}

int ByteBudget::parked() const {
  MutexLock lock(&mu_);
  return static_cast<int>(parked_.size());
}

}  // namespace tblog::daemon
