#include "engine/plugins/hparams_summary.h"

#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/plugins/proto_map_entry.h"
#include "engine/plugins/unique_names.h"
#include "base/status_util.h"

namespace tblog {
namespace {

namespace pb = ::google::protobuf;

constexpr char kPluginName[] = "hparams";
// HParamsPluginData field numbers (plugin_data.proto) and
// SessionStartInfo.hparams, needed to place the hand-ordered map entries.
constexpr int kSessionStartInfoField = 3;
constexpr int kSessionStartHParamsField = 1;

// The kind a value has, as an hparams DataType.
hp::DataType KindOf(const HParamValue& value) {
  if (std::holds_alternative<double>(value)) return hp::DATA_TYPE_FLOAT64;
  if (std::holds_alternative<std::string>(value)) return hp::DATA_TYPE_STRING;
  return hp::DATA_TYPE_BOOL;
}

std::string_view KindName(hp::DataType type) {
  switch (type) {
    case hp::DATA_TYPE_FLOAT64: return "float64";
    case hp::DATA_TYPE_STRING: return "string";
    case hp::DATA_TYPE_BOOL: return "bool";
    default: return "unset";
  }
}

absl::Status CheckFinite(std::string_view what, double x) {
  if (std::isfinite(x)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      Sv(what), " is ", x, "; hparams numbers must be finite (TensorBoard cannot send NaN or "
      "infinity as JSON)"));
}

// `value` as a google.protobuf.Value; bools as number_value 0/1 when
// `bool_as_number` (PyTorch's behaviour).
absl::StatusOr<pb::Value> ToProtoValue(std::string_view what, const HParamValue& value,
                                       bool bool_as_number) {
  pb::Value out;
  if (const double* number = std::get_if<double>(&value)) {
    TBLOG_RETURN_IF_ERROR(CheckFinite(what, *number));
    out.set_number_value(*number);
  } else if (const std::string* text = std::get_if<std::string>(&value)) {
    out.set_string_value(*text);
  } else if (bool_as_number) {
    out.set_number_value(std::get<bool>(value) ? 1.0 : 0.0);
  } else {
    out.set_bool_value(std::get<bool>(value));
  }
  return out;
}

absl::StatusOr<hp::HParamInfo> ToHParamInfo(const HParamConfig& config) {
  const std::string what = absl::StrCat("hparam '", config.name, "'");
  if (!hp::DataType_IsValid(config.type)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": unknown type ", static_cast<int>(config.type)));
  }
  hp::HParamInfo info;
  info.set_name(config.name);
  info.set_display_name(config.display_name);
  info.set_description(config.description);
  info.set_type(config.type);
  if (const auto* values = std::get_if<std::vector<HParamValue>>(&config.domain)) {
    if (values->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": empty discrete domain"));
    }
    const hp::DataType kind =
        config.type == hp::DATA_TYPE_UNSET ? KindOf(values->front()) : config.type;
    pb::ListValue* list = info.mutable_domain_discrete();
    for (size_t i = 0; i < values->size(); ++i) {
      const HParamValue& value = (*values)[i];
      if (KindOf(value) != kind) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": discrete value ", i, " is a ", Sv(KindName(KindOf(value))),
                         ", the domain holds ", Sv(KindName(kind)), " values"));
      }
      absl::StatusOr<pb::Value> proto =
          ToProtoValue(absl::StrCat(what, " discrete value ", i), value, false);
      if (!proto.ok()) return proto.status();
      *list->add_values() = *std::move(proto);
    }
  } else if (const auto* interval = std::get_if<HParamInterval>(&config.domain)) {
    if (config.type != hp::DATA_TYPE_UNSET && config.type != hp::DATA_TYPE_FLOAT64) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": an interval domain needs type float64, not ", Sv(KindName(config.type))));
    }
    TBLOG_RETURN_IF_ERROR(CheckFinite(absl::StrCat(what, " interval min"), interval->min_value));
    TBLOG_RETURN_IF_ERROR(CheckFinite(absl::StrCat(what, " interval max"), interval->max_value));
    if (interval->min_value > interval->max_value) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": interval min ", interval->min_value,
                                                     " > max ", interval->max_value));
    }
    info.mutable_domain_interval()->set_min_value(interval->min_value);
    info.mutable_domain_interval()->set_max_value(interval->max_value);
  }
  return info;
}

