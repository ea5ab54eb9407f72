#include "engine/plugins/graph_summary.h"

#include <string>
#include <vector>

#include "golden_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace tblog {
namespace {

tb::AttrValue OutputShapes(std::vector<int64_t> dims) {
  const std::vector<std::vector<int64_t>> shapes = {std::move(dims)};
  return ShapeListAttr(shapes);
}

// The nodes of PyTorch's export of Linear(4,8)-ReLU-Linear(8,2), in the
// golden's node and attribute order (decoded from the golden file).
std::vector<GraphNode> TorchMlpNodes() {
  const std::string l0 = "Sequential/Linear[0]/";
  const std::string l2 = "Sequential/Linear[2]/";
  const std::string relu = "Sequential/ReLU[1]/input";
  return {
      {"input/input.1", "IO Node", {}, "",
       {{"attr", StringAttr("")}, {"_output_shapes", OutputShapes({1, 4})}}},
      {"output/output.1", "IO Node", {l2 + "42"}, "",
       {{"_output_shapes", OutputShapes({1, 2})}, {"attr", StringAttr("")}}},
      {l0 + "bias/bias.1", "prim::GetAttr", {l0 + "weight/_0"}, "",
       {{"attr", StringAttr("{ name :  bias }")}}},
      {l0 + "weight/weight.1", "prim::GetAttr", {l0 + "weight/_0"}, "",
       {{"attr", StringAttr("{ name :  weight }")}}},
      {l0 + "input.3", "aten::linear", {"input/input.1", l0 + "weight/weight.1", l0 + "bias/bias.1"}, "",
       {{"_output_shapes", OutputShapes({1, 8})}, {"attr", StringAttr("{}")}}},
      {relu, "aten::relu", {l0 + "input.3"}, "",
       {{"_output_shapes", OutputShapes({1, 8})}, {"attr", StringAttr("{}")}}},
      {l2 + "bias/bias", "prim::GetAttr", {l2 + "weight/_2"}, "",
       {{"attr", StringAttr("{ name :  bias }")}}},
      {l2 + "weight/weight", "prim::GetAttr", {l2 + "weight/_2"}, "",
       {{"attr", StringAttr("{ name :  weight }")}}},
      {l2 + "42", "aten::linear", {relu, l2 + "weight/weight", l2 + "bias/bias"}, "",
       {{"attr", StringAttr("{}")}, {"_output_shapes", OutputShapes({1, 2})}}},
  };
}

TEST(GraphSummaryTest, BuildsNodesWithEveryAttributeKind) {
  const std::vector<std::string> strings = {"a", "b"};
  const std::vector<int64_t> ints = {1, -2};
  const std::vector<float> floats = {0.5f};
  const bool bools[] = {true, false};
  const std::vector<int64_t> dims = {-1, 3};
  const std::vector<GraphNode> nodes = {
      {"x", "Placeholder", {}, "/device:CPU:0", {{"shape", ShapeAttr(dims)}}},
      {"y", "Identity", {"x:0", "^x"}, "",
       {{"s", StringAttr("v")}, {"i", IntAttr(7)}, {"f", FloatAttr(1.5f)}, {"b", BoolAttr(true)},
        {"ls", StringListAttr(strings)}, {"li", IntListAttr(ints)},
        {"lf", FloatListAttr(floats)}, {"lb", BoolListAttr(bools)}}},
  };
  absl::StatusOr<std::string> bytes = BuildGraphDef(nodes);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  tb::GraphDef graph;
  ASSERT_TRUE(graph.ParseFromString(*bytes));
  ASSERT_EQ(graph.node_size(), 2);
  EXPECT_EQ(graph.versions().producer(), 22);
  EXPECT_EQ(graph.node(0).device(), "/device:CPU:0");
  EXPECT_EQ(graph.node(0).attr().at("shape").shape().dim(0).size(), -1);
  const tb::NodeDef& y = graph.node(1);
  EXPECT_EQ(y.input(1), "^x");
  EXPECT_EQ(y.attr().at("s").s(), "v");
  EXPECT_EQ(y.attr().at("i").i(), 7);
  EXPECT_EQ(y.attr().at("f").f(), 1.5f);
  EXPECT_TRUE(y.attr().at("b").b());
  EXPECT_EQ(y.attr().at("ls").list().s(1), "b");
  EXPECT_EQ(y.attr().at("li").list().i(1), -2);
  EXPECT_EQ(y.attr().at("lf").list().f(0), 0.5f);
  EXPECT_FALSE(y.attr().at("lb").list().b(1));
  // Same input, same bytes: the attribute order does not depend on hashing.
  EXPECT_EQ(*BuildGraphDef(nodes), *bytes);
  // Protobuf's own serializer, given the same entries, agrees on content.
  tb::GraphDef reparsed;
  ASSERT_TRUE(reparsed.ParseFromString(graph.SerializeAsString()));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(graph, reparsed));
}

