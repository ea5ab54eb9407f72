// A borrowed, typed view of a dense row-major tensor, the common input of the
// summary builders. Bytes are little-endian, as on the wire and on disk.
#ifndef TBLOG_ENGINE_IO_TENSOR_VIEW_H_
#define TBLOG_ENGINE_IO_TENSOR_VIEW_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "tblog/tensorboard/tensor.pb.h"

namespace tblog {

namespace tb = ::tblog::tensorboard;

// Element types a builder accepts; values are TensorFlow's DataType numbers so
// a tb::DataType converts by static_cast.
enum class DType : int {
  kFloat32 = tb::DT_FLOAT,
  kFloat64 = tb::DT_DOUBLE,
  kInt32 = tb::DT_INT32,
  kUint8 = tb::DT_UINT8,
  kInt16 = tb::DT_INT16,
  kInt8 = tb::DT_INT8,
  kInt64 = tb::DT_INT64,
  kBool = tb::DT_BOOL,
  kBfloat16 = tb::DT_BFLOAT16,
  kUint16 = tb::DT_UINT16,
  kFloat16 = tb::DT_HALF,
  kUint32 = tb::DT_UINT32,
  kUint64 = tb::DT_UINT64,
};

// Size in bytes of one element, or 0 for a value that is not a DType.
size_t DTypeSize(DType dtype);
// "float32", "bfloat16", ...; "unknown" for a value that is not a DType.
std::string_view DTypeName(DType dtype);
// True when `value` (e.g. from the wire) names one of the DTypes above.
bool IsValidDType(int value);

// IEEE half and bfloat16 bit patterns to float (exact; NaN stays NaN).
float HalfToFloat(uint16_t bits);
float Bfloat16ToFloat(uint16_t bits);

// The view. Does not own `data` or `shape`; both must outlive it.
struct TensorView {
  DType dtype = DType::kFloat32;
  std::span<const int64_t> shape;  // empty = rank 0 (one element)
  std::string_view data;           // num_elements() * DTypeSize(dtype) bytes

  // Product of the dims (1 for rank 0).
  int64_t num_elements() const;
  // OK when every dim is >= 0, the product does not overflow, and data holds
  // exactly that many elements; otherwise INVALID_ARGUMENT saying which.
  absl::Status Validate() const;
  // Element i converted to double. i must be < num_elements().
  double ElementAsDouble(int64_t i) const;
};

}  // namespace tblog

#endif  // TBLOG_ENGINE_IO_TENSOR_VIEW_H_