// Checks the hparam names of a session: non-empty, unique.
absl::Status CheckHParamNames(std::span<const HParam> hparams) {
  UniqueNames names("hparam");
  for (size_t i = 0; i < hparams.size(); ++i) TBLOG_RETURN_IF_ERROR(names.Add(i, hparams[i].name));
  return absl::OkStatus();
}

tb::Summary::Value MakeValue(std::string_view tag, std::string content, HParamsStyle style) {
  tb::Summary::Value value;
  value.set_tag(std::string(tag));
  tb::SummaryMetadata::PluginData* plugin = value.mutable_metadata()->mutable_plugin_data();
  plugin->set_plugin_name(kPluginName);
  plugin->set_content(std::move(content));
  if (style == HParamsStyle::kTensorBoard) {
    // TensorBoard's summary_v2 writes an empty float tensor of shape [0]. Its
    // data_class is left unset there (inferred as TENSOR); we set it. The
    // PyTorch style must stay UNKNOWN: its values carry no tensor, which the
    // loaders only accept when they may infer the class themselves.
    value.mutable_metadata()->set_data_class(tb::DATA_CLASS_TENSOR);
    tb::TensorProto* tensor = value.mutable_tensor();
    tensor->set_dtype(tb::DT_FLOAT);
    tensor->mutable_tensor_shape()->add_dim()->set_size(0);
  }
  return value;
}

// The session start content with the map entries in the order of `hparams`;
// `bool_as_number` as in ToProtoValue.
absl::StatusOr<std::string> SessionStartContent(const SessionStart& session,
                                                bool bool_as_number) {
  TBLOG_RETURN_IF_ERROR(CheckHParamNames(session.hparams));
  TBLOG_RETURN_IF_ERROR(CheckFinite("start_time_secs", session.start_time_secs));
  // Field 1 (the map) first, then the other fields, which all have higher
  // numbers: the order protobuf itself uses.
  std::string start_info;
  for (const HParam& hparam : session.hparams) {
    absl::StatusOr<pb::Value> value =
        ToProtoValue(absl::StrCat("hparam '", hparam.name, "'"), hparam.value, bool_as_number);
    if (!value.ok()) return value.status();
    wire::AppendMapEntry(kSessionStartHParamsField, hparam.name, *value, &start_info);
  }
  hp::SessionStartInfo rest;
  rest.set_model_uri(session.model_uri);
  rest.set_monitor_url(session.monitor_url);
  rest.set_group_name(session.group_name);
  rest.set_start_time_secs(session.start_time_secs);
  start_info += rest.SerializeAsString();
  // HParamsPluginData: version 0 is not written; then the oneof member.
  std::string content;
  wire::AppendLengthDelimited(kSessionStartInfoField, start_info, &content);
  return content;
}

}  // namespace

absl::StatusOr<tb::Summary::Value> HParamsExperimentValue(const ExperimentConfig& experiment,
                                                          HParamsStyle style) {
  TBLOG_RETURN_IF_ERROR(CheckFinite("time_created_secs", experiment.time_created_secs));
  hp::HParamsPluginData data;
  hp::Experiment* out = data.mutable_experiment();
  out->set_name(experiment.name);
  out->set_description(experiment.description);
  out->set_user(experiment.user);
  out->set_time_created_secs(experiment.time_created_secs);
  UniqueNames hparam_names("experiment hparam");
  for (size_t i = 0; i < experiment.hparams.size(); ++i) {
    const HParamConfig& config = experiment.hparams[i];
    TBLOG_RETURN_IF_ERROR(hparam_names.Add(i, config.name));
    absl::StatusOr<hp::HParamInfo> info = ToHParamInfo(config);
    if (!info.ok()) return info.status();
    *out->add_hparam_infos() = *std::move(info);
  }
  std::set<std::pair<std::string_view, std::string_view>> metric_names;
  for (size_t i = 0; i < experiment.metrics.size(); ++i) {
    const MetricConfig& metric = experiment.metrics[i];
    if (metric.tag.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("experiment metric ", i, " has an empty tag"));
    }
    if (!metric_names.emplace(metric.group, metric.tag).second) {
      return absl::InvalidArgumentError(absl::StrCat("experiment metric '", metric.tag,
                                                      "' in group '", metric.group,
                                                      "' is given twice"));
    }
    if (!hp::DatasetType_IsValid(metric.dataset_type)) {
      return absl::InvalidArgumentError(absl::StrCat("experiment metric '", metric.tag,
                                                     "': unknown dataset type ",
                                                     static_cast<int>(metric.dataset_type)));
    }
    hp::MetricInfo* info = out->add_metric_infos();
    info->mutable_name()->set_group(metric.group);
    info->mutable_name()->set_tag(metric.tag);
    info->set_display_name(metric.display_name);
    info->set_description(metric.description);
    info->set_dataset_type(metric.dataset_type);
  }
  return MakeValue(kHParamsExperimentTag, data.SerializeAsString(), style);
}

