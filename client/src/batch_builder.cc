#include "batch_builder.h"

#include <cstdint>
#include <utility>

namespace tblog {

uint32_t BatchBuilder::Intern(std::string_view tag, std::string_view subrun) {
  RecentTag& recent =
      recent_[((reinterpret_cast<uintptr_t>(tag.data()) >> 3) ^ tag.size()) & (kRecentTags - 1)];
  if (recent.used && recent.tag_data == tag.data() &&
      std::string_view(tags_[recent.id].first) == tag &&
      std::string_view(tags_[recent.id].second) == subrun) {
    return recent.id;
  }
  const uint32_t id = InternSlow(tag, subrun);
  recent = RecentTag{tag.data(), id, true};
  return id;
}

uint32_t BatchBuilder::InternSlow(std::string_view tag, std::string_view subrun) {
  key_scratch_.assign(subrun);
  key_scratch_.push_back('\0');
  key_scratch_.append(tag);
  auto it = tag_ids_.find(key_scratch_);
  if (it != tag_ids_.end()) return it->second;
  const auto id = static_cast<uint32_t>(tags_.size());
  tags_.emplace_back(std::string(tag), std::string(subrun));
  tag_ids_.emplace(key_scratch_, id);
  local_index_.push_back(0);
  local_epoch_.push_back(0);
  return id;
}

void BatchBuilder::AddScalar(std::string_view tag, std::string_view subrun, int64_t step,
                             float value, double wall_time) {
  if (columns_ == nullptr) {
    v1::Record* record = batch_.add_records();
    columns_ = record->mutable_scalars();
    columns_->set_style(style_);
    ++epoch_;
  }
  const uint32_t id = Intern(tag, subrun);
  if (local_epoch_[id] != epoch_) {
    local_epoch_[id] = epoch_;
    local_index_[id] = static_cast<uint32_t>(columns_->tags_size());
    v1::ColumnTag* column_tag = columns_->add_tags();
    column_tag->set_tag(tags_[id].first);
    column_tag->set_subrun(tags_[id].second);
    bytes_ += tag.size() + subrun.size() + 8;
  }
  columns_->add_tag_index(local_index_[id]);
  columns_->add_steps(step);
  columns_->add_values(value);
  columns_->add_wall_times(wall_time);
  bytes_ += kScalarPointBytes;
  ++records_;
}

void BatchBuilder::AddRecord(v1::Record&& record, size_t bytes) {
  *batch_.add_records() = std::move(record);
  columns_ = nullptr;
  bytes_ += bytes + 8;
  ++records_;
}

v1::WriteRequest BatchBuilder::TakeBatch() {
  v1::WriteRequest batch;
  batch.Swap(&batch_);
  columns_ = nullptr;
  bytes_ = 0;
  records_ = 0;
  return batch;
}

}  // namespace tblog
