#include "daemon/convert/fields.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_util.h"
#include "daemon/names.h"
#include "daemon/shm_ring.h"

namespace tblog::daemon::convert {

// The API's DType enum uses TensorFlow's numbers, as tblog::DType does, so a
// validated value converts by static_cast (ViewTensor).
static_assert(v1::DTYPE_FLOAT32 == static_cast<int>(DType::kFloat32));
static_assert(v1::DTYPE_FLOAT64 == static_cast<int>(DType::kFloat64));
static_assert(v1::DTYPE_INT32 == static_cast<int>(DType::kInt32));
static_assert(v1::DTYPE_UINT8 == static_cast<int>(DType::kUint8));
static_assert(v1::DTYPE_INT16 == static_cast<int>(DType::kInt16));
static_assert(v1::DTYPE_INT8 == static_cast<int>(DType::kInt8));
static_assert(v1::DTYPE_INT64 == static_cast<int>(DType::kInt64));
static_assert(v1::DTYPE_BOOL == static_cast<int>(DType::kBool));
static_assert(v1::DTYPE_BFLOAT16 == static_cast<int>(DType::kBfloat16));
static_assert(v1::DTYPE_UINT16 == static_cast<int>(DType::kUint16));
static_assert(v1::DTYPE_FLOAT16 == static_cast<int>(DType::kFloat16));
static_assert(v1::DTYPE_UINT32 == static_cast<int>(DType::kUint32));
static_assert(v1::DTYPE_UINT64 == static_cast<int>(DType::kUint64));

absl::Status Bad(std::string_view field, std::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(field), ": ", Sv(reason)));
}

std::string UnknownEnum(int value) { return absl::StrCat("unknown enum value ", value); }

std::string ShapeString(std::span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

absl::StatusOr<TensorView> ViewTensor(const v1::Tensor& tensor, std::string_view field,
                                      const Limits& limits, bool allow_shm) {
  const int dtype = tensor.dtype();
  if (dtype == v1::DTYPE_UNSPECIFIED) return Bad(field, "dtype is not set");
  if (!IsValidDType(dtype)) return Bad(field, absl::StrCat("dtype: ", UnknownEnum(dtype)));
  TensorView view;
  view.dtype = static_cast<DType>(dtype);
  view.shape = std::span<const int64_t>(tensor.shape().data(), tensor.shape().size());
  view.data = tensor.data();
  if (tensor.has_shm()) {
    absl::StatusOr<std::string_view> slice = ShmSliceData(tensor, field, allow_shm);
    if (!slice.ok()) return slice.status();
    view.data = *slice;
  }
  int64_t elements = 1;
  for (size_t i = 0; i < view.shape.size(); ++i) {
    const int64_t dim = view.shape[i];
    if (dim < 0) {
      return Bad(field, absl::StrCat("shape ", ShapeString(view.shape), " has a negative dim"));
    }
    if (dim != 0 && elements > limits.max_tensor_elements / dim) {
      elements = limits.max_tensor_elements + 1;  // saturate: it is over the limit anyway
    } else {
      elements *= dim;
    }
  }
  if (elements > limits.max_tensor_elements) {
    return Bad(field, absl::StrCat("shape ", ShapeString(view.shape), " has more than ",
                                   limits.max_tensor_elements, " elements (the limit)"));
  }
  const uint64_t need = static_cast<uint64_t>(elements) * DTypeSize(view.dtype);
  if (need != view.data.size()) {
    return Bad(field, absl::StrCat("tensor data is ", view.data.size(), " bytes but shape ",
                                   ShapeString(view.shape), " and dtype ",
                                   Sv(DTypeName(view.dtype)), " need ", need));
  }
  return view;
}

absl::StatusOr<std::string_view> ShmSliceData(const v1::Tensor& tensor, std::string_view field,
                                              bool allow_shm) {
  if (!allow_shm) {
    // Only the converters that read a slice safely while its client may
    // rewrite it take one (shm_ring.h).
    return Bad(field, "shm: shared-memory slices are taken for histogram values, image pixels "
                      "and embedding matrices only; send data");
  }
  if (!tensor.data().empty()) return Bad(field, "has both data and a shm slice; send one");
  const ShmRing* ring = ScopedShmRing::Current();
  if (ring == nullptr) {
    return Bad(field, "shm: this stream has no shared-memory ring (WriteRequest.shm_ring)");
  }
  return ring->Slice(tensor.shm(), field);
}

bool IsFloatDType(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat64 || dtype == DType::kFloat16 ||
         dtype == DType::kBfloat16;
}

absl::Status RequireFloat(const TensorView& view, std::string_view field) {
  if (IsFloatDType(view.dtype)) return absl::OkStatus();
  return Bad(field, absl::StrCat("dtype ", Sv(DTypeName(view.dtype)),
                                 " is not supported (float16, bfloat16, float32 or float64)"));
}

absl::StatusOr<std::vector<float>> FiniteFloats(const TensorView& view, std::string_view field) {
  std::vector<float> out(static_cast<size_t>(view.num_elements()));
  for (size_t i = 0; i < out.size(); ++i) {
    const double v = view.ElementAsDouble(static_cast<int64_t>(i));
    if (!std::isfinite(v)) {
      return Bad(field, absl::StrCat("element ", i, " is ", v, "; must be finite"));
    }
    out[i] = static_cast<float>(v);
  }
  return out;
}

absl::StatusOr<double> WallTime(double wall_time, double receive_time, std::string_view field) {
  if (!std::isfinite(wall_time)) {
    return Bad(field, absl::StrCat("is ", wall_time, "; must be finite"));
  }
  return wall_time == 0 ? receive_time : wall_time;
}

absl::Status ValidateSubrun(std::string_view subrun, const Limits& limits) {
  if (subrun.empty()) return absl::OkStatus();
  TBLOG_RETURN_IF_ERROR(ValidateRelativePath(subrun, "subrun", limits));
  return CheckNotReserved(subrun, "subrun");
}

std::string EventBytes(const tb::Event& event) { return event.SerializeAsString(); }

void Describe(const v1::Record& record, tb::Summary::Value& value) {
  if (!record.display_name().empty()) {
    value.mutable_metadata()->set_display_name(record.display_name());
  }
  if (!record.description().empty()) {
    value.mutable_metadata()->set_summary_description(record.description());
  }
}

EventOut SummaryEvent(const Header& header, tb::Summary::Value value) {
  std::vector<tb::Summary::Value> one;
  one.push_back(std::move(value));
  return SummaryEvent(header, std::move(one));
}

EventOut SummaryEvent(const Header& header, std::vector<tb::Summary::Value> values) {
  tb::Event event;
  event.set_wall_time(header.wall_time);
  event.set_step(header.step);
  for (tb::Summary::Value& value : values) *event.mutable_summary()->add_value() = std::move(value);
  return EventOut{std::string(header.subrun), EventBytes(event)};
}

}  // namespace tblog::daemon::convert
