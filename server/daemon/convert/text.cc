#include "daemon/convert/summaries.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/fields.h"
#include "daemon/names.h"
#include "engine/media/text_summary.h"

namespace tblog::daemon::convert {

absl::StatusOr<tb::Summary::Value> ConvertText(std::string_view tag, const v1::Text& text,
                                               const Limits& limits) {
  switch (text.content_case()) {
    case v1::Text::kMarkdown: {
      TBLOG_RETURN_IF_ERROR(ValidateFreeText(text.markdown(), "markdown", limits.max_text_bytes));
      return text.torch_style() ? MakeTorchTextSummary(tag, text.markdown())
                                : MakeTextSummary(tag, text.markdown());
    }
    case v1::Text::kTable: {
      if (text.torch_style()) {
        return Bad("torch_style", "PyTorch's add_text has no table form; send markdown");
      }
      const v1::StringTable& table = text.table();
      const auto& shape = table.shape();
      if (shape.size() != 1 && shape.size() != 2) {
        return Bad("table.shape", absl::StrCat(ShapeString({shape.data(), static_cast<size_t>(shape.size())}),
                                               " must have rank 1 or 2"));
      }
      for (int64_t dim : shape) {
        if (dim < 1) return Bad("table.shape", absl::StrCat("dims must be >= 1, got ", dim));
      }
      const int64_t rows = shape[0];
      const int64_t columns = shape.size() == 2 ? shape[1] : 0;
      // Bounding each dim by the cell count first keeps the product from overflowing.
      const int64_t cell_count = table.cells_size();
      if (rows > cell_count || columns > cell_count ||
          rows * std::max<int64_t>(columns, 1) != cell_count) {
        return Bad("table.cells", absl::StrCat("has ", table.cells_size(), " cells but shape ",
                                               ShapeString({shape.data(), static_cast<size_t>(shape.size())}),
                                               " needs ", rows * std::max<int64_t>(columns, 1)));
      }
      size_t total = 0;
      for (int i = 0; i < table.cells_size(); ++i) {
        total += table.cells(i).size();
        TBLOG_RETURN_IF_ERROR(ValidateFreeText(table.cells(i), absl::StrCat("table.cells[", i, "]"),
                                               limits.max_text_bytes));
      }
      if (total > limits.max_text_bytes) {
        return Bad("table.cells", absl::StrCat("hold ", total, " bytes, more than the limit of ",
                                               limits.max_text_bytes));
      }
      const std::vector<std::string> cells(table.cells().begin(), table.cells().end());
      return MakeTextTableSummary(tag, cells, rows, columns);
    }
    case v1::Text::CONTENT_NOT_SET: break;
  }
  return Bad("content", "neither markdown nor table is set");
}

}  // namespace tblog::daemon::convert
