#include "engine/plugins/graph_summary.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/plugins/proto_map_entry.h"
#include "engine/plugins/unique_names.h"
#include "base/status_util.h"

namespace tblog {
namespace {

// Field numbers of GraphDef.node and NodeDef.attr (graph.proto). attr is the
// highest NodeDef field, node the lowest GraphDef field, which decides where
// the hand-written parts go.
constexpr int kGraphDefNodeField = 1;
constexpr int kNodeDefAttrField = 5;

// "^name" and "name:port" both refer to node "name".
std::string_view InputNodeName(std::string_view input) {
  if (!input.empty() && input.front() == '^') input.remove_prefix(1);
  const size_t colon = input.rfind(':');
  if (colon != std::string_view::npos && colon + 1 < input.size() &&
      input.find_first_not_of("0123456789", colon + 1) == std::string_view::npos) {
    input = input.substr(0, colon);
  }
  return input;
}

absl::Status CheckShape(const tb::TensorShapeProto& shape) {
  for (const tb::TensorShapeProto::Dim& dim : shape.dim()) {
    if (dim.size() < -1) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape dim ", dim.size(), " (use -1 for an unknown size)"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckAttrValue(const tb::AttrValue& value) {
  if (value.has_shape()) return CheckShape(value.shape());
  if (value.has_list()) {
    for (const tb::TensorShapeProto& shape : value.list().shape()) {
      TBLOG_RETURN_IF_ERROR(CheckShape(shape));
    }
  }
  return absl::OkStatus();
}

void SetDims(std::span<const int64_t> dims, tb::TensorShapeProto* shape) {
  for (int64_t size : dims) shape->add_dim()->set_size(size);
}

absl::StatusOr<std::string> SerializeNode(const GraphNode& node) {
  tb::NodeDef proto;
  proto.set_name(node.name);
  proto.set_op(node.op);
  for (const std::string& input : node.inputs) proto.add_input(input);
  proto.set_device(node.device);
  std::string bytes = proto.SerializeAsString();
  std::set<std::string_view> attr_names;
  for (const GraphAttr& attr : node.attrs) {
    if (attr.name.empty()) return absl::InvalidArgumentError("an attribute with an empty name");
    if (!attr_names.insert(attr.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("attribute '", attr.name, "' is given twice"));
    }
    TBLOG_RETURN_IF_ERROR(Annotate(CheckAttrValue(attr.value),
                                   absl::StrCat("attribute '", attr.name, "'")));
    wire::AppendMapEntry(kNodeDefAttrField, attr.name, attr.value, &bytes);
  }
  return bytes;
}

}  // namespace

tb::AttrValue StringAttr(std::string_view value) {
  tb::AttrValue attr;
  attr.set_s(std::string(value));
  return attr;
}

tb::AttrValue IntAttr(int64_t value) {
  tb::AttrValue attr;
  attr.set_i(value);
  return attr;
}

tb::AttrValue FloatAttr(float value) {
  tb::AttrValue attr;
  attr.set_f(value);
  return attr;
}

tb::AttrValue BoolAttr(bool value) {
  tb::AttrValue attr;
  attr.set_b(value);
  return attr;
}

tb::AttrValue ShapeAttr(std::span<const int64_t> dims) {
  tb::AttrValue attr;
  SetDims(dims, attr.mutable_shape());
  return attr;
}

tb::AttrValue StringListAttr(std::span<const std::string> values) {
  tb::AttrValue attr;
  tb::AttrValue::ListValue* list = attr.mutable_list();
  for (const std::string& value : values) list->add_s(value);
  return attr;
}

tb::AttrValue IntListAttr(std::span<const int64_t> values) {
  tb::AttrValue attr;
  attr.mutable_list()->mutable_i()->Assign(values.begin(), values.end());
  return attr;
}

tb::AttrValue FloatListAttr(std::span<const float> values) {
  tb::AttrValue attr;
  attr.mutable_list()->mutable_f()->Assign(values.begin(), values.end());
  return attr;
}

tb::AttrValue BoolListAttr(std::span<const bool> values) {
  tb::AttrValue attr;
  attr.mutable_list()->mutable_b()->Assign(values.begin(), values.end());
  return attr;
}

tb::AttrValue ShapeListAttr(std::span<const std::vector<int64_t>> shapes) {
  tb::AttrValue attr;
  for (const std::vector<int64_t>& dims : shapes) SetDims(dims, attr.mutable_list()->add_shape());
  return attr;
}

absl::StatusOr<std::string> BuildGraphDef(std::span<const GraphNode> nodes,
                                          const GraphDefOptions& options) {
  UniqueNames names("graph node");
  for (size_t i = 0; i < nodes.size(); ++i) TBLOG_RETURN_IF_ERROR(names.Add(i, nodes[i].name));
  std::string bytes;
  for (const GraphNode& node : nodes) {
    if (node.op.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("graph node '", node.name, "' has no op"));
    }
    if (options.require_known_inputs) {
      for (const std::string& input : node.inputs) {
        if (!names.Contains(InputNodeName(input))) {
          return absl::InvalidArgumentError(absl::StrCat(
              "graph node '", node.name, "': input '", input, "' names no node of the graph"));
        }
      }
    }
    absl::StatusOr<std::string> node_bytes = SerializeNode(node);
    if (!node_bytes.ok()) {
      return Annotate(node_bytes.status(), absl::StrCat("graph node '", node.name, "'"));
    }
    wire::AppendLengthDelimited(kGraphDefNodeField, *node_bytes, &bytes);
  }
  tb::GraphDef rest;
  rest.mutable_versions()->set_producer(options.producer);
  bytes += rest.SerializeAsString();
  return bytes;
}

absl::StatusOr<tb::Event> GraphDefEvent(std::string graph_def) {
  tb::GraphDef parsed;
  if (!parsed.ParseFromString(graph_def)) {
    return absl::InvalidArgumentError(
        absl::StrCat("graph_def: ", graph_def.size(), " bytes that do not parse as a GraphDef"));
  }
  tb::Event event;
  event.set_graph_def(std::move(graph_def));
  return event;
}

tb::Event TorchGraphRunMetadataEvent() {
  tb::RunMetadata run_metadata;
  run_metadata.mutable_step_stats()->add_dev_stats()->set_device("/device:CPU:0");
  tb::Event event;
  event.mutable_tagged_run_metadata()->set_tag("step1");
  event.mutable_tagged_run_metadata()->set_run_metadata(run_metadata.SerializeAsString());
  return event;
}

}  // namespace tblog
