// Embedding projector files, laid out as PyTorch's SummaryWriter.add_embedding
// lays them out under a run directory:
//   <5-digit step>/<encoded tag>/tensors.tsv    one point per line, tab-separated
//   <5-digit step>/<encoded tag>/metadata.tsv   labels (optional)
//   <5-digit step>/<encoded tag>/sprite.png     thumbnails (optional)
//   projector_config.pbtxt                      one `embeddings { ... }` block per call
// Building (pure, thread-safe) is separate from writing (file I/O).
#ifndef TBLOG_ENGINE_MEDIA_EMBEDDING_H_
#define TBLOG_ENGINE_MEDIA_EMBEDDING_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/io/tensor_view.h"
#include "engine/media/sprite.h"

namespace tblog {

// Limit on the bytes of one embedding's tensors.tsv plus metadata.tsv.
inline constexpr int64_t kMaxEmbeddingBytes = int64_t{512} << 20;

// Labels for the points. With an empty header, `cells` holds one label per
// point and metadata.tsv has no header row (torch's single-column form).
// Otherwise cells holds rows x header.size() labels, row-major, and
// metadata.tsv starts with the header row. Labels must be UTF-8 without
// tab, CR or LF (they would break the TSV).
struct EmbeddingLabels {
  std::vector<std::string> header;
  std::vector<std::string> cells;
};

// What one add_embedding call produces.
struct ProjectorFiles {
  // Paths relative to the run directory ("00000/emb/tensors.tsv"), and contents.
  std::vector<std::pair<std::string, std::string>> files;
  // The text-format EmbeddingInfo block appended to projector_config.pbtxt,
  // ending in "}\n".
  std::string config_block;
};

// Python's repr() of a double (shortest round-trip digits; fixed notation for
// decimal exponents -5 < e < 16, else "1e-05" style), the text torch writes
// for each element of tensors.tsv. "nan", "inf", "-inf" for non-finite values.
std::string PythonFloatRepr(double value);

// The directory name torch gives a tag: '%' -> "%25", '/' -> "%2f", '\\' -> "%5c".
std::string EncodeEmbeddingTag(std::string_view tag);

// Builds the files for `matrix` ([points, dims], float16/bfloat16/float32/
// float64, finite) at `step` (>= 0). Each element is written as torch does:
// converted to a Python float (float32 -> double exactly) and repr()'d.
// INVALID_ARGUMENT for a bad tag (empty, ".", "..", not UTF-8, NUL or other
// control characters), a bad matrix, a label count that does not match the
// points, or outputs beyond kMaxEmbeddingBytes. With `sprite` (sprite.h
// BuildSprite, one thumbnail per point), also sprite.png and the config's
// `sprite { image_path single_image_dim: width, height }`.
absl::StatusOr<ProjectorFiles> BuildProjectorFiles(std::string_view tag, int64_t step,
                                                   const TensorView& matrix,
                                                   const EmbeddingLabels* labels = nullptr,
                                                   const EmbeddingSprite* sprite = nullptr);

// Writes `files` under `run_dir` (created if missing): each file through a
// temporary file renamed into place, then appends config_block to
// run_dir/projector_config.pbtxt unless the file already holds that exact
// block (a repeated call is a no-op there). Not safe to call concurrently
// for the same run_dir; the caller serializes per run. Errors name the path.
absl::Status WriteProjectorFiles(const std::filesystem::path& run_dir,
                                 const ProjectorFiles& files);

}  // namespace tblog

#endif  // TBLOG_ENGINE_MEDIA_EMBEDDING_H_