absl::StatusOr<tb::Summary::Value> HParamsSessionStartValue(const SessionStart& session,
                                                            HParamsStyle style) {
  absl::StatusOr<std::string> content = SessionStartContent(session, false);
  if (!content.ok()) return Annotate(content.status(), "session start");
  return MakeValue(kHParamsSessionStartTag, *std::move(content), style);
}

absl::StatusOr<tb::Summary::Value> HParamsSessionEndValue(const SessionEnd& session,
                                                          HParamsStyle style) {
  if (!hp::Status_IsValid(session.status)) {
    return absl::InvalidArgumentError(
        absl::StrCat("session end: unknown status ", static_cast<int>(session.status)));
  }
  TBLOG_RETURN_IF_ERROR(CheckFinite("session end: end_time_secs", session.end_time_secs));
  hp::HParamsPluginData data;
  data.mutable_session_end_info()->set_status(session.status);
  data.mutable_session_end_info()->set_end_time_secs(session.end_time_secs);
  return MakeValue(kHParamsSessionEndTag, data.SerializeAsString(), style);
}

absl::StatusOr<TorchHParamsValues> TorchHParamsSummary(std::span<const HParam> hparams,
                                                       std::span<const std::string> metric_tags,
                                                       std::span<const TorchHParamDomain> domains) {
  TBLOG_RETURN_IF_ERROR(CheckHParamNames(hparams));
  for (const TorchHParamDomain& domain : domains) {
    const HParam* owner = nullptr;
    for (const HParam& hparam : hparams) {
      if (hparam.name == domain.name) owner = &hparam;
    }
    if (owner == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("domain for '", domain.name, "', which is not an hparam of this call"));
    }
    for (const HParamValue& value : domain.values) {
      if (value.index() != owner->value.index()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "domain for '", domain.name, "' holds a ", Sv(KindName(KindOf(value))),
            ", the hparam is a ", Sv(KindName(KindOf(owner->value)))));
      }
    }
  }

  hp::HParamsPluginData experiment_data;
  hp::Experiment* experiment = experiment_data.mutable_experiment();
  for (const HParam& hparam : hparams) {
    hp::HParamInfo* info = experiment->add_hparam_infos();
    info->set_name(hparam.name);
    // PyTorch tests int/float before bool, so bools are numbers too.
    const bool is_string = std::holds_alternative<std::string>(hparam.value);
    info->set_type(is_string ? hp::DATA_TYPE_STRING : hp::DATA_TYPE_FLOAT64);
    for (const TorchHParamDomain& domain : domains) {
      if (domain.name != hparam.name) continue;
      pb::ListValue* list = info->mutable_domain_discrete();
      for (const HParamValue& value : domain.values) {
        absl::StatusOr<pb::Value> proto =
            ToProtoValue(absl::StrCat("domain of '", hparam.name, "'"), value, true);
        if (!proto.ok()) return proto.status();
        *list->add_values() = *std::move(proto);
      }
    }
  }
  std::set<std::string_view> seen_tags;
  for (const std::string& tag : metric_tags) {
    if (tag.empty()) return absl::InvalidArgumentError("metric with an empty tag");
    if (!seen_tags.insert(tag).second) {
      return absl::InvalidArgumentError(absl::StrCat("metric '", tag, "' is given twice"));
    }
    experiment->add_metric_infos()->mutable_name()->set_tag(tag);
  }

  SessionStart session;
  session.hparams.assign(hparams.begin(), hparams.end());
  absl::StatusOr<std::string> start_content = SessionStartContent(session, true);
  if (!start_content.ok()) return start_content.status();

  hp::HParamsPluginData end_data;
  end_data.mutable_session_end_info()->set_status(hp::STATUS_SUCCESS);

  TorchHParamsValues values;
  values.experiment = MakeValue(kHParamsExperimentTag, experiment_data.SerializeAsString(),
                                HParamsStyle::kPyTorch);
  values.session_start =
      MakeValue(kHParamsSessionStartTag, *std::move(start_content), HParamsStyle::kPyTorch);
  values.session_end =
      MakeValue(kHParamsSessionEndTag, end_data.SerializeAsString(), HParamsStyle::kPyTorch);
  return values;
}

}  // namespace tblog
