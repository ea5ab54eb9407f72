// Graph records: a serialized GraphDef passed through, a list of nodes
// (name, op, inputs, device, attributes) that the engine builds into one, or
// a Keras model's JSON configuration (tag "keras").
// The node count is bounded by limits.max_graph_nodes; an input that names no
// node of the list is an error, not a dangling edge.
#ifndef TBLOG_DAEMON_CONVERT_GRAPH_H_
#define TBLOG_DAEMON_CONVERT_GRAPH_H_

#include "absl/status/statusor.h"
#include "daemon/options.h"
#include "engine/io/tensor_view.h"  // the tb:: alias
#include "tblog/tensorboard/event.pb.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon::convert {

// The Event holding the graph; the caller sets its wall time and step.
absl::StatusOr<tb::Event> ConvertGraph(const v1::Graph& graph, const Limits& limits);

}  // namespace tblog::daemon::convert

#endif  // TBLOG_DAEMON_CONVERT_GRAPH_H_
