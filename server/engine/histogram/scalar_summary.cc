#include "engine/histogram/scalar_summary.h"

#include <string>

#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {

namespace {

// The scalar plugin's value around an empty rank-0 tensor of `dtype`.
tb::Summary::Value ScalarShell(std::string_view tag, tb::DataType dtype) {
  tb::Summary::Value out;
  out.set_tag(std::string(tag));
  tb::TensorProto* tensor = out.mutable_tensor();
  tensor->set_dtype(dtype);
  tensor->mutable_tensor_shape();  // present and empty: rank 0, as TensorBoard writes it
  tb::SummaryMetadata* metadata = out.mutable_metadata();
  metadata->mutable_plugin_data()->set_plugin_name("scalars");
  metadata->mutable_plugin_data()->set_content(tb::ScalarPluginData().SerializeAsString());
  metadata->set_data_class(tb::DATA_CLASS_SCALAR);
  return out;
}

}  // namespace

tb::Summary::Value ScalarValue(std::string_view tag, float value) {
  tb::Summary::Value out = ScalarShell(tag, tb::DT_FLOAT);
  out.mutable_tensor()->add_float_val(value);
  return out;
}

tb::Summary::Value ScalarValueF64(std::string_view tag, double value) {
  tb::Summary::Value out = ScalarShell(tag, tb::DT_DOUBLE);
  out.mutable_tensor()->add_double_val(value);
  return out;
}

tb::Summary::Value SimpleScalarValue(std::string_view tag, float value) {
  tb::Summary::Value out;
  out.set_tag(std::string(tag));
  out.set_simple_value(value);
  return out;
}

}  // namespace tblog
