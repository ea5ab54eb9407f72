// Mesh summaries for TensorBoard's mesh plugin, laid out as PyTorch's
// add_mesh writes them: one value per component present, tagged
// "<tag>_VERTEX", "<tag>_FACE", "<tag>_COLOR", each a float32 [B, N, 3]
// tensor with the plugin's MeshPluginData (version 0, the mesh's tag, the
// component, the bitmask of components present, the shape and the JSON
// config). The caller wraps the values in one Event. Pure and thread-safe.
#ifndef TBLOG_ENGINE_PLUGINS_MESH_SUMMARY_H_
#define TBLOG_ENGINE_PLUGINS_MESH_SUMMARY_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog {

// The mesh's tensors; faces and colors may be null (absent).
struct MeshTensors {
  const TensorView* vertices = nullptr;
  const TensorView* faces = nullptr;
  const TensorView* colors = nullptr;
};

// The values of one mesh, in PyTorch's order (vertices, faces, colors).
// Each tensor must be [B, N, 3] of a numeric dtype, with finite elements,
// sharing B; colors must have as many points as vertices and lie in
// [0, 255]; faces must hold whole numbers in [0, N) for N vertices.
// INVALID_ARGUMENT naming the component otherwise.
absl::StatusOr<std::vector<tb::Summary::Value>> MakeMeshValues(std::string_view tag,
                                                               const MeshTensors& mesh,
                                                               std::string_view json_config);

}  // namespace tblog

#endif  // TBLOG_ENGINE_PLUGINS_MESH_SUMMARY_H_
