#include "engine/histogram/scalar_summary.h"

#include <string>

#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {

tb::Summary::Value ScalarValue(std::string_view tag, float value) {
  tb::Summary::Value out;
  out.set_tag(std::string(tag));
  tb::TensorProto* tensor = out.mutable_tensor();
  tensor->set_dtype(tb::DT_FLOAT);
  tensor->mutable_tensor_shape();  // present and empty: rank 0, as TensorBoard writes it
  tensor->add_float_val(value);
  tb::SummaryMetadata* metadata = out.mutable_metadata();
  metadata->mutable_plugin_data()->set_plugin_name("scalars");
  metadata->mutable_plugin_data()->set_content(tb::ScalarPluginData().SerializeAsString());
  metadata->set_data_class(tb::DATA_CLASS_SCALAR);
  return out;
}

tb::Summary::Value SimpleScalarValue(std::string_view tag, float value) {
  tb::Summary::Value out;
  out.set_tag(std::string(tag));
  out.set_simple_value(value);
  return out;
}

}  // namespace tblog