TEST(GraphSummaryTest, RejectsInvalidGraphs) {
  std::vector<GraphNode> nodes = {{"a", "Const", {}, "", {}}, {"b", "Neg", {"a:1"}, "", {}}};
  EXPECT_TRUE(BuildGraphDef(nodes).ok());
  nodes[1].inputs = {"missing"};
  absl::Status status = BuildGraphDef(nodes).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("'missing'"), absl::string_view::npos) << status;
  EXPECT_TRUE(BuildGraphDef(nodes, {.producer = 22, .require_known_inputs = false}).ok());
  nodes[1].inputs = {"^missing"};
  EXPECT_FALSE(BuildGraphDef(nodes).ok());
  nodes[1].inputs = {"a:x"};  // not a port: names node "a:x"
  EXPECT_FALSE(BuildGraphDef(nodes).ok());
  nodes[1].inputs = {};
  nodes[1].name = "a";
  EXPECT_FALSE(BuildGraphDef(nodes).ok());
  nodes[1].name = "";
  EXPECT_FALSE(BuildGraphDef(nodes).ok());
  nodes[1].name = "b";
  nodes[1].op = "";
  EXPECT_FALSE(BuildGraphDef(nodes).ok());
  nodes[1].op = "Neg";
  nodes[1].attrs = {{"T", IntAttr(1)}, {"T", IntAttr(2)}};
  EXPECT_FALSE(BuildGraphDef(nodes).ok());
  const std::vector<int64_t> bad_dims = {-2};
  nodes[1].attrs = {{"shape", ShapeAttr(bad_dims)}};
  EXPECT_FALSE(BuildGraphDef(nodes).ok());
}

TEST(GraphSummaryTest, GraphDefEventChecksTheBytesParse) {
  absl::StatusOr<std::string> bytes = BuildGraphDef(std::vector<GraphNode>{{"a", "Const", {}, "", {}}});
  ASSERT_TRUE(bytes.ok());
  absl::StatusOr<tb::Event> event = GraphDefEvent(*bytes);
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_EQ(event->graph_def(), *bytes);
  EXPECT_FALSE(GraphDefEvent("\x0a\x05" "ab").ok());  // a node field cut short
}

TEST(GraphSummaryTest, TorchRunMetadataEventNamesTheCpu) {
  const tb::Event event = TorchGraphRunMetadataEvent();
  EXPECT_EQ(event.tagged_run_metadata().tag(), "step1");
  tb::RunMetadata run_metadata;
  ASSERT_TRUE(run_metadata.ParseFromString(event.tagged_run_metadata().run_metadata()));
  ASSERT_EQ(run_metadata.step_stats().dev_stats_size(), 1);
  EXPECT_EQ(run_metadata.step_stats().dev_stats(0).device(), "/device:CPU:0");
}

// The golden holds only the graph_def event: it was written by PyTorch's
// graph exporter through TensorBoard's writer, not by SummaryWriter.add_graph,
// so there is no tagged_run_metadata "step1" event to compare.
TEST(GraphGoldenTest, GraphDefMatchesPyTorchByteForByte) {
  const std::vector<tb::Event> events = ReadGoldenEvents("graph");
  ASSERT_EQ(events.size(), 2u);
  const tb::Event& golden = events[1];
  ASSERT_TRUE(golden.has_graph_def());
  absl::StatusOr<std::string> bytes =
      BuildGraphDef(TorchMlpNodes(), {.producer = 22, .require_known_inputs = false});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, golden.graph_def());
  // PyTorch's graph names parameter owners it does not emit as nodes.
  EXPECT_FALSE(BuildGraphDef(TorchMlpNodes()).ok());

  absl::StatusOr<tb::Event> event = GraphDefEvent(*bytes);
  ASSERT_TRUE(event.ok()) << event.status();
  event->set_wall_time(1700000000.0);
  event->set_step(0);
  EXPECT_EQ(event->SerializeAsString(), golden.SerializeAsString());
}

}  // namespace
}  // namespace tblog
