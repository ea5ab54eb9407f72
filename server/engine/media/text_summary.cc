#include "engine/media/text_summary.h"

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "engine/io/summary_tag.h"

namespace tblog {
namespace {

absl::Status CheckTagAndSize(std::string_view tag, int64_t bytes) {
  TBLOG_RETURN_IF_ERROR(CheckSummaryTag(tag));
  TBLOG_RETURN_IF_ERROR(Annotate(ValidateUtf8(tag), "tag"));
  if (bytes > kMaxTextBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("text is ", bytes, " bytes; the limit is ", kMaxTextBytes));
  }
  return absl::OkStatus();
}

tb::Summary::Value TextValue(std::string_view tag) {
  tb::Summary::Value value;
  value.set_tag(std::string(tag));
  tb::SummaryMetadata* metadata = value.mutable_metadata();
  metadata->mutable_plugin_data()->set_plugin_name("text");
  metadata->set_data_class(tb::DATA_CLASS_TENSOR);
  tb::TensorProto* tensor = value.mutable_tensor();
  tensor->set_dtype(tb::DT_STRING);
  tensor->mutable_tensor_shape();  // present even for rank 0, as TensorBoard writes it
  return value;
}

}  // namespace

absl::Status ValidateUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char lead = s[i];
    size_t length = 0;
    uint32_t min_code_point = 0;
    uint32_t code_point = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2, min_code_point = 0x80, code_point = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3, min_code_point = 0x800, code_point = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4, min_code_point = 0x10000, code_point = lead & 0x07;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid UTF-8: byte ", static_cast<int>(lead), " at offset ", i,
                       " cannot start a character"));
    }
    if (n - i < length) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid UTF-8: truncated character at offset ", i));
    }
    for (size_t k = 1; k < length; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) {
        return absl::InvalidArgumentError(absl::StrCat(
            "invalid UTF-8: missing continuation byte at offset ", i + k, " (character at ", i, ")"));
      }
      code_point = (code_point << 6) | (s[i + k] & 0x3F);
    }
    if (code_point < min_code_point) {
      return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8: overlong encoding at offset ", i));
    }
    if (code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8: code point U+",
                                                     absl::Hex(code_point), " at offset ", i,
                                                     " is not a Unicode scalar value"));
    }
    i += length;
  }
  return absl::OkStatus();
}

absl::StatusOr<tb::Summary::Value> MakeTextSummary(std::string_view tag, std::string_view markdown) {
  TBLOG_RETURN_IF_ERROR(CheckTagAndSize(tag, static_cast<int64_t>(markdown.size())));
  TBLOG_RETURN_IF_ERROR(Annotate(ValidateUtf8(markdown), "text"));
  tb::Summary::Value value = TextValue(tag);
  value.mutable_tensor()->add_string_val(std::string(markdown));
  return value;
}

absl::StatusOr<tb::Summary::Value> MakeTorchTextSummary(std::string_view tag,
                                                        std::string_view markdown) {
  TBLOG_RETURN_IF_ERROR(CheckSummaryTag(tag));
  absl::StatusOr<tb::Summary::Value> value =
      MakeTextSummary(absl::StrCat(Sv(tag), "/text_summary"), markdown);
  if (!value.ok()) return value.status();
  value->mutable_tensor()->mutable_tensor_shape()->add_dim()->set_size(1);
  return value;
}

absl::StatusOr<tb::Summary::Value> MakeTextTableSummary(std::string_view tag,
                                                        std::span<const std::string> cells,
                                                        int64_t rows, int64_t columns) {
  int64_t bytes = 0;
  for (const std::string& cell : cells) bytes += static_cast<int64_t>(cell.size());
  TBLOG_RETURN_IF_ERROR(CheckTagAndSize(tag, bytes));
  if (rows < 1 || columns < 0 ||
      (columns == 0 ? rows : (rows > INT64_MAX / columns ? -1 : rows * columns)) !=
          static_cast<int64_t>(cells.size())) {
    return absl::InvalidArgumentError(absl::StrCat("a text table of ", rows, " rows and ", columns,
                                                   " columns (0 = one-dimensional) cannot hold ",
                                                   cells.size(), " cells"));
  }
  tb::Summary::Value value = TextValue(tag);
  tb::TensorProto* tensor = value.mutable_tensor();
  tensor->mutable_tensor_shape()->add_dim()->set_size(rows);
  if (columns > 0) tensor->mutable_tensor_shape()->add_dim()->set_size(columns);
  for (size_t i = 0; i < cells.size(); ++i) {
    TBLOG_RETURN_IF_ERROR(Annotate(ValidateUtf8(cells[i]), absl::StrCat("text table cell ", i)));
    tensor->add_string_val(cells[i]);
  }
  return value;
}

}  // namespace tblog
