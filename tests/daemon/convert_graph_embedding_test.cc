// Graph, embedding and custom-scalars records (convert/graph.h,
// convert/embedding.h, convert/custom_scalars.h) through
// RecordConverter::Convert.
#include "daemon/record_converter.h"

#include <string>
#include <vector>

#include "convert_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tblog/tensorboard/graph.pb.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog::daemon {
namespace {

TEST_F(RecordConverterTest, GraphFromNodesAndFromGraphDef) {
  v1::Record record = Base("", 0);
  v1::NodeList* nodes = record.mutable_graph()->mutable_nodes();
  v1::Node* input = nodes->add_node();
  input->set_name("input");
  input->set_op("Placeholder");
  (*input->mutable_attrs())["shape"].mutable_shape()->add_dims(-1);
  (*input->mutable_attrs())["dims"].mutable_list()->add_i(3);
  v1::Node* relu = nodes->add_node();
  relu->set_name("relu");
  relu->set_op("Relu");
  relu->add_inputs("input");
  const Converted out = Ok(record);
  ASSERT_EQ(out.events.size(), 1u);
  const tb::Event event = ParseEvent(out.events[0]);
  EXPECT_EQ(event.wall_time(), 1700000000.0);
  tb::GraphDef graph;
  ASSERT_TRUE(graph.ParseFromString(event.graph_def()));
  ASSERT_EQ(graph.node_size(), 2);
  EXPECT_EQ(graph.node(1).input(0), "input");
  EXPECT_EQ(graph.node(0).attr().at("dims").list().i(0), 3);

  v1::Record passthrough = Base("", 1);
  passthrough.mutable_graph()->set_graph_def(event.graph_def());
  const Converted again = Ok(passthrough);
  EXPECT_EQ(ParseEvent(again.events[0]).graph_def(), event.graph_def());
}

TEST_F(RecordConverterTest, GraphRejectsBadInput) {
  v1::Record garbage = Base("");
  garbage.mutable_graph()->set_graph_def("\xff\xff\xff");
  ExpectInvalid(garbage, {"graph", "graph_def"});

  v1::Record dangling = Base("");
  v1::Node* node = dangling.mutable_graph()->mutable_nodes()->add_node();
  node->set_name("a");
  node->set_op("Relu");
  node->add_inputs("missing");
  ExpectInvalid(dangling, {"nodes", "missing"});

  v1::Record attr = Base("");
  v1::Node* n = attr.mutable_graph()->mutable_nodes()->add_node();
  n->set_name("a");
  n->set_op("Const");
  (*n->mutable_attrs())["value"];
  ExpectInvalid(attr, {"nodes[0].attrs[\"value\"]", "no value set"});

  v1::Record none = Base("");
  none.mutable_graph();
  ExpectInvalid(none, {"source", "neither graph_def nor nodes"});
}

TEST_F(RecordConverterTest, EmbeddingBecomesProjectorFiles) {
  v1::Record record = Base("emb", 0);
  *record.mutable_embedding()->mutable_matrix() = Floats({3, 2}, Ramp(6, 0.5f));
  for (const char* label : {"cat", "dog", "cow"}) record.mutable_embedding()->add_metadata(label);
  const Converted out = Ok(record);
  EXPECT_TRUE(out.events.empty());
  std::vector<std::string> paths;
  for (const SideFile& file : out.files) paths.push_back(file.relative_path);
  EXPECT_THAT(paths, ::testing::UnorderedElementsAre("00000/emb/tensors.tsv",
                                                     "00000/emb/metadata.tsv",
                                                     "projector_config.pbtxt"));
  for (const SideFile& file : out.files) {
    EXPECT_EQ(file.append_unique, file.relative_path == "projector_config.pbtxt");
    if (file.relative_path == "00000/emb/tensors.tsv") {
      EXPECT_EQ(file.contents, "0.0\t0.5\n1.0\t1.5\n2.0\t2.5\n");
    }
    if (file.relative_path == "00000/emb/metadata.tsv") {
      EXPECT_EQ(file.contents, "cat\ndog\ncow\n");
    }
  }
}

TEST_F(RecordConverterTest, EmbeddingRejectsBadInput) {
  v1::Record negative = Base("emb", -1);
  *negative.mutable_embedding()->mutable_matrix() = Floats({1, 1}, {0});
  ExpectInvalid(negative, {"embedding \"emb\"", "step", "negative"});

  v1::Record rank = Base("emb");
  *rank.mutable_embedding()->mutable_matrix() = Floats({2}, {0, 1});
  ExpectInvalid(rank, {"matrix", "[points, dims]"});

  v1::Record labels = Base("emb");
  *labels.mutable_embedding()->mutable_matrix() = Floats({2, 1}, {0, 1});
  labels.mutable_embedding()->add_metadata("only one");
  ExpectInvalid(labels, {"embedding \"emb\""});
}

TEST_F(RecordConverterTest, CustomScalarLayout) {
  v1::Record record = Base("", 0);
  v1::Category* category = record.mutable_custom_scalars()->add_categories();
  category->set_title("losses");
  v1::Chart* chart = category->add_charts();
  chart->set_title("all");
  chart->mutable_multiline()->add_tags("loss/.*");
  const tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.tag(), "custom_scalars__config__");
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "custom_scalars");
  tb::Layout layout;
  ASSERT_TRUE(layout.ParseFromString(value.tensor().string_val(0)));
  EXPECT_EQ(layout.category(0).chart(0).multiline().tag(0), "loss/.*");

  chart->clear_multiline();
  ExpectInvalid(record, {"custom_scalars", "categories[0].charts[0]", "neither multiline"});
}

}  // namespace
}  // namespace tblog::daemon
