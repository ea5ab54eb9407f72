#include "engine/plugins/mesh_summary.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {
namespace {

using Content = tb::MeshPluginData::ContentType;

std::string_view ComponentName(Content content) {
  switch (content) {
    case tb::MeshPluginData::VERTEX: return "vertices";
    case tb::MeshPluginData::FACE: return "faces";
    case tb::MeshPluginData::COLOR: return "colors";
    default: return "mesh";
  }
}

absl::Status Bad(Content content, std::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(ComponentName(content)), ": ", Sv(reason)));
}

// The elements as float32, after checking the shape and the value range
// [low, high] (whole numbers only when `integral`).
absl::StatusOr<std::string> CheckedFloats(const TensorView& view, Content content, double low,
                                          double high, bool integral) {
  TBLOG_RETURN_IF_ERROR(Annotate(view.Validate(), ComponentName(content)));
  if (view.shape.size() != 3 || view.shape[2] != 3) {
    std::string shape;
    for (const int64_t dim : view.shape) absl::StrAppend(&shape, shape.empty() ? "" : ",", dim);
    return Bad(content, absl::StrCat("shape [", shape, "] must be [B, N, 3]"));
  }
  if (view.dtype == DType::kBool) return Bad(content, "bool elements are not numbers");
  const int64_t count = view.shape[0] * view.shape[1] * 3;
  std::string bytes(static_cast<size_t>(count) * sizeof(float), '\0');
  for (int64_t i = 0; i < count; ++i) {
    const double x = view.ElementAsDouble(i);
    if (!std::isfinite(x) || x < low || x > high || (integral && x != std::floor(x))) {
      return Bad(content, absl::StrCat("element ", i, " is ", x, "; must be ",
                                       integral ? "a whole number " : "", "in [", low, ", ",
                                       high, "]"));
    }
    const float f = static_cast<float>(x);
    std::memcpy(bytes.data() + i * sizeof(float), &f, sizeof(float));  // little-endian hosts
  }
  return bytes;
}

tb::Summary::Value MeshValue(std::string_view tag, Content content, uint32_t components,
                             const TensorView& view, std::string floats,
                             std::string_view json_config) {
  tb::Summary::Value value;
  value.set_tag(absl::StrCat(Sv(tag), "_", Sv(tb::MeshPluginData::ContentType_Name(content))));
  tb::TensorProto* tensor = value.mutable_tensor();
  tensor->set_dtype(tb::DT_FLOAT);
  for (const int64_t dim : view.shape) tensor->mutable_tensor_shape()->add_dim()->set_size(dim);
  tensor->set_tensor_content(std::move(floats));
  tb::MeshPluginData data;
  data.set_version(0);
  data.set_name(std::string(tag));
  data.set_content_type(content);
  data.set_json_config(std::string(json_config));
  for (const int64_t dim : view.shape) data.add_shape(static_cast<int32_t>(dim));
  data.set_components(components);
  tb::SummaryMetadata::PluginData* plugin = value.mutable_metadata()->mutable_plugin_data();
  plugin->set_plugin_name("mesh");
  plugin->set_content(data.SerializeAsString());
  return value;
}

}  // namespace

absl::StatusOr<std::vector<tb::Summary::Value>> MakeMeshValues(std::string_view tag,
                                                               const MeshTensors& mesh,
                                                               std::string_view json_config) {
  if (mesh.vertices == nullptr) return Bad(tb::MeshPluginData::VERTEX, "not set");
  absl::StatusOr<std::string> vertices = CheckedFloats(
      *mesh.vertices, tb::MeshPluginData::VERTEX, -HUGE_VAL, HUGE_VAL, false);
  if (!vertices.ok()) return vertices.status();
  const int64_t batch = mesh.vertices->shape[0];
  const int64_t points = mesh.vertices->shape[1];
  uint32_t components = 1u << tb::MeshPluginData::VERTEX;
  if (mesh.faces != nullptr) components |= 1u << tb::MeshPluginData::FACE;
  if (mesh.colors != nullptr) components |= 1u << tb::MeshPluginData::COLOR;

  std::vector<tb::Summary::Value> out;
  out.push_back(MeshValue(tag, tb::MeshPluginData::VERTEX, components, *mesh.vertices,
                          *std::move(vertices), json_config));
  const struct {
    const TensorView* view;
    Content content;
    double high;
  } optional[] = {{mesh.faces, tb::MeshPluginData::FACE, static_cast<double>(points) - 1},
                  {mesh.colors, tb::MeshPluginData::COLOR, 255}};
  for (const auto& [view, content, high] : optional) {
    if (view == nullptr) continue;
    const bool faces = content == tb::MeshPluginData::FACE;
    absl::StatusOr<std::string> floats = CheckedFloats(*view, content, 0, high, faces);
    if (!floats.ok()) return floats.status();
    if (view->shape[0] != batch) {
      return Bad(content, absl::StrCat("batch size ", view->shape[0], " differs from vertices' ",
                                       batch));
    }
    if (!faces && view->shape[1] != points) {
      return Bad(content, absl::StrCat(view->shape[1], " colours for ", points,
                                       " vertices; one per vertex"));
    }
    out.push_back(MeshValue(tag, content, components, *view, *std::move(floats), json_config));
  }
  return out;
}

}  // namespace tblog
