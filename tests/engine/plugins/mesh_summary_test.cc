// engine/plugins/mesh_summary.h: the mesh plugin's values as PyTorch's
// add_mesh writes them, and the checks on each component.
#include "engine/plugins/mesh_summary.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {
namespace {

TensorView Floats(const std::vector<float>& data, const std::vector<int64_t>& shape) {
  return TensorView{DType::kFloat32, shape,
                    std::string_view(reinterpret_cast<const char*>(data.data()),
                                     data.size() * sizeof(float))};
}

const std::vector<float> kTriangle = {0, 0, 0, 1, 0, 0, 0, 1, 0};
const std::vector<int64_t> kShape = {1, 3, 3};

TEST(MeshSummaryTest, VerticesFacesColoursInTorchsOrder) {
  const std::vector<float> faces = {0, 1, 2};
  const std::vector<int64_t> face_shape = {1, 1, 3};
  const std::vector<float> colours = {255, 0, 0, 0, 255, 0, 0, 0, 255};
  const TensorView v = Floats(kTriangle, kShape), f = Floats(faces, face_shape),
                   c = Floats(colours, kShape);
  absl::StatusOr<std::vector<tb::Summary::Value>> values =
      MakeMeshValues("tri", MeshTensors{&v, &f, &c}, "{}");
  ASSERT_TRUE(values.ok()) << values.status();
  ASSERT_EQ(values->size(), 3u);
  const char* tags[] = {"tri_VERTEX", "tri_FACE", "tri_COLOR"};
  for (int i = 0; i < 3; ++i) {
    const tb::Summary::Value& value = (*values)[static_cast<size_t>(i)];
    EXPECT_EQ(value.tag(), tags[i]);
    tb::MeshPluginData data;
    ASSERT_TRUE(data.ParseFromString(value.metadata().plugin_data().content()));
    EXPECT_EQ(data.content_type(), i + 1);
    EXPECT_EQ(data.components(), 0b1110u);
    EXPECT_EQ(value.tensor().tensor_content().size(), (i == 1 ? 3u : 9u) * sizeof(float));
  }
}

TEST(MeshSummaryTest, EachComponentIsChecked) {
  const TensorView v = Floats(kTriangle, kShape);
  const std::vector<float> bad_faces = {0, 1, 2.5f};
  const std::vector<int64_t> face_shape = {1, 1, 3};
  const TensorView f = Floats(bad_faces, face_shape);
  absl::StatusOr<std::vector<tb::Summary::Value>> values =
      MakeMeshValues("tri", MeshTensors{&v, &f, nullptr}, "{}");
  ASSERT_FALSE(values.ok());
  EXPECT_THAT(std::string(values.status().message()),
              ::testing::HasSubstr("faces: element 2 is 2.5; must be a whole number in [0, 2]"));
  const std::vector<float> nan = {0, 0, 0, 1, 0, 0, 0, 1, std::nanf("")};
  const TensorView n = Floats(nan, kShape);
  EXPECT_THAT(std::string(MakeMeshValues("tri", MeshTensors{&n, nullptr, nullptr}, "{}")
                              .status()
                              .message()),
              ::testing::HasSubstr("vertices: element 8 is nan"));
  EXPECT_FALSE(MakeMeshValues("tri", MeshTensors{}, "{}").ok());
}

}  // namespace
}  // namespace tblog
