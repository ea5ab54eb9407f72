// The converters of the kinds added for PyTorch parity (issue 12): float64
// scalars, video (convert/video.cc), mesh (convert/mesh.cc), the embedding's
// sprite and the Keras model configuration: what each writes, and that every
// bad field is INVALID_ARGUMENT naming it.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "convert_test_util.h"
#include "daemon/convert/charge.h"
#include "gtest/gtest.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog::daemon {
namespace {

using ConvertVideoMeshTest = RecordConverterTest;

TEST_F(ConvertVideoMeshTest, Float64ScalarIsADoubleTensorOrARoundedSimpleValue) {
  v1::Record record = Base("lr");
  record.mutable_scalar()->set_value(7.0f);               // ignored: value_f64 is set
  record.mutable_scalar()->set_value_f64(0.1 + 1e-12);
  tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.tensor().dtype(), tb::DT_DOUBLE);
  ASSERT_EQ(value.tensor().double_val_size(), 1);
  EXPECT_EQ(value.tensor().double_val(0), 0.1 + 1e-12);
  EXPECT_EQ(value.tensor().tensor_shape().dim_size(), 0);
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "scalars");

  record.mutable_scalar()->set_style(v1::SCALAR_STYLE_SIMPLE_VALUE);
  value = OnlyValue(Ok(record));
  EXPECT_EQ(value.simple_value(), static_cast<float>(0.1 + 1e-12));
}

v1::Record VideoRecord(std::vector<int64_t> shape, float fps = 0) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  std::vector<uint8_t> pixels(static_cast<size_t>(count));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 37);
  v1::Record record = Base("clip");
  v1::Tensor* frames = record.mutable_video()->mutable_frames();
  frames->set_dtype(v1::DTYPE_UINT8);
  for (int64_t d : shape) frames->add_shape(d);
  frames->set_data(std::string(pixels.begin(), pixels.end()));
  record.mutable_video()->set_fps(fps);
  return record;
}

TEST_F(ConvertVideoMeshTest, VideoIsALoopingGifInASummaryImage) {
  const tb::Summary::Value value = OnlyValue(Ok(VideoRecord({3, 5, 7, 3})));
  EXPECT_EQ(value.tag(), "clip");
  EXPECT_EQ(value.image().height(), 5);
  EXPECT_EQ(value.image().width(), 7);
  EXPECT_EQ(value.image().colorspace(), 3);
  const std::string& gif = value.image().encoded_image_string();
  ASSERT_GT(gif.size(), 13u);
  EXPECT_EQ(gif.substr(0, 6), "GIF89a");
  EXPECT_EQ(static_cast<uint8_t>(gif[6]) | static_cast<uint8_t>(gif[7]) << 8, 7);  // width
  EXPECT_NE(gif.find("NETSCAPE2.0"), std::string::npos);                          // loops
  EXPECT_EQ(gif.back(), '\x3b');
  // fps 0 means PyTorch's 4: a delay of 25 hundredths in each graphic control block.
  const std::string control("\x21\xf9\x04\x04\x19\x00", 6);
  size_t frames = 0;
  for (size_t at = gif.find(control); at != std::string::npos; at = gif.find(control, at + 1)) {
    ++frames;
  }
  EXPECT_EQ(frames, 3u);
}

TEST_F(ConvertVideoMeshTest, BadVideosNameTheField) {
  ExpectInvalid(VideoRecord({5, 7, 3}), {"video \"clip\"", "frames", "[frames, height, width"});
  ExpectInvalid(VideoRecord({2, 5, 7, 2}), {"frames", "1|3|4"});
  ExpectInvalid(VideoRecord({2, 5, 7, 3}, -1), {"fps", "finite and > 0"});
  v1::Record no_frames = Base("clip");
  no_frames.mutable_video();
  ExpectInvalid(no_frames, {"frames", "not set"});
  v1::Record ints = VideoRecord({1, 2, 2, 1});
  ints.mutable_video()->mutable_frames()->set_dtype(v1::DTYPE_INT8);
  ExpectInvalid(ints, {"frames", "int8"});
  limits_.max_image_pixels = 100;                 // 3 frames of 6x6 = 108 pixels
  ExpectInvalid(VideoRecord({3, 6, 6, 1}), {"frames", "108 pixels", "limit of 100"});
}

