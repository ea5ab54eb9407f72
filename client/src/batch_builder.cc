#include "batch_builder.h"

#include <algorithm>
#include <cstdint>
#include <utility>

namespace tblog {

uint32_t BatchBuilder::Intern(std::string_view tag, std::string_view subrun) {
  RecentTag& recent =
      recent_[((reinterpret_cast<uintptr_t>(tag.data()) >> 3) ^ tag.size()) & (kRecentTags - 1)];
  if (recent.used && recent.tag_data == tag.data() && Is(recent.id, tag, subrun)) {
    return recent.id;
  }
  const uint32_t id = InternSlow(tag, subrun);
  recent = RecentTag{tag.data(), id, true};
  return id;
}

uint32_t BatchBuilder::InternSlow(std::string_view tag, std::string_view subrun) {
  const AddressKey address{reinterpret_cast<uintptr_t>(tag.data()), tag.size(),
                           reinterpret_cast<uintptr_t>(subrun.data()), subrun.size()};
  if (auto it = by_address_.find(address); it != by_address_.end() && Is(it->second, tag, subrun)) {
    return it->second;
  }
  key_scratch_.assign(subrun);
  key_scratch_.push_back('\0');
  key_scratch_.append(tag);
  uint32_t id = 0;
  if (auto it = tag_ids_.find(key_scratch_); it != tag_ids_.end()) {
    id = it->second;
  } else {
    id = AddTag(tag, subrun);
    tag_ids_.emplace(key_scratch_, id);
  }
  if (by_address_.size() > 2 * tags_.size() + 1024) by_address_.clear();
  by_address_.insert_or_assign(address, id);
  return id;
}

uint32_t BatchBuilder::AddTag(std::string_view tag, std::string_view subrun) {
  const auto id = static_cast<uint32_t>(tags_.size());
  tags_.emplace_back(std::string(tag), std::string(subrun));
  local_index_.push_back(0);
  local_epoch_.push_back(0);
  // Ids are defined in order, so a batch's new ones are consecutive.
  const size_t names = tag.size() + subrun.size();
  if (!stream_full_ && id == stream_ids_ && id < kMaxStreamIds &&
      stream_bytes_ + names <= kMaxStreamBytes) {
    if (batch_.stream_tags_size() == 0) batch_.set_stream_tags_first_id(id);
    v1::ColumnTag* definition = batch_.add_stream_tags();
    definition->set_tag(std::string(tag));
    definition->set_subrun(std::string(subrun));
    ++stream_ids_;
    stream_bytes_ += names;
    bytes_ += names + 8;
  } else {
    stream_full_ = true;
  }
  return id;
}

void BatchBuilder::AppendStreamTags(uint32_t first, uint32_t count,
                                    v1::WriteRequest* request) const {
  request->set_stream_tags_first_id(first);
  for (uint32_t id = first; id < first + count; ++id) {
    v1::ColumnTag* definition = request->add_stream_tags();
    definition->set_tag(tags_[id].first);
    definition->set_subrun(tags_[id].second);
  }
}

void BatchBuilder::AddScalar(std::string_view tag, std::string_view subrun, int64_t step,
                             float value, double wall_time) {
  const uint32_t id = Intern(tag, subrun);
  const bool stream = id < stream_ids_;
  if (columns_ == nullptr || columns_stream_ != stream) {
    v1::Record* record = batch_.add_records();
    columns_ = record->mutable_scalars();
    columns_->set_style(style_);
    columns_->set_stream_tag_ids(stream);
    columns_stream_ = stream;
    ++epoch_;
  }
  uint32_t index = id;
  if (!stream) {
    if (local_epoch_[id] != epoch_) {
      local_epoch_[id] = epoch_;
      local_index_[id] = static_cast<uint32_t>(columns_->tags_size());
      v1::ColumnTag* column_tag = columns_->add_tags();
      column_tag->set_tag(tags_[id].first);
      column_tag->set_subrun(tags_[id].second);
      bytes_ += tag.size() + subrun.size() + 8;
    }
    index = local_index_[id];
  }
  columns_->add_tag_index(index);
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

void StreamTagMessages(const BatchBuilder& builder, v1::WriteRequest* first,
                       std::vector<v1::WriteRequest>* more) {
  // Keeps each message far below any sane --max-message-size.
  constexpr uint32_t kPerMessage = 4096;
  const uint32_t total = builder.stream_tags();
  for (uint32_t start = 0; start < total; start += kPerMessage) {
    v1::WriteRequest* to = start == 0 ? first : &more->emplace_back();
    builder.AppendStreamTags(start, std::min(kPerMessage, total - start), to);
  }
}

}  // namespace tblog
