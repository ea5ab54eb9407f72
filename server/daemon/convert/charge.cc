#include "daemon/convert/charge.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "daemon/reduce_convert.h"

namespace tblog::daemon::convert {
namespace {

constexpr size_t kKiB = 1024;
// Per batch: the run's queue entry, the converted vector, the ack.
constexpr size_t kBatchOverhead = 2 * kKiB;
// Events past this size grow the event file's write buffer by their size.
constexpr size_t kLargeEvent = 64 * kKiB;
// Per heap block: what malloc keeps beside it.
constexpr size_t kMallocOverhead = 16;

// Elements of a tensor per its shape, at most one per data byte (a shape
// that claims more is refused by the converter; the estimate stays sane).
// The bytes are the message's or, for a shared-memory slice, the slice's.
size_t Elements(const v1::Tensor& tensor) {
  const size_t bytes = tensor.has_shm() ? static_cast<size_t>(tensor.shm().length())
                                        : tensor.data().size();
  size_t n = 1;
  for (int64_t dim : tensor.shape()) {
    if (dim <= 0) return 0;
    if (__builtin_mul_overflow(n, static_cast<size_t>(dim), &n)) return bytes;
  }
  return std::min(n, bytes);
}

size_t HeapBytes(const std::string& s) {
  // libstdc++ keeps up to 15 bytes inside the object.
  return s.capacity() > 15 ? s.capacity() + 1 + kMallocOverhead : 0;
}

}  // namespace

size_t ConversionEstimate(const v1::Record& record) {
  switch (record.kind_case()) {
    case v1::Record::kScalar: return 512;
    case v1::Record::kScalars:
      // One event per point, packed (PackedEvents): up to ~100 bytes of
      // event and its 24-byte entry, in buffers grown by doubling.
      return static_cast<size_t>(record.scalars().values_size()) * 192 + kKiB;
    case v1::Record::kHistogram:
      // Read in place; per-thread bucket counts and the value are small.
      return 64 * kKiB + size_t{24} * record.histogram().bucket_count();
    case v1::Record::kImage: {
      const v1::Image& image = record.image();
      if (image.has_pixels()) {
        // Every element becomes one 8-bit sample: the converted pixels, the
        // PNG (up to the raw size when it does not compress, and its string
        // grows by doubling) and the serialized event's copy of it.
        return 3 * Elements(image.pixels()) + Elements(image.pixels()) / 8 + 64 * kKiB;
      }
      return 2 * image.encoded().size() + 64 * kKiB;  // the value's and the event's copies
    }
    case v1::Record::kVideo:
      // Every element becomes one 8-bit sample, then one palette index per
      // pixel and the GIF (at most about the indices), and the event's copy.
      // Plus the encoder's 2 MiB LZW table.
      return 4 * Elements(record.video().frames()) + 2048 * kKiB + 64 * kKiB;
    case v1::Record::kMesh:
      // Each component becomes float32 tensor_content, then the event's copy.
      return 3 * record.mesh().ByteSizeLong() + 8 * (Elements(record.mesh().vertices()) +
                                                     Elements(record.mesh().faces()) +
                                                     Elements(record.mesh().colors())) +
             4 * kKiB;
    case v1::Record::kAudio:
      // 16-bit WAV per float sample, its value and event copies.
      return 3 * 2 * Elements(record.audio().samples()) + 64 * kKiB;
    case v1::Record::kText: return 3 * record.text().ByteSizeLong() + 4 * kKiB;
    case v1::Record::kPrCurve: return 16 * record.pr_curve().ByteSizeLong() + 64 * kKiB;
    case v1::Record::kEmbedding:
      // The matrix as TSV text (up to ~16 characters per 4-byte float), the
      // metadata TSV, and their copies in the side files; a sprite's pixels
      // as 8-bit RGB twice (images, then the square canvas) and its PNG.
      return 8 * record.embedding().ByteSizeLong() +
             9 * Elements(record.embedding().label_img()) + 64 * kKiB;
    case v1::Record::kGraph: return 4 * record.graph().ByteSizeLong() + 64 * kKiB;
    case v1::Record::kHparams:
    case v1::Record::kCustomScalars:
    case v1::Record::KIND_NOT_SET: break;
  }
  return 4 * record.ByteSizeLong() + 4 * kKiB;
}

size_t MessageCharge(const v1::WriteRequest& request) {
  return request.ByteSizeLong() + kBatchOverhead;
}

size_t BatchCharge(const v1::WriteRequest& request, size_t received) {
  size_t bytes = received + kBatchOverhead;  // MessageCharge, without walking the message
  for (const v1::Record& record : request.records()) bytes += ConversionEstimate(record);
  return bytes;
}

size_t HeldBytes(const Converted& converted) {
  size_t bytes = sizeof(Converted) + converted.events.capacity() * sizeof(EventOut) +
                 converted.files.capacity() * sizeof(SideFile) +
                 converted.warnings.capacity() * sizeof(std::string);
  for (const EventOut& event : converted.events) {
    bytes += HeapBytes(event.subrun) + HeapBytes(event.event);
    // Writing frames a copy of the event into the event file's buffer; small
    // ones share its fixed 256 KiB (README, "Memory"), a large one grows it.
    if (event.event.size() > kLargeEvent) bytes += event.event.size();
  }
  const PackedEvents& packed = converted.packed;
  bytes += packed.bytes.capacity() + kMallocOverhead + packed.events.capacity() * sizeof(PackedEvents::Event) +
           packed.series.capacity() * sizeof(PackedEvents::Series);
  for (const PackedEvents::Series& series : packed.series) {
    bytes += HeapBytes(series.subrun) + HeapBytes(series.tag);
  }
  for (const SideFile& file : converted.files) {
    bytes += HeapBytes(file.subrun) + HeapBytes(file.relative_path) + HeapBytes(file.contents);
  }
  for (const std::string& warning : converted.warnings) bytes += HeapBytes(warning);
  if (converted.contribution != nullptr) bytes += converted.contribution->Bytes();
  return bytes;
}

void DropPayload(v1::Record& record) {
  const v1::Record::KindCase kind = record.kind_case();
  if (kind == v1::Record::KIND_NOT_SET || kind == v1::Record::kScalar) return;
  if (kind == v1::Record::kScalars) {
    // tag_index stays: one entry per point, what the points metrics count
    // once the record is written (Metrics::AddWritten).
    v1::ScalarColumns& columns = *record.mutable_scalars();
    columns.clear_tags();
    columns.clear_steps();
    columns.clear_values();
    columns.clear_wall_times();
    return;
  }
  // Clearing the oneof frees the payload; an empty message of the same kind
  // (the oneof case is its field number) keeps KindOf() and the error texts.
  record.clear_kind();
  const google::protobuf::FieldDescriptor* field =
      record.GetDescriptor()->FindFieldByNumber(static_cast<int>(kind));
  if (field != nullptr) record.GetReflection()->MutableMessage(&record, field);
}

}  // namespace tblog::daemon::convert
