// Scalar summaries, as TensorBoard's writers and PyTorch's SummaryWriter
// write them. The caller wraps the Value in an Event with step and wall_time.
#ifndef TBLOG_ENGINE_HISTOGRAM_SCALAR_SUMMARY_H_
#define TBLOG_ENGINE_HISTOGRAM_SCALAR_SUMMARY_H_

#include <string_view>

#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog {

// The tf.summary.scalar / TensorBoard scalar_pb layout: a rank-0 DT_FLOAT
// tensor holding `value` in float_val, plugin "scalars" with empty content
// (ScalarPluginData version 0) and data_class SCALAR. TensorBoard's own
// writer leaves data_class unset; we set it, as both loaders trust it.
// Any float is accepted (NaN and infinities included, as TensorBoard does).
tb::Summary::Value ScalarValue(std::string_view tag, float value);

// As ScalarValue with a rank-0 DT_DOUBLE tensor holding `value` in
// double_val: what PyTorch's add_scalar(new_style=True,
// double_precision=True) writes. TensorBoard shows it at full precision.
tb::Summary::Value ScalarValueF64(std::string_view tag, double value);

// The legacy layout PyTorch's add_scalar writes: Value.simple_value and no
// metadata (both TensorBoard loaders turn it into a scalar).
tb::Summary::Value SimpleScalarValue(std::string_view tag, float value);

}  // namespace tblog

#endif  // TBLOG_ENGINE_HISTOGRAM_SCALAR_SUMMARY_H_
