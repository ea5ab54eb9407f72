// Hyperparameter summaries for TensorBoard's "hparams" plugin: an experiment
// config, and per session (run) its start info (hparam values) and end info
// (status). Tags and plugin content follow shared docs/tensorboard-format.md
// §3 "HParams"; two styles are supported, TensorBoard's summary_v2 and
// PyTorch's SummaryWriter.add_hparams.
#ifndef TBLOG_ENGINE_PLUGINS_HPARAMS_SUMMARY_H_
#define TBLOG_ENGINE_PLUGINS_HPARAMS_SUMMARY_H_

#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/io/tensor_view.h"
#include "tblog/tensorboard/hparams.pb.h"
#include "tblog/tensorboard/summary.pb.h"

namespace tblog {

namespace hp = ::tblog::tensorboard::hparams;

inline constexpr char kHParamsExperimentTag[] = "_hparams_/experiment";
inline constexpr char kHParamsSessionStartTag[] = "_hparams_/session_start_info";
inline constexpr char kHParamsSessionEndTag[] = "_hparams_/session_end_info";

// A hyperparameter value: float64 (ints too), string or bool. NaN and
// infinities are rejected everywhere: TensorBoard's hparams API turns these
// protos into JSON, and protobuf's JSON printer refuses non-finite numbers in
// a google.protobuf.Value, which would break the whole dashboard.
using HParamValue = std::variant<double, std::string, bool>;

struct HParamInterval {
  double min_value = 0;
  double max_value = 0;
};

// One hyperparameter of the experiment (an HParamInfo). A discrete domain's
// values must all have the kind `type` names (or one common kind when UNSET);
// an interval needs FLOAT64 or UNSET and finite min <= max.
struct HParamConfig {
  std::string name;
  std::string display_name;
  std::string description;
  hp::DataType type = hp::DATA_TYPE_UNSET;
  std::variant<std::monostate, std::vector<HParamValue>, HParamInterval> domain;
};

// One metric (a MetricInfo): the scalar `tag` in run "<session>/<group>"
// (group "" = the session's own run).
struct MetricConfig {
  std::string tag;
  std::string group;
  std::string display_name;
  std::string description;
  hp::DatasetType dataset_type = hp::DATASET_UNKNOWN;
};

struct ExperimentConfig {
  std::string name;
  std::string description;
  std::string user;
  double time_created_secs = 0;
  std::vector<HParamConfig> hparams;  // names non-empty and unique
  std::vector<MetricConfig> metrics;  // tags non-empty, (group, tag) unique
};

struct HParam {
  std::string name;
  HParamValue value;
};

// Session start: the values this session (run) used. Map entries are written in
// the order of `hparams`, so output bytes are deterministic.
struct SessionStart {
  std::vector<HParam> hparams;  // names non-empty and unique
  std::string group_name;
  double start_time_secs = 0;
  std::string model_uri;
  std::string monitor_url;
};

struct SessionEnd {
  hp::Status status = hp::STATUS_SUCCESS;  // must be a known Status value
  double end_time_secs = 0;
};

// kTensorBoard: as TensorBoard's hparams summary_v2, each value carries a
// DT_FLOAT tensor of shape [0]. kPyTorch: as add_hparams, metadata only (the
// loaders substitute a null tensor because data_class stays UNKNOWN).
// Neither writer sets data_class, so these builders do not either.
enum class HParamsStyle { kTensorBoard, kPyTorch };

// Value with tag kHParamsExperimentTag and HParamsPluginData{experiment}.
// INVALID_ARGUMENT naming the offending hparam or metric when the config breaks
// the rules above.
absl::StatusOr<tb::Summary::Value> HParamsExperimentValue(const ExperimentConfig& experiment,
                                                          HParamsStyle style);

// Value with tag kHParamsSessionStartTag and HParamsPluginData{session_start_info}.
absl::StatusOr<tb::Summary::Value> HParamsSessionStartValue(const SessionStart& session,
                                                            HParamsStyle style);

// Value with tag kHParamsSessionEndTag and HParamsPluginData{session_end_info}.
absl::StatusOr<tb::Summary::Value> HParamsSessionEndValue(const SessionEnd& session,
                                                          HParamsStyle style);

// A discrete domain offered to PyTorch's add_hparams (hparam_domain_discrete).
struct TorchHParamDomain {
  std::string name;  // an hparam of the call
  std::vector<HParamValue> values;  // same kind as that hparam's value
};

// What SummaryWriter.add_hparams(hparam_dict, metric_dict) writes into the
// session run, apart from the metric scalars (add_scalar, written by the caller):
// experiment (hparams typed FLOAT64 or STRING in the given order, metrics by tag
// only), session start, session end with STATUS_SUCCESS, all metadata only.
// Like PyTorch, bools become number_value 0/1 typed FLOAT64.
struct TorchHParamsValues {
  tb::Summary::Value experiment;
  tb::Summary::Value session_start;
  tb::Summary::Value session_end;
};
absl::StatusOr<TorchHParamsValues> TorchHParamsSummary(std::span<const HParam> hparams,
                                                       std::span<const std::string> metric_tags,
                                                       std::span<const TorchHParamDomain> domains = {});

}  // namespace tblog

#endif  // TBLOG_ENGINE_PLUGINS_HPARAMS_SUMMARY_H_
