#include "daemon/convert/custom_scalars.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/fields.h"
#include "engine/plugins/custom_scalars_summary.h"

namespace tblog::daemon::convert {

absl::StatusOr<tb::Summary::Value> ConvertCustomScalars(const v1::CustomScalarLayout& layout) {
  std::vector<CustomScalarCategory> categories;
  for (int i = 0; i < layout.categories_size(); ++i) {
    const v1::Category& in = layout.categories(i);
    CustomScalarCategory category;
    category.title = in.title();
    category.closed = in.closed();
    for (int j = 0; j < in.charts_size(); ++j) {
      const v1::Chart& chart = in.charts(j);
      CustomScalarChart out;
      out.title = chart.title();
      switch (chart.content_case()) {
        case v1::Chart::kMultiline:
          out.content = MultilineChart{
              {chart.multiline().tags().begin(), chart.multiline().tags().end()}};
          break;
        case v1::Chart::kMargin: {
          MarginChart margin;
          for (const v1::MarginSeries& s : chart.margin().series()) {
            margin.series.push_back(MarginSeries{s.value(), s.lower(), s.upper()});
          }
          out.content = std::move(margin);
          break;
        }
        case v1::Chart::CONTENT_NOT_SET:
          return Bad(absl::StrCat("categories[", i, "].charts[", j, "]"),
                     "neither multiline nor margin is set");
      }
      category.charts.push_back(std::move(out));
    }
    categories.push_back(std::move(category));
  }
  absl::StatusOr<tb::Layout> built = BuildCustomScalarLayout(categories);
  if (!built.ok()) return Annotate(built.status(), "categories");
  return CustomScalarsLayoutValue(*built);
}

}  // namespace tblog::daemon::convert
