// Element sizes of the tensor element types. The engine's DType, the API's
// tblog.v1.DType and TensorFlow's DataType use the same numbers, so this one
// table serves all of them.
#ifndef TBLOG_BASE_DTYPE_H_
#define TBLOG_BASE_DTYPE_H_

#include <cstddef>

namespace tblog {

// Bytes of one element of TensorFlow DataType number `dtype` (DT_FLOAT = 1,
// ...), or 0 for a number that tblog does not accept as an element type.
constexpr size_t ElementSizeOfDataType(int dtype) {
  switch (dtype) {
    case 10:  // DT_BOOL
    case 6:   // DT_INT8
    case 4:   // DT_UINT8
      return 1;
    case 5:   // DT_INT16
    case 17:  // DT_UINT16
    case 19:  // DT_HALF
    case 14:  // DT_BFLOAT16
      return 2;
    case 1:   // DT_FLOAT
    case 3:   // DT_INT32
    case 22:  // DT_UINT32
      return 4;
    case 2:   // DT_DOUBLE
    case 9:   // DT_INT64
    case 23:  // DT_UINT64
      return 8;
    default:
      return 0;
  }
}

}  // namespace tblog

#endif  // TBLOG_BASE_DTYPE_H_
