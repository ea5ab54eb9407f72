#include "engine/histogram/scalar_event.h"

#include <bit>
#include <cstring>

#include "base/wire.h"
#include "engine/histogram/scalar_summary.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog {
namespace {

using wire::AppendLengthDelimited;
using wire::AppendLengthDelimitedHeader;
using wire::AppendVarint;
using wire::FieldKey;

// Field numbers of event.proto and summary.proto (tensorboard-format.md).
constexpr int kEventWallTime = 1;     // double, fixed64
constexpr int kEventStep = 2;         // int64, varint
constexpr int kEventSummary = 5;      // Summary
constexpr int kSummaryValue = 1;      // repeated Summary.Value
constexpr int kValueTag = 1;          // string
constexpr int kValueSimpleValue = 2;  // float, fixed32
constexpr int kValueTensor = 8;       // TensorProto
constexpr int kValueMetadata = 9;     // SummaryMetadata

constexpr uint32_t kWallTimeKey = FieldKey(kEventWallTime, wire::kFixed64);
constexpr uint32_t kStepKey = FieldKey(kEventStep, wire::kVarint);

}  // namespace

ScalarEventEncoder::ScalarEventEncoder(std::string_view tag, ScalarStyle style) {
  std::string value;  // the Summary.Value up to the float
  std::string tail;   // the Value after the float (its metadata)
  if (!tag.empty()) AppendLengthDelimited(kValueTag, tag, &value);
  if (style == ScalarStyle::kSimpleValue) {
    AppendVarint(FieldKey(kValueSimpleValue, wire::kFixed32), &value);
  } else {
    // The engine's own Value gives the tensor and metadata bytes, so the two
    // cannot drift apart. float_val (TensorProto field 5) is the tensor's
    // last field set: its 4 bytes end it, and the point's value replaces them.
    // Neither depends on the tag: built once per process, not per tag (a
    // batch of 10,000 tags builds 10,000 encoders).
    struct Model {
      std::string tensor;
      std::string metadata;
    };
    static const Model model = [] {
      const tb::Summary::Value built = ScalarValue("", 0.0f);
      return Model{built.tensor().SerializeAsString(), built.metadata().SerializeAsString()};
    }();
    AppendLengthDelimitedHeader(kValueTensor, model.tensor.size(), &value);
    value.append(model.tensor, 0, model.tensor.size() - sizeof(float));
    AppendLengthDelimited(kValueMetadata, model.metadata, &tail);
  }
  const size_t value_bytes = value.size() + sizeof(float) + tail.size();
  AppendLengthDelimitedHeader(kEventSummary, wire::LengthDelimitedSize(kSummaryValue, value_bytes),
                              &body_);
  AppendLengthDelimitedHeader(kSummaryValue, value_bytes, &body_);
  // The Value starts with the tag's key and length, then its bytes.
  tag_size_ = tag.size();
  tag_in_body_ = body_.size() + (tag.empty() ? 0 : wire::LengthDelimitedSize(kValueTag, tag.size()) - tag.size());
  body_ += value;
  value_at_ = body_.size();
  body_.append(sizeof(float), '\0');
  body_ += tail;
  max_size_ = wire::VarintSize(kWallTimeKey) + sizeof(double) + wire::VarintSize(kStepKey) +
              wire::kMaxVarintBytes + body_.size();
}

std::string ScalarEventEncoder::Encode(double wall_time, int64_t step, float value) const {
  std::string out(max_size_, '\0');
  out.resize(static_cast<size_t>(EncodeTo(wall_time, step, value, out.data()) - out.data()));
  return out;
}

char* ScalarEventEncoder::EncodeTo(double wall_time, int64_t step, float value, char* out) const {
  const auto wall_bits = std::bit_cast<uint64_t>(wall_time);
  if (wall_bits != 0) {  // proto3 leaves out a default (+0.0) double; -0.0 is written
    out = wire::StoreVarint(kWallTimeKey, out);
    out = wire::StoreLittleEndian(wall_bits, sizeof(double), out);
  }
  if (step != 0) {
    out = wire::StoreVarint(kStepKey, out);
    out = wire::StoreVarint(static_cast<uint64_t>(step), out);  // negative steps take 10 bytes
  }
  std::memcpy(out, body_.data(), body_.size());
  wire::StoreLittleEndian(std::bit_cast<uint32_t>(value), sizeof(float), out + value_at_);
  return out + body_.size();
}

}  // namespace tblog