v1::Record MeshRecord(bool faces, bool colors) {
  v1::Record record = Base("tetra");
  v1::Mesh* mesh = record.mutable_mesh();
  *mesh->mutable_vertices() = Floats({1, 4, 3}, {1, 1, 1, -1, -1, 1, 1, -1, -1, -1, 1, -1});
  if (faces) {
    *mesh->mutable_faces() = MakeTensor<int32_t>(v1::DTYPE_INT32, {1, 2, 3}, {0, 2, 3, 0, 3, 1});
  }
  if (colors) {
    *mesh->mutable_colors() = MakeTensor<uint8_t>(
        v1::DTYPE_UINT8, {1, 4, 3}, {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 0, 255});
  }
  return record;
}

TEST_F(ConvertVideoMeshTest, MeshIsOneEventOfThePluginsTensors) {
  v1::Record record = MeshRecord(true, true);
  record.mutable_mesh()->set_config_json(R"({"camera": {"fov": 75}})");
  record.set_display_name("Tetrahedron");
  const Converted out = Ok(record);
  ASSERT_EQ(out.events.size(), 1u);
  const tb::Event event = ParseEvent(out.events[0]);
  EXPECT_EQ(event.step(), 3);
  ASSERT_EQ(event.summary().value_size(), 3);
  const char* tags[] = {"tetra_VERTEX", "tetra_FACE", "tetra_COLOR"};
  for (int i = 0; i < 3; ++i) {
    const tb::Summary::Value& value = event.summary().value(i);
    EXPECT_EQ(value.tag(), tags[i]);
    EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "mesh");
    EXPECT_EQ(value.metadata().display_name(), "Tetrahedron");
    tb::MeshPluginData data;
    ASSERT_TRUE(data.ParseFromString(value.metadata().plugin_data().content()));
    EXPECT_EQ(data.name(), "tetra");
    EXPECT_EQ(data.content_type(), i + 1);
    EXPECT_EQ(data.components(), 0b1110u);
    EXPECT_EQ(data.json_config(), R"({"camera": {"fov": 75}})");
    EXPECT_EQ(value.tensor().dtype(), tb::DT_FLOAT);
    EXPECT_EQ(Dims(value.tensor()), (std::vector<int64_t>{1, i == 1 ? 2 : 4, 3}));
  }
  // Faces as float32 indices: 0, 2, 3, ...
  const std::string& faces = event.summary().value(1).tensor().tensor_content();
  ASSERT_EQ(faces.size(), 6 * sizeof(float));
  float third = 0;
  std::memcpy(&third, faces.data() + 2 * sizeof(float), sizeof(float));
  EXPECT_EQ(third, 3.0f);

  const tb::Event cloud = ParseEvent(Ok(MeshRecord(false, false)).events[0]);
  ASSERT_EQ(cloud.summary().value_size(), 1);
  tb::MeshPluginData data;
  ASSERT_TRUE(data.ParseFromString(cloud.summary().value(0).metadata().plugin_data().content()));
  EXPECT_EQ(data.components(), 0b10u);
  EXPECT_EQ(data.json_config(), "{}");
}

