// The custom-scalars dashboard layout for TensorBoard's "custom_scalars"
// plugin: tag "custom_scalars__config__", a rank-0 DT_STRING tensor holding a
// serialized Layout (shared docs/tensorboard-format.md §3 "Custom scalars").
#ifndef TBLOG_ENGINE_PLUGINS_CUSTOM_SCALARS_SUMMARY_H_
#define TBLOG_ENGINE_PLUGINS_CUSTOM_SCALARS_SUMMARY_H_

#include <span>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/plugins.pb.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog {

inline constexpr char kCustomScalarsConfigTag[] = "custom_scalars__config__";

// A chart with one line per scalar tag matching any of the regexes.
struct MultilineChart {
  std::vector<std::string> tag_regexes;
};

// A chart with a value line and a shaded band between lower and upper, each
// named by scalar tag.
struct MarginSeries {
  std::string value;
  std::string lower;
  std::string upper;
};
struct MarginChart {
  std::vector<MarginSeries> series;
};

struct CustomScalarChart {
  std::string title;
  std::variant<MultilineChart, MarginChart> content;
};

struct CustomScalarCategory {
  std::string title;
  std::vector<CustomScalarChart> charts;
  bool closed = false;  // shown collapsed
};

// The Layout message for `categories`, in order. INVALID_ARGUMENT naming the
// category and chart when: there is no category, a title is empty, a chart
// has no regex or series, a margin series lacks a tag, or a regex does not
// compile. Regexes are checked with std::regex (ECMAScript); TensorBoard
// matches with Python's re, which agrees on common syntax, so Python-only
// forms such as (?P<name>...) are refused rather than risked.
absl::StatusOr<tb::Layout> BuildCustomScalarLayout(std::span<const CustomScalarCategory> categories);

// The summary value holding `layout`: tag kCustomScalarsConfigTag, plugin
// "custom_scalars" with empty content, rank-0 DT_STRING tensor, data_class
// unset, as TensorBoard's custom_scalar summary writes it (the loaders infer
// TENSOR from the plugin name). Write it once per run, e.g. at step 0.
tb::Summary::Value CustomScalarsLayoutValue(const tb::Layout& layout);

}  // namespace tblog

#endif  // TBLOG_ENGINE_PLUGINS_CUSTOM_SCALARS_SUMMARY_H_
