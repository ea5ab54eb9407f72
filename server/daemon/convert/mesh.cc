#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/fields.h"
#include "daemon/convert/summaries.h"
#include "daemon/names.h"
#include "engine/plugins/mesh_summary.h"

namespace tblog::daemon::convert {

absl::StatusOr<std::vector<tb::Summary::Value>> ConvertMesh(std::string_view tag,
                                                            const v1::Mesh& mesh,
                                                            const Limits& limits) {
  if (!mesh.has_vertices()) return Bad("vertices", "not set");
  TBLOG_RETURN_IF_ERROR(ValidateFreeText(mesh.config_json(), "config_json", limits.max_text_bytes));
  absl::StatusOr<TensorView> vertices = ViewTensor(mesh.vertices(), "vertices", limits);
  if (!vertices.ok()) return vertices.status();
  absl::StatusOr<TensorView> faces, colors;
  MeshTensors tensors{&*vertices, nullptr, nullptr};
  if (mesh.has_faces()) {
    faces = ViewTensor(mesh.faces(), "faces", limits);
    if (!faces.ok()) return faces.status();
    tensors.faces = &*faces;
  }
  if (mesh.has_colors()) {
    colors = ViewTensor(mesh.colors(), "colors", limits);
    if (!colors.ok()) return colors.status();
    tensors.colors = &*colors;
  }
  // PyTorch writes json.dumps(config_dict or {}), "{}" without one.
  // (Both arms string_views: a std::string arm would make the result a temporary.)
  const std::string_view json =
      mesh.config_json().empty() ? std::string_view("{}") : std::string_view(mesh.config_json());
  absl::StatusOr<std::vector<tb::Summary::Value>> values = MakeMeshValues(tag, tensors, json);
  if (!values.ok()) return absl::InvalidArgumentError(values.status().message());
  return values;
}

}  // namespace tblog::daemon::convert
