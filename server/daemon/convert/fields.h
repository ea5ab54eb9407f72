// What every record-kind converter under convert/ shares: the error that names
// a field, checked views of the API's tensors, the validated header fields of a
// record, and the Event a summary value is written in. Internal to the record
// converter (record_converter.h states the conventions these implement).
//
// All functions are pure: thread-safe, and what they return borrows only from
// their arguments where it says so.
#ifndef TBLOG_DAEMON_CONVERT_FIELDS_H_
#define TBLOG_DAEMON_CONVERT_FIELDS_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/options.h"
#include "daemon/record_converter.h"
#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/event.pb.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// INVALID_ARGUMENT "<field>: <reason>"; Convert puts the record's kind and tag
// in front.
absl::Status Bad(std::string_view field, std::string_view reason);

// "unknown enum value <value>", the reason for an enum proto3 kept but the
// API does not define.
std::string UnknownEnum(int value);

// "[2,3]".
std::string ShapeString(std::span<const int64_t> shape);

// A view of `tensor` after checking its dtype, dims, element count (against
// limits.max_tensor_elements) and byte size. Borrows from `tensor`, or, for
// a tensor that names a shared-memory slice (Tensor.shm), from the ring of
// ScopedShmRing::Current(). Only converters that pass `allow_shm` take such
// a slice: they must cope with elements that change while they read them
// (shm_ring.h); every other one answers INVALID_ARGUMENT.
absl::StatusOr<TensorView> ViewTensor(const v1::Tensor& tensor, std::string_view field,
                                      const Limits& limits, bool allow_shm = false);

// The bytes of `tensor.shm` in the current ring (ViewTensor's part for a
// slice): INVALID_ARGUMENT naming `field` when slices are not allowed here,
// the tensor also has data, there is no ring, or the slice is not inside it.
absl::StatusOr<std::string_view> ShmSliceData(const v1::Tensor& tensor, std::string_view field,
                                              bool allow_shm);

// float16, bfloat16, float32 or float64.
bool IsFloatDType(DType dtype);

// OK for a floating-point `view`, otherwise an error naming `field`.
absl::Status RequireFloat(const TensorView& view, std::string_view field);

// Every element as float, NaN and infinities refused (with the first index).
absl::StatusOr<std::vector<float>> FiniteFloats(const TensorView& view, std::string_view field);

// What every record kind shares once validated. Borrows tag and subrun from
// the record.
struct Header {
  std::string_view tag;
  std::string_view subrun;
  int64_t step = 0;
  double wall_time = 0;
};

// The wall_time to write: finite, 0 standing for the receive time.
absl::StatusOr<double> WallTime(double wall_time, double receive_time, std::string_view field);

// OK for "" (the run itself) or a valid relative path without reserved names
// (names.h, IsReservedName).
absl::Status ValidateSubrun(std::string_view subrun, const Limits& limits);

std::string EventBytes(const tb::Event& event);

// Puts the record's display name and description on a value's metadata.
void Describe(const v1::Record& record, tb::Summary::Value& value);

// The Event {header's wall_time and step, summary {value}} for header's subrun.
EventOut SummaryEvent(const Header& header, tb::Summary::Value value);

// One Event holding several values (a mesh's components), in order.
EventOut SummaryEvent(const Header& header, std::vector<tb::Summary::Value> values);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_FIELDS_H_
