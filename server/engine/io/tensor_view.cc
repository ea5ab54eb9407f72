#include "engine/io/tensor_view.h"

#include <cstring>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/dtype.h"
#include "base/status_util.h"

namespace tblog {

size_t DTypeSize(DType dtype) { return ElementSizeOfDataType(static_cast<int>(dtype)); }

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kInt32: return "int32";
    case DType::kUint8: return "uint8";
    case DType::kInt16: return "int16";
    case DType::kInt8: return "int8";
    case DType::kInt64: return "int64";
    case DType::kBool: return "bool";
    case DType::kBfloat16: return "bfloat16";
    case DType::kUint16: return "uint16";
    case DType::kFloat16: return "float16";
    case DType::kUint32: return "uint32";
    case DType::kUint64: return "uint64";
  }
  return "unknown";
}

bool IsValidDType(int value) { return DTypeSize(static_cast<DType>(value)) != 0; }

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {  // inf or NaN
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {  // normal
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {  // zero
    bits = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float Bfloat16ToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

int64_t TensorView::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::Status TensorView::Validate() const {
  const size_t elem = DTypeSize(dtype);
  if (elem == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported dtype ", static_cast<int>(dtype)));
  }
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape dim ", i, " is negative (", shape[i], ")"));
    }
    if (shape[i] != 0 && n > std::numeric_limits<int64_t>::max() / shape[i]) {
      return absl::InvalidArgumentError("shape overflows 64-bit element count");
    }
    n *= shape[i];
  }
  if (static_cast<uint64_t>(n) > std::numeric_limits<uint64_t>::max() / elem ||
      static_cast<uint64_t>(n) * elem != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor data is ", data.size(), " bytes but shape and dtype ", Sv(DTypeName(dtype)),
        " need ", static_cast<uint64_t>(n) * elem));
  }
  return absl::OkStatus();
}

namespace {
template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
}  // namespace

double TensorView::ElementAsDouble(int64_t i) const {
  const char* p = data.data() + static_cast<size_t>(i) * DTypeSize(dtype);
  switch (dtype) {
    case DType::kFloat32: return Load<float>(p);
    case DType::kFloat64: return Load<double>(p);
    case DType::kInt32: return Load<int32_t>(p);
    case DType::kUint8: return Load<uint8_t>(p);
    case DType::kInt16: return Load<int16_t>(p);
    case DType::kInt8: return Load<int8_t>(p);
    case DType::kInt64: return static_cast<double>(Load<int64_t>(p));
    case DType::kBool: return Load<uint8_t>(p) != 0 ? 1.0 : 0.0;
    case DType::kBfloat16: return Bfloat16ToFloat(Load<uint16_t>(p));
    case DType::kUint16: return Load<uint16_t>(p);
    case DType::kFloat16: return HalfToFloat(Load<uint16_t>(p));
    case DType::kUint32: return Load<uint32_t>(p);
    case DType::kUint64: return static_cast<double>(Load<uint64_t>(p));
  }
  return 0.0;
}

}  // namespace tblog
