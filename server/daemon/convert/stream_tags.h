// The tag dictionary of one Write stream (tblog.proto, WriteRequest.stream_tags):
// ids a stream defines once and its ScalarColumns then refer to, so a client
// sends each tag once per stream instead of once per batch, and the daemon
// validates each tag and builds its ScalarEventEncoders once per stream, so
// the cost per point does not grow with the number of tags.
//
// Threads: the stream's reactor defines entries (Define, in stream order,
// never two calls at once) while workers convert earlier batches (Find) on
// other threads. Entries are immutable once defined and stored in chunks
// that never move, published with release/acquire, so Find needs no lock. A
// batch sees exactly the entries defined by the messages up to its own (the
// `message` number it carries), even when a later message defines more while
// it is being converted: what it may use never depends on timing.
#ifndef TBLOG_DAEMON_CONVERT_STREAM_TAGS_H_
#define TBLOG_DAEMON_CONVERT_STREAM_TAGS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "daemon/options.h"
#include "engine/histogram/scalar_event.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

class StreamTags {
 public:
  // The cap per stream, as tblog.proto documents it.
  static constexpr uint32_t kMaxIds = 65536;
  static constexpr size_t kMaxBytes = size_t{1} << 20;  // tag + subrun bytes of distinct ids

  // One defined id. `valid` is the tag's and subrun's validation: a bad name
  // is reported on every record that uses it, not at its definition.
  struct Entry {
    std::string tag;
    std::string subrun;
    absl::Status valid;
    uint64_t defined_at = 0;  // the stream message that defined it
    // Both styles, built at definition (workers must not build them lazily).
    ScalarEventEncoder tensor;
    ScalarEventEncoder simple;
    const ScalarEventEncoder& encoder(ScalarStyle style) const {
      return style == ScalarStyle::kTensor ? tensor : simple;
    }
  };

  explicit StreamTags(const Limits& limits) : limits_(limits) {}
  ~StreamTags();
  StreamTags(const StreamTags&) = delete;
  StreamTags& operator=(const StreamTags&) = delete;

  // Takes the definitions of `request` (message number `message` of the
  // stream, counting from 1, increasing). INVALID_ARGUMENT naming the id for
  // a conflicting redefinition or an id or byte count past the cap; the
  // entries before the bad one stay defined. `*added_bytes` gets what the
  // new entries hold (for the budget), also on error. Reactor thread only.
  absl::Status Define(const v1::WriteRequest& request, uint64_t message, size_t* added_bytes);

  // The entry of `id` if a message up to `message` defined it, else null.
  // Any thread, lock-free.
  const Entry* Find(uint32_t id, uint64_t message) const {
    if (id >= kMaxIds) return nullptr;
    const Chunk* chunk = chunks_[id / kChunkIds].load(std::memory_order_acquire);
    if (chunk == nullptr) return nullptr;
    const Entry* entry = (*chunk)[id % kChunkIds].load(std::memory_order_acquire);
    return entry != nullptr && entry->defined_at <= message ? entry : nullptr;
  }

  // What the dictionary holds, for the budget (tag and subrun bytes plus
  // each entry's encoders). Reactor thread only.
  size_t held_bytes() const { return held_bytes_; }

 private:
  static constexpr uint32_t kChunkIds = 1024;
  using Chunk = std::array<std::atomic<const Entry*>, kChunkIds>;

  const Limits& limits_;
  std::array<std::atomic<Chunk*>, kMaxIds / kChunkIds> chunks_{};
  std::vector<std::unique_ptr<Entry>> entries_;  // owns what chunks_ point to
  size_t name_bytes_ = 0;                        // against kMaxBytes
  size_t held_bytes_ = 0;
};

// What a batch's conversion needs of its stream's dictionary: the dictionary
// (kept alive by the batch) and the batch's message number.
struct StreamTagsRef {
  std::shared_ptr<const StreamTags> tags;
  uint64_t message = 0;
};

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_STREAM_TAGS_H_
