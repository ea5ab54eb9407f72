// The serialized tb::Event of one scalar point, encoded by hand. A batch of
// scalar columns holds up to millions of points, and building a tb::Event per
// point (several allocations each) dominated the daemon's CPU; this encoder
// writes each Event with a single allocation. Its bytes are exactly the ones
// protobuf writes for Event {wall_time, step, summary {value}} with the value
// built by scalar_summary.h (fields in number order, proto3 defaults left
// out), which scalar_event_test checks point by point.
#ifndef TBLOG_ENGINE_HISTOGRAM_SCALAR_EVENT_H_
#define TBLOG_ENGINE_HISTOGRAM_SCALAR_EVENT_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace tblog {

// Which of scalar_summary.h's layouts a scalar Value takes.
enum class ScalarStyle {
  kTensor,       // ScalarValue: tensor float_val and the scalars plugin's metadata
  kSimpleValue,  // SimpleScalarValue: Value.simple_value, no metadata (PyTorch)
};

// The events of one tag in one style. Immutable once built, so Encode may be
// called from any number of threads at once.
class ScalarEventEncoder {
 public:
  // Precomputes the bytes every event of `tag` shares: the Summary and Value
  // framing, the tag, the tensor's dtype and shape and the metadata. Copies
  // what it needs of `tag`. Costs a few string appends (the tag-independent
  // tensor and metadata bytes are built once per process); meant to be built
  // once per tag of a batch and used for all its points.
  ScalarEventEncoder(std::string_view tag, ScalarStyle style);

  // The serialized Event {wall_time, step, summary {value {tag, `value`}}},
  // with one allocation. Any float is encoded, NaN and infinities included. A
  // wall_time of +0.0 and a step of 0 are left out of the bytes, as protobuf
  // leaves out proto3 defaults; they read back as 0.
  std::string Encode(double wall_time, int64_t step, float value) const;
  // The same bytes, written at `out` (room for max_size() bytes), with no
  // allocation; returns the end of what it wrote. What the daemon's scalar
  // columns use: a batch's events go back to back into one buffer.
  char* EncodeTo(double wall_time, int64_t step, float value, char* out) const;
  // The most bytes one event of this tag takes.
  size_t max_size() const { return max_size_; }

  // Where the tag lies in an `event` that Encode returned: its offset (the
  // tag is event.substr(TagOffset(event), tag_size())). Lets a reader of the
  // event (the daemon's step order check) skip parsing it.
  size_t TagOffset(const std::string& event) const {
    return event.size() - body_.size() + tag_in_body_;
  }
  size_t tag_size() const { return tag_size_; }

 private:
  // Every event's bytes after its wall_time and step: Event.summary's key
  // and length, Summary.value's, the Value, with the float's 4 bytes (at
  // value_at_) to be replaced. One copy per point, then the value.
  std::string body_;
  size_t value_at_ = 0;
  size_t tag_in_body_ = 0;  // offset of the tag's bytes in body_
  size_t tag_size_ = 0;
  size_t max_size_ = 0;
};

}  // namespace tblog

#endif  // TBLOG_ENGINE_HISTOGRAM_SCALAR_EVENT_H_
