// Builds the next WriteRequest of a Writer: scalar points go into columns
// (ScalarColumns) that refer to the stream's tag dictionary (tblog.proto,
// WriteRequest.stream_tags), other records are appended as they come, and
// the order of all of them is kept.
//
// Tag ids: each distinct (subrun, tag) gets a process-wide id on first use,
// and the batch that first uses it defines it in the stream dictionary with
// that same id, so batches never need rewriting: a new stream (a reconnect)
// gets every id defined so far first (AppendStreamTags), then the resent
// batches, whose own definitions are then repeats (allowed). Ids past the
// dictionary's cap go into columns with a batch-local dictionary instead.
#ifndef TBLOG_CLIENT_BATCH_BUILDER_H_
#define TBLOG_CLIENT_BATCH_BUILDER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog {

// Not thread-safe: the Writer guards it with its mutex.
class BatchBuilder {
 public:
  // Estimated wire bytes of one scalar point in columns (index, step, value,
  // wall time), used for batch sizes and the buffer bound.
  static constexpr size_t kScalarPointBytes = 24;

  explicit BatchBuilder(v1::ScalarStyle style = v1::SCALAR_STYLE_TENSOR) : style_(style) {}
  BatchBuilder(const BatchBuilder&) = delete;
  BatchBuilder& operator=(const BatchBuilder&) = delete;

  // Appends one point to the open columns record (starting one if the last
  // record is not columns). Interns (subrun, tag) process-wide; a batch's
  // dictionary holds only the tags used in it.
  void AddScalar(std::string_view tag, std::string_view subrun, int64_t step, float value,
                 double wall_time);
  // Appends a record after everything added before. `bytes` is its size
  // (ByteSizeLong), computed by the caller outside any lock.
  void AddRecord(v1::Record&& record, size_t bytes);

  bool empty() const { return records_ == 0; }
  // Estimated wire bytes of the open batch.
  size_t bytes() const { return bytes_; }
  // Scalar points + other records in the open batch.
  size_t records() const { return records_; }
  // Distinct (subrun, tag) pairs seen since construction.
  size_t interned_tags() const { return tags_.size(); }
  // Ids defined in the stream dictionary so far: 0 .. stream_tags() - 1.
  uint32_t stream_tags() const { return stream_ids_; }
  // Defines ids [first, first + count) (all below stream_tags()) in `request`.
  void AppendStreamTags(uint32_t first, uint32_t count, v1::WriteRequest* request) const;

  // Returns the open batch (records only: sequence, ids and flush are the
  // caller's) and starts an empty one.
  v1::WriteRequest TakeBatch();

 private:
  // The process-wide id of (subrun, tag).
  uint32_t Intern(std::string_view tag, std::string_view subrun);
  // Intern without the recent-tags cache: by the caller's addresses, then
  // the map lookup, adding new ids.
  uint32_t InternSlow(std::string_view tag, std::string_view subrun);
  // A new id: defines it in the stream dictionary while that has room.
  uint32_t AddTag(std::string_view tag, std::string_view subrun);
  bool Is(uint32_t id, std::string_view tag, std::string_view subrun) const {
    return std::string_view(tags_[id].first) == tag && std::string_view(tags_[id].second) == subrun;
  }

  // A few recently interned tags, by the address of the caller's tag chars:
  // a training loop passes the same literals or strings every step, so the
  // usual call compares an address and a few bytes instead of building and
  // hashing a key. An entry is used only if its tag and subrun are equal too.
  struct RecentTag {
    const char* tag_data = nullptr;
    uint32_t id = 0;
    bool used = false;
  };
  static constexpr size_t kRecentTags = 16;  // a power of two
  std::array<RecentTag, kRecentTags> recent_{};

  // Beyond the recent tags (a loop over thousands of tags): id by the
  // caller's tag and subrun addresses and sizes, one hash of four words
  // instead of hashing the chars; used only if the chars are equal too.
  // Cleared when callers pass fresh addresses (temporaries) so often that it
  // outgrows the tags.
  using AddressKey = std::array<uintptr_t, 4>;
  absl::flat_hash_map<AddressKey, uint32_t> by_address_;

  v1::ScalarStyle style_;
  // (subrun '\0' tag) -> id; tags_[id] = {tag, subrun}.
  absl::flat_hash_map<std::string, uint32_t> tag_ids_;
  std::vector<std::pair<std::string, std::string>> tags_;
  std::string key_scratch_;
  // Per global id: its index in the open columns' dictionary, valid when
  // local_epoch_[id] == epoch_ (a new columns record bumps the epoch).
  std::vector<uint32_t> local_index_;
  std::vector<uint32_t> local_epoch_;
  uint32_t epoch_ = 0;

  // The stream dictionary (ids 0 .. stream_ids_ - 1, as tblog.proto caps it).
  static constexpr uint32_t kMaxStreamIds = 65536;
  static constexpr size_t kMaxStreamBytes = size_t{1} << 20;
  uint32_t stream_ids_ = 0;
  size_t stream_bytes_ = 0;
  bool stream_full_ = false;  // a tag did not fit: later ones are batch-local too

  v1::WriteRequest batch_;
  v1::ScalarColumns* columns_ = nullptr;  // in batch_; null when the last record is not columns
  bool columns_stream_ = false;           // columns_ refers to stream ids
  size_t bytes_ = 0;
  size_t records_ = 0;
};

// The definitions a new Write stream starts with: every id `builder` has
// defined, in `first` (the stream's bind message) and, past a few thousand,
// in `more` (messages of definitions only, sent right after it).
void StreamTagMessages(const BatchBuilder& builder, v1::WriteRequest* first,
                       std::vector<v1::WriteRequest>* more);

}  // namespace tblog

#endif  // TBLOG_CLIENT_BATCH_BUILDER_H_
