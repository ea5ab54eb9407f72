#include "engine/media/embedding.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "engine/media/text_summary.h"

namespace tblog {
namespace {

constexpr std::string_view kConfigFileName = "projector_config.pbtxt";

// str(step).zfill(5): at least five digits, zero-padded (step >= 0).
std::string ZeroPadStep(int64_t step) {
  std::string digits = std::to_string(step);
  if (digits.size() < 5) digits.insert(0, 5 - digits.size(), '0');
  return digits;
}

// A string as protobuf text format quotes it (Python's text_format with
// as_utf8=False): C escapes, and octal for bytes outside printable ASCII.
std::string TextFormatQuote(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto byte = static_cast<unsigned char>(ch);
    switch (ch) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '"': out += "\\\""; break;
      case '\'': out += "\\'"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (byte < 0x20 || byte >= 0x7F) {
          char octal[5];
          std::snprintf(octal, sizeof(octal), "\\%03o", byte);
          out += octal;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

absl::Status CheckEmbeddingTag(std::string_view tag) {
  if (tag.empty()) return absl::InvalidArgumentError("embedding tag is empty");
  if (tag == "." || tag == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("embedding tag \"", Sv(tag), "\" would name a directory outside the step"));
  }
  TBLOG_RETURN_IF_ERROR(Annotate(ValidateUtf8(tag), "embedding tag"));
  for (size_t i = 0; i < tag.size(); ++i) {
    const auto byte = static_cast<unsigned char>(tag[i]);
    if (byte < 0x20 || byte == 0x7F) {
      return absl::InvalidArgumentError(
          absl::StrCat("embedding tag has control character ", static_cast<int>(byte), " at offset ", i));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLabel(std::string_view label, size_t index) {
  TBLOG_RETURN_IF_ERROR(Annotate(ValidateUtf8(label), absl::StrCat("embedding label ", index)));
  if (label.find_first_of("\t\r\n") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("embedding label ", index, " contains a tab or line break"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MetadataTsv(const EmbeddingLabels& labels, int64_t points) {
  const size_t columns = labels.header.empty() ? 1 : labels.header.size();
  if (labels.cells.size() != static_cast<size_t>(points) * columns) {
    return absl::InvalidArgumentError(absl::StrCat("embedding has ", points, " points and ", columns,
                                                   " label columns but ", labels.cells.size(),
                                                   " labels"));
  }
  std::string tsv;
  for (size_t i = 0; i < labels.header.size(); ++i) {
    TBLOG_RETURN_IF_ERROR(CheckLabel(labels.header[i], i));
    absl::StrAppend(&tsv, i == 0 ? "" : "\t", labels.header[i]);
  }
  if (!labels.header.empty()) tsv += '\n';
  for (size_t i = 0; i < labels.cells.size(); ++i) {
    TBLOG_RETURN_IF_ERROR(CheckLabel(labels.cells[i], i));
    tsv += labels.cells[i];
    tsv += (i + 1) % columns == 0 ? '\n' : '\t';
    if (static_cast<int64_t>(tsv.size()) > kMaxEmbeddingBytes) {
      return absl::InvalidArgumentError("embedding labels exceed the size limit");
    }
  }
  return tsv;
}

absl::Status PathError(std::string_view what, const std::filesystem::path& path, int error) {
  return absl::InternalError(
      absl::StrCat(Sv(what), " ", path.string(), ": ", std::strerror(error)));
}

// Writes `bytes` to a temporary file beside `path` and renames it over `path`,
// so a reader never sees a half-written file.
absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view bytes) {
  static std::atomic<uint64_t> counter{0};
  const std::filesystem::path temp =
      path.string() + absl::StrCat(".tmp.", getpid(), ".", counter.fetch_add(1));
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr) return PathError("creating", temp, errno);
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size();
  const int write_error = errno;
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    const int error = !written ? write_error : errno;
    std::remove(temp.c_str());
    return PathError("writing", temp, error);
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temp.c_str());
    return PathError("renaming into place", path, error);
  }
  return absl::OkStatus();
}

// A caller-built relative path must stay inside the run directory.
absl::Status CheckRelativePath(const std::string& relative) {
  const std::filesystem::path path(relative);
  if (relative.empty() || path.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat("projector file path \"", relative,
                                                   "\" is not a relative path"));
  }
  for (const auto& part : path) {
    if (part == ".." || part == ".") {
      return absl::InvalidArgumentError(absl::StrCat("projector file path \"", relative,
                                                     "\" has a . or .. component"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string PythonFloatRepr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form: "-d.ddde+XX".
  char buffer[64];
  const auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  const std::string_view sci(buffer, static_cast<size_t>(result.ptr - buffer));
  const size_t e_pos = sci.find('e');
  std::string_view mantissa = sci.substr(0, e_pos);
  int exponent = 0;
  std::from_chars(sci.data() + e_pos + 1 + (sci[e_pos + 1] == '+' ? 1 : 0), sci.data() + sci.size(),
                  exponent);
  std::string out;
  if (!mantissa.empty() && mantissa[0] == '-') {
    out = "-";
    mantissa.remove_prefix(1);
  }
  std::string digits;
  for (const char ch : mantissa) {
    if (ch != '.') digits += ch;
  }
  if (exponent < -4 || exponent >= 16) {
    out += digits[0];
    if (digits.size() > 1) absl::StrAppend(&out, ".", digits.substr(1));
    char exp_text[16];
    std::snprintf(exp_text, sizeof(exp_text), "e%c%02d", exponent < 0 ? '-' : '+',
                  exponent < 0 ? -exponent : exponent);
    out += exp_text;
  } else if (exponent < 0) {
    absl::StrAppend(&out, "0.", std::string(static_cast<size_t>(-exponent - 1), '0'), digits);
  } else {
    const size_t integer_digits = static_cast<size_t>(exponent) + 1;
    if (digits.size() <= integer_digits) {
      absl::StrAppend(&out, digits, std::string(integer_digits - digits.size(), '0'), ".0");
    } else {
      absl::StrAppend(&out, digits.substr(0, integer_digits), ".", digits.substr(integer_digits));
    }
  }
  return out;
}

std::string EncodeEmbeddingTag(std::string_view tag) {
  std::string out;
  for (const char ch : tag) {
    switch (ch) {
      case '%': out += "%25"; break;
      case '/': out += "%2f"; break;
      case '\\': out += "%5c"; break;
      default: out += ch;
    }
  }
  return out;
}

absl::StatusOr<ProjectorFiles> BuildProjectorFiles(std::string_view tag, int64_t step,
                                                   const TensorView& matrix,
                                                   const EmbeddingLabels* labels,
                                                   const EmbeddingSprite* sprite) {
  TBLOG_RETURN_IF_ERROR(CheckEmbeddingTag(tag));
  if (step < 0) return absl::InvalidArgumentError(absl::StrCat("embedding step ", step, " is negative"));
  TBLOG_RETURN_IF_ERROR(matrix.Validate());
  if (matrix.shape.size() != 2 || matrix.shape[0] < 1 || matrix.shape[1] < 1) {
    return absl::InvalidArgumentError(
        "embedding matrix must be 2-D [points, dims] with at least one point and one dim");
  }
  if (matrix.dtype != DType::kFloat32 && matrix.dtype != DType::kFloat64 &&
      matrix.dtype != DType::kFloat16 && matrix.dtype != DType::kBfloat16) {
    return absl::InvalidArgumentError(absl::StrCat("embedding matrix is ", Sv(DTypeName(matrix.dtype)),
                                                   "; expected a float type"));
  }
  const int64_t points = matrix.shape[0];
  const int64_t dims = matrix.shape[1];
  std::string tensors;
  for (int64_t i = 0; i < points * dims; ++i) {
    const double x = matrix.ElementAsDouble(i);
    if (!std::isfinite(x)) {
      return absl::InvalidArgumentError(absl::StrCat("embedding value at row ", i / dims, ", column ",
                                                     i % dims, " is ", x, "; must be finite"));
    }
    absl::StrAppend(&tensors, PythonFloatRepr(x), (i + 1) % dims == 0 ? "\n" : "\t");
    if (static_cast<int64_t>(tensors.size()) > kMaxEmbeddingBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("embedding tensors.tsv exceeds the limit of ", kMaxEmbeddingBytes, " bytes"));
    }
  }
  const std::string subdir = absl::StrCat(ZeroPadStep(step), "/", EncodeEmbeddingTag(tag));
  ProjectorFiles out;
  // Field order is EmbeddingInfo's field numbers: tensor_name 1, metadata_path 2, sprite 5,
  // tensor_path 8.
  out.config_block = absl::StrCat("embeddings {\n  tensor_name: ",
                                  TextFormatQuote(absl::StrCat(Sv(tag), ":", ZeroPadStep(step))), "\n");
  if (labels != nullptr) {
    absl::StatusOr<std::string> metadata = MetadataTsv(*labels, points);
    if (!metadata.ok()) return metadata.status();
    if (static_cast<int64_t>(tensors.size() + metadata->size()) > kMaxEmbeddingBytes) {
      return absl::InvalidArgumentError("embedding files exceed the size limit");
    }
    out.files.emplace_back(subdir + "/metadata.tsv", *std::move(metadata));
    absl::StrAppend(&out.config_block, "  metadata_path: ",
                    TextFormatQuote(subdir + "/metadata.tsv"), "\n");
  }
  if (sprite != nullptr) {
    if (sprite->image_width < 1 || sprite->image_height < 1) {
      return absl::InvalidArgumentError("sprite thumbnails must be at least 1x1");
    }
    out.files.emplace_back(subdir + "/sprite.png", sprite->png);
    absl::StrAppend(&out.config_block, "  sprite {\n    image_path: ",
                    TextFormatQuote(subdir + "/sprite.png"), "\n    single_image_dim: ",
                    sprite->image_width, "\n    single_image_dim: ", sprite->image_height,
                    "\n  }\n");
  }
  out.files.emplace_back(subdir + "/tensors.tsv", std::move(tensors));
  absl::StrAppend(&out.config_block, "  tensor_path: ", TextFormatQuote(subdir + "/tensors.tsv"),
                  "\n}\n");
  return out;
}

absl::Status WriteProjectorFiles(const std::filesystem::path& run_dir, const ProjectorFiles& files) {
  for (const auto& [relative, bytes] : files.files) {
    TBLOG_RETURN_IF_ERROR(CheckRelativePath(relative));
    const std::filesystem::path path = run_dir / relative;
    std::error_code error;
    std::filesystem::create_directories(path.parent_path(), error);
    if (error) {
      return absl::InternalError(absl::StrCat("creating directory ", path.parent_path().string(), ": ",
                                              error.message()));
    }
    TBLOG_RETURN_IF_ERROR(WriteFileAtomically(path, bytes));
  }
  const std::filesystem::path config_path = run_dir / std::string(kConfigFileName);
  std::string config;
  if (std::FILE* file = std::fopen(config_path.c_str(), "rb")) {
    char chunk[4096];
    size_t n;
    while ((n = std::fread(chunk, 1, sizeof(chunk), file)) > 0) config.append(chunk, n);
    const bool failed = std::ferror(file) != 0;
    std::fclose(file);
    if (failed) return PathError("reading", config_path, EIO);
  } else if (errno != ENOENT) {
    return PathError("opening", config_path, errno);
  }
  // A block is a whole "embeddings {" ... "}\n" unit starting at a line start.
  if (config.starts_with(files.config_block) ||
      config.find("\n" + files.config_block) != std::string::npos) {
    return absl::OkStatus();
  }
  if (!config.empty() && config.back() != '\n') config += '\n';
  config += files.config_block;
  return WriteFileAtomically(config_path, config);
}

}  // namespace tblog
