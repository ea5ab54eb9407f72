#include "daemon/convert/embedding.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "engine/media/embedding.h"

namespace tblog::daemon::convert {

absl::Status ConvertEmbedding(const v1::Embedding& embedding, const Header& header,
                              const Limits& limits, Converted& out) {
  if (!embedding.has_matrix()) return Bad("matrix", "not set");
  absl::StatusOr<TensorView> matrix =
      ViewTensor(embedding.matrix(), "matrix", limits, /*allow_shm=*/true);
  if (!matrix.ok()) return matrix.status();
  TBLOG_RETURN_IF_ERROR(RequireFloat(*matrix, "matrix"));
  if (matrix->shape.size() != 2) {
    return Bad("matrix", absl::StrCat("shape ", ShapeString(matrix->shape),
                                      " must be [points, dims]"));
  }
  if (header.step < 0) {
    return Bad("step", absl::StrCat(header.step, " is negative; an embedding's step names its ",
                                    "directory and must be >= 0"));
  }
  EmbeddingLabels labels;
  labels.header.assign(embedding.metadata_header().begin(), embedding.metadata_header().end());
  labels.cells.assign(embedding.metadata().begin(), embedding.metadata().end());
  const bool has_labels = !labels.cells.empty() || !labels.header.empty();
  absl::StatusOr<ProjectorFiles> files =
      BuildProjectorFiles(header.tag, header.step, *matrix, has_labels ? &labels : nullptr);
  if (!files.ok()) return files.status();
  const std::string subrun(header.subrun);
  for (auto& [path, contents] : files->files) {
    out.files.push_back(SideFile{subrun, std::move(path), std::move(contents), false});
  }
  out.files.push_back(
      SideFile{subrun, "projector_config.pbtxt", std::move(files->config_block), true});
  return absl::OkStatus();
}

}  // namespace tblog::daemon::convert