TEST_F(ConvertVideoMeshTest, BadMeshesNameTheComponent) {
  v1::Record record = MeshRecord(true, false);
  *record.mutable_mesh()->mutable_faces() =
      MakeTensor<int32_t>(v1::DTYPE_INT32, {1, 1, 3}, {0, 1, 4});
  ExpectInvalid(record, {"mesh \"tetra\"", "faces", "element 2 is 4", "[0, 3]"});
  record = MeshRecord(false, true);
  *record.mutable_mesh()->mutable_colors() = Floats({1, 3, 3}, std::vector<float>(9, 1.0f));
  ExpectInvalid(record, {"colors", "3 colours for 4 vertices"});
  *record.mutable_mesh()->mutable_colors() = Floats({1, 4, 3}, std::vector<float>(12, 256.0f));
  ExpectInvalid(record, {"colors", "in [0, 255]"});
  *record.mutable_mesh()->mutable_colors() = Floats({2, 4, 3}, std::vector<float>(24, 1.0f));
  ExpectInvalid(record, {"colors", "batch size 2 differs from vertices' 1"});
  record = MeshRecord(false, false);
  *record.mutable_mesh()->mutable_vertices() = Floats({4, 3}, std::vector<float>(12, 0.0f));
  ExpectInvalid(record, {"vertices", "must be [B, N, 3]"});
  record.mutable_mesh()->clear_vertices();
  ExpectInvalid(record, {"vertices", "not set"});
  record = MeshRecord(false, false);
  record.mutable_mesh()->set_config_json("\xff");
  ExpectInvalid(record, {"config_json"});
}

TEST_F(ConvertVideoMeshTest, EmbeddingLabelImgBecomesTheSprite) {
  v1::Record record = Base("pts", 1);
  *record.mutable_embedding()->mutable_matrix() = Floats({5, 2}, Ramp(10));
  *record.mutable_embedding()->mutable_label_img() =
      Floats({5, 1, 3, 4}, std::vector<float>(60, 0.5f));
  record.mutable_embedding()->set_label_img_layout(v1::PIXEL_LAYOUT_NCHW);
  const Converted out = Ok(record);
  bool sprite = false;
  for (const SideFile& file : out.files) {
    if (file.relative_path == "00001/pts/sprite.png") {
      sprite = true;
      EXPECT_EQ(file.contents.substr(1, 3), "PNG");
    }
    if (file.relative_path == "projector_config.pbtxt") {
      EXPECT_THAT(file.contents,
                  ::testing::HasSubstr("  sprite {\n    image_path: \"00001/pts/sprite.png\"\n"
                                       "    single_image_dim: 4\n    single_image_dim: 3\n  }\n"
                                       "  tensor_path:"));
    }
  }
  EXPECT_TRUE(sprite);

  *record.mutable_embedding()->mutable_label_img() =
      Floats({4, 1, 3, 4}, std::vector<float>(48, 0.5f));
  ExpectInvalid(record, {"embedding \"pts\"", "label_img", "must be [5, C, H, W]"});
  record.mutable_embedding()->set_label_img_layout(static_cast<v1::PixelLayout>(9));
  ExpectInvalid(record, {"label_img_layout", "unknown enum value 9"});
}

TEST_F(ConvertVideoMeshTest, KerasModelConfigIsTheKerasTag) {
  v1::Record record;
  record.set_subrun("train");
  record.mutable_graph()->set_keras_model_json(R"({"class_name": "Sequential"})");
  const tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.tag(), "keras");
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "graph_keras_model");
  EXPECT_EQ(value.metadata().plugin_data().content(), "1");
  EXPECT_EQ(value.tensor().dtype(), tb::DT_STRING);
  ASSERT_EQ(value.tensor().string_val_size(), 1);
  EXPECT_EQ(value.tensor().string_val(0), R"({"class_name": "Sequential"})");
  record.mutable_graph()->set_keras_model_json("");
  ExpectInvalid(record, {"keras_model_json", "is empty"});
}

TEST_F(ConvertVideoMeshTest, TheChargeCoversWhatVideosAndMeshesHold) {
  for (v1::Record record : {VideoRecord({8, 64, 64, 3}), MeshRecord(true, true)}) {
    v1::WriteRequest request;
    *request.add_records() = record;
    const size_t charge = convert::BatchCharge(request, request.ByteSizeLong());
    const BatchConversion conversion = converter_.ConvertBatch(request, kReceiveTime);
    ASSERT_TRUE(conversion.converted[0].ok()) << conversion.converted[0].status();
    EXPECT_LT(conversion.held_bytes, charge) << record.kind_case();
    EXPECT_EQ(request.records(0).kind_case(), record.kind_case());   // payload dropped, kind kept
  }
}

}  // namespace
}  // namespace tblog::daemon
