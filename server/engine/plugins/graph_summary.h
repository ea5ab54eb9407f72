// Graphs for TensorBoard's graph dashboard: Event.graph_def holding a
// serialized GraphDef (shared docs/tensorboard-format.md §3 "Graphs"), either
// passed through from the caller or built from a plain node list, plus the
// tagged_run_metadata event PyTorch's add_graph writes beside it.
#ifndef TBLOG_ENGINE_PLUGINS_GRAPH_SUMMARY_H_
#define TBLOG_ENGINE_PLUGINS_GRAPH_SUMMARY_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/event.pb.h"
#include "tblog/tensorboard/graph.pb.h"

namespace tblog {

// One attribute of a node. Use the *Attr helpers below for the value.
struct GraphAttr {
  std::string name;
  tb::AttrValue value;
};

// One node: inputs name other nodes as "node", "node:port" (output port) or
// "^node" (control dependency). Attributes are written in the given order.
struct GraphNode {
  std::string name;
  std::string op;
  std::vector<std::string> inputs;
  std::string device;
  std::vector<GraphAttr> attrs;
};

struct GraphDefOptions {
  // GraphDef.versions.producer; PyTorch's exporter writes 22.
  int32_t producer = 22;
  // When true (default) every input must name a node of the graph. PyTorch's
  // exporter refers to nodes it does not emit (module parameters' owners, e.g.
  // "Sequential/Linear[0]/weight/_0"), and TensorBoard draws such graphs, so a
  // caller replaying one turns this off.
  bool require_known_inputs = true;
};

// Attribute values, as TensorFlow's AttrValue holds them. A shape dim of -1
// means unknown size.
tb::AttrValue StringAttr(std::string_view value);
tb::AttrValue IntAttr(int64_t value);
tb::AttrValue FloatAttr(float value);
tb::AttrValue BoolAttr(bool value);
tb::AttrValue ShapeAttr(std::span<const int64_t> dims);
tb::AttrValue StringListAttr(std::span<const std::string> values);
tb::AttrValue IntListAttr(std::span<const int64_t> values);
tb::AttrValue FloatListAttr(std::span<const float> values);
tb::AttrValue BoolListAttr(std::span<const bool> values);
tb::AttrValue ShapeListAttr(std::span<const std::vector<int64_t>> shapes);

// The serialized GraphDef of `nodes`, in order, with versions.producer set.
// Bytes are deterministic: attributes appear in the order given (protobuf's own
// map order would be hash order). INVALID_ARGUMENT naming the node when a node
// name or op is empty, a name repeats, an attribute name is empty or repeats,
// a shape dim is below -1, or (with require_known_inputs) an input names no node.
absl::StatusOr<std::string> BuildGraphDef(std::span<const GraphNode> nodes,
                                          const GraphDefOptions& options = {});

// An Event whose graph_def is `graph_def` unchanged, after checking that it
// parses as a GraphDef (INVALID_ARGUMENT otherwise). The caller sets step and
// wall_time. TensorBoard shows it under the tag "__run_graph__".
absl::StatusOr<tb::Event> GraphDefEvent(std::string graph_def);

// The event PyTorch's add_graph writes after the graph: tagged_run_metadata
// with tag "step1" and a RunMetadata listing the device "/device:CPU:0".
// TensorBoard offers it as the run's compute profile.
tb::Event TorchGraphRunMetadataEvent();

}  // namespace tblog

#endif  // TBLOG_ENGINE_PLUGINS_GRAPH_SUMMARY_H_
