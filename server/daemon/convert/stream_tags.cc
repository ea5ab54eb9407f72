#include "daemon/convert/stream_tags.h"

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/fields.h"
#include "daemon/names.h"

namespace tblog::daemon::convert {
namespace {

// Per entry beside its names: the Entry, its two encoders' strings and the
// chunk slot (an estimate for the budget).
constexpr size_t kEntryOverhead = 256;

}  // namespace

StreamTags::~StreamTags() {
  for (std::atomic<Chunk*>& chunk : chunks_) delete chunk.load(std::memory_order_relaxed);
}

absl::Status StreamTags::Define(const v1::WriteRequest& request, uint64_t message,
                                size_t* added_bytes) {
  *added_bytes = 0;
  const uint64_t first = request.stream_tags_first_id();
  for (int i = 0; i < request.stream_tags_size(); ++i) {
    const v1::ColumnTag& definition = request.stream_tags(i);
    const uint64_t id = first + static_cast<uint64_t>(i);
    const auto bad = [&](std::string_view reason) {
      return Bad(absl::StrCat("stream_tags[", i, "]"), absl::StrCat("id ", id, ": ", Sv(reason)));
    };
    if (id >= kMaxIds) {
      return bad(absl::StrCat("is past the stream's cap of ", kMaxIds, " ids"));
    }
    std::atomic<Chunk*>& slot = chunks_[id / kChunkIds];
    Chunk* chunk = slot.load(std::memory_order_relaxed);
    if (chunk == nullptr) {
      chunk = new Chunk();  // value-initialized: every entry null
      slot.store(chunk, std::memory_order_release);
      held_bytes_ += sizeof(Chunk);
      *added_bytes += sizeof(Chunk);
    }
    std::atomic<const Entry*>& cell = (*chunk)[id % kChunkIds];
    if (const Entry* entry = cell.load(std::memory_order_relaxed); entry != nullptr) {
      if (entry->tag == definition.tag() && entry->subrun == definition.subrun()) continue;
      return bad(absl::StrCat("is defined already as tag ", EscapeForMessage(entry->tag),
                              " in sub-run ", EscapeForMessage(entry->subrun),
                              "; an id keeps its tag for the whole stream"));
    }
    const size_t names = definition.tag().size() + definition.subrun().size();
    if (name_bytes_ + names > kMaxBytes) {
      return bad(absl::StrCat("its tag and sub-run would take the stream's dictionary past ",
                              kMaxBytes, " bytes"));
    }
    absl::Status valid = ValidateTag(definition.tag(), limits_);
    if (valid.ok()) valid = ValidateSubrun(definition.subrun(), limits_);
    auto entry = std::make_unique<Entry>(Entry{
        definition.tag(), definition.subrun(),
        valid.ok() ? valid : Annotate(valid, absl::StrCat("stream tag id ", id)), message,
        ScalarEventEncoder(definition.tag(), ScalarStyle::kTensor),
        ScalarEventEncoder(definition.tag(), ScalarStyle::kSimpleValue)});
    cell.store(entry.get(), std::memory_order_release);
    entries_.push_back(std::move(entry));
    name_bytes_ += names;
    const size_t held = 3 * names + kEntryOverhead;
    held_bytes_ += held;
    *added_bytes += held;
  }
  return absl::OkStatus();
}

}  // namespace tblog::daemon::convert
