#include "engine/plugins/custom_scalars_summary.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"

namespace tblog {
namespace {

constexpr char kPluginName[] = "custom_scalars";

absl::Status CheckRegex(const std::string& pattern) {
  if (pattern.empty()) return absl::InvalidArgumentError("an empty tag regex");
  // std::regex reports bad syntax only by throwing; the exception is caught
  // here and becomes a Status, so none crosses the API.
  try {
    const std::regex compiled(pattern, std::regex::ECMAScript);
    static_cast<void>(compiled);
  } catch (const std::regex_error& error) {
    return absl::InvalidArgumentError(
        absl::StrCat("tag regex '", pattern, "' does not compile: ", error.what()));
  }
  return absl::OkStatus();
}

absl::Status FillChart(const CustomScalarChart& chart, tb::Chart* out) {
  if (chart.title.empty()) return absl::InvalidArgumentError("empty chart title");
  out->set_title(chart.title);
  if (const auto* multiline = std::get_if<MultilineChart>(&chart.content)) {
    if (multiline->tag_regexes.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("multiline chart '", chart.title, "' has no tag regex"));
    }
    tb::MultilineChartContent* content = out->mutable_multiline();
    for (const std::string& regex : multiline->tag_regexes) {
      TBLOG_RETURN_IF_ERROR(Annotate(CheckRegex(regex), absl::StrCat("chart '", chart.title, "'")));
      content->add_tag(regex);
    }
    return absl::OkStatus();
  }
  const MarginChart& margin = std::get<MarginChart>(chart.content);
  if (margin.series.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("margin chart '", chart.title, "' has no series"));
  }
  tb::MarginChartContent* content = out->mutable_margin();
  for (size_t i = 0; i < margin.series.size(); ++i) {
    const MarginSeries& series = margin.series[i];
    if (series.value.empty() || series.lower.empty() || series.upper.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "margin chart '", chart.title, "' series ", i, " needs value, lower and upper tags"));
    }
    tb::MarginChartContent::Series* proto = content->add_series();
    proto->set_value(series.value);
    proto->set_lower(series.lower);
    proto->set_upper(series.upper);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<tb::Layout> BuildCustomScalarLayout(
    std::span<const CustomScalarCategory> categories) {
  if (categories.empty()) return absl::InvalidArgumentError("custom scalars layout: no category");
  tb::Layout layout;
  for (size_t i = 0; i < categories.size(); ++i) {
    const CustomScalarCategory& category = categories[i];
    if (category.title.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("custom scalars layout: category ", i, " has an empty title"));
    }
    if (category.charts.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("custom scalars layout: category '",
                                                     category.title, "' has no chart"));
    }
    tb::Category* out = layout.add_category();
    out->set_title(category.title);
    out->set_closed(category.closed);
    for (const CustomScalarChart& chart : category.charts) {
      TBLOG_RETURN_IF_ERROR(
          Annotate(FillChart(chart, out->add_chart()),
                   absl::StrCat("custom scalars layout: category '", category.title, "'")));
    }
  }
  return layout;
}

tb::Summary::Value CustomScalarsLayoutValue(const tb::Layout& layout) {
  tb::Summary::Value value;
  value.set_tag(kCustomScalarsConfigTag);
  value.mutable_metadata()->mutable_plugin_data()->set_plugin_name(kPluginName);
  value.mutable_metadata()->set_data_class(tb::DATA_CLASS_TENSOR);  // TensorBoard leaves it unset
  tb::TensorProto* tensor = value.mutable_tensor();
  tensor->set_dtype(tb::DT_STRING);
  tensor->mutable_tensor_shape();  // rank 0, written as an empty shape like TensorBoard does
  tensor->add_string_val(layout.SerializeAsString());
  return value;
}

}  // namespace tblog
