#include "daemon/convert/graph.h"

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/fields.h"
#include "daemon/names.h"
#include "engine/plugins/graph_summary.h"

namespace tblog::daemon::convert {
namespace {

absl::StatusOr<tb::AttrValue> ToAttr(const v1::AttrValue& attr, std::string_view field) {
  switch (attr.value_case()) {
    case v1::AttrValue::kS: return StringAttr(attr.s());
    case v1::AttrValue::kI: return IntAttr(attr.i());
    case v1::AttrValue::kF: return FloatAttr(attr.f());
    case v1::AttrValue::kB: return BoolAttr(attr.b());
    case v1::AttrValue::kShape:
      return ShapeAttr({attr.shape().dims().data(), static_cast<size_t>(attr.shape().dims_size())});
    case v1::AttrValue::kList: {
      const v1::AttrList& list = attr.list();
      const int kinds = (list.s_size() > 0) + (list.i_size() > 0) + (list.f_size() > 0) +
                        (list.b_size() > 0) + (list.shape_size() > 0);
      if (kinds > 1) return Bad(field, "a list holds values of more than one kind");
      if (list.i_size() > 0) {
        return IntListAttr({list.i().data(), static_cast<size_t>(list.i_size())});
      }
      if (list.f_size() > 0) {
        return FloatListAttr({list.f().data(), static_cast<size_t>(list.f_size())});
      }
      if (list.b_size() > 0) {
        return BoolListAttr({list.b().data(), static_cast<size_t>(list.b_size())});
      }
      if (list.shape_size() > 0) {
        std::vector<std::vector<int64_t>> shapes;
        for (const v1::Shape& shape : list.shape()) {
          shapes.emplace_back(shape.dims().begin(), shape.dims().end());
        }
        return ShapeListAttr(shapes);
      }
      const std::vector<std::string> strings(list.s().begin(), list.s().end());
      return StringListAttr(strings);
    }
    case v1::AttrValue::VALUE_NOT_SET: break;
  }
  return Bad(field, "no value set");
}

// keras.callbacks.TensorBoard's keras_model_summary("keras", model).
tb::Summary::Value KerasModelValue(const std::string& json) {
  tb::Summary::Value value;
  value.set_tag("keras");
  tb::TensorProto* tensor = value.mutable_tensor();
  tensor->set_dtype(tb::DT_STRING);
  tensor->mutable_tensor_shape();  // rank 0
  tensor->add_string_val(json);
  tb::SummaryMetadata::PluginData* plugin = value.mutable_metadata()->mutable_plugin_data();
  plugin->set_plugin_name("graph_keras_model");
  plugin->set_content("1");  // the plugin's version, as Keras writes it
  return value;
}

}  // namespace

absl::StatusOr<tb::Event> ConvertGraph(const v1::Graph& graph, const Limits& limits) {
  switch (graph.source_case()) {
    case v1::Graph::kKerasModelJson: {
      if (graph.keras_model_json().empty()) return Bad("keras_model_json", "is empty");
      TBLOG_RETURN_IF_ERROR(
          ValidateFreeText(graph.keras_model_json(), "keras_model_json", limits.max_text_bytes));
      tb::Event event;
      *event.mutable_summary()->add_value() = KerasModelValue(graph.keras_model_json());
      return event;
    }
    case v1::Graph::kGraphDef: {
      if (graph.graph_def().empty()) return Bad("graph_def", "is empty");
      absl::StatusOr<tb::Event> event = GraphDefEvent(graph.graph_def());
      if (!event.ok()) return Annotate(event.status(), "graph_def");
      return event;
    }
    case v1::Graph::kNodes: {
      const v1::NodeList& list = graph.nodes();
      if (list.node_size() == 0) return Bad("nodes", "is empty");
      if (list.node_size() > limits.max_graph_nodes) {
        return Bad("nodes", absl::StrCat(list.node_size(), " nodes is more than the limit of ",
                                         limits.max_graph_nodes));
      }
      std::vector<GraphNode> nodes;
      nodes.reserve(static_cast<size_t>(list.node_size()));
      for (int i = 0; i < list.node_size(); ++i) {
        const v1::Node& node = list.node(i);
        GraphNode out;
        out.name = node.name();
        out.op = node.op();
        out.inputs.assign(node.inputs().begin(), node.inputs().end());
        out.device = node.device();
        // Sorted by name: a proto map has no order, the GraphDef's bytes should.
        std::map<std::string_view, const v1::AttrValue*> attrs;
        for (const auto& [name, value] : node.attrs()) attrs[name] = &value;
        for (const auto& [name, value] : attrs) {
          absl::StatusOr<tb::AttrValue> attr = ToAttr(
              *value, absl::StrCat("nodes[", i, "].attrs[", EscapeForMessage(name), "]"));
          if (!attr.ok()) return attr.status();
          out.attrs.push_back(GraphAttr{std::string(name), *std::move(attr)});
        }
        nodes.push_back(std::move(out));
      }
      // Inputs must name nodes of the list: a typo is an error, not a dangling edge.
      absl::StatusOr<std::string> graph_def = BuildGraphDef(nodes);
      if (!graph_def.ok()) return Annotate(graph_def.status(), "nodes");
      return GraphDefEvent(*std::move(graph_def));
    }
    case v1::Graph::SOURCE_NOT_SET: break;
  }
  return Bad("source", "neither graph_def nor nodes is set");
}

}  // namespace tblog::daemon::convert
