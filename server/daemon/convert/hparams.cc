#include "daemon/convert/hparams.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/names.h"
#include "engine/plugins/hparams_summary.h"

namespace tblog::daemon::convert {
namespace {

// A metric's dataset type converts by static_cast.
static_assert(v1::DATASET_TYPE_TRAINING == static_cast<int>(hp::DATASET_TRAINING));
static_assert(v1::DATASET_TYPE_VALIDATION == static_cast<int>(hp::DATASET_VALIDATION));

absl::StatusOr<HParamValue> ToHParamValue(const v1::HParamValue& value, std::string_view field,
                                          const Limits& limits) {
  switch (value.value_case()) {
    case v1::HParamValue::kNumber:
      if (!std::isfinite(value.number())) {
        return Bad(field, absl::StrCat("number is ", value.number(), "; must be finite"));
      }
      return HParamValue(value.number());
    case v1::HParamValue::kText:
      TBLOG_RETURN_IF_ERROR(ValidateFreeText(value.text(), field, limits.max_text_bytes));
      return HParamValue(value.text());
    case v1::HParamValue::kFlag: return HParamValue(value.flag());
    case v1::HParamValue::VALUE_NOT_SET: break;
  }
  return Bad(field, "no value set (number, text or flag)");
}

hp::DataType TypeOf(const HParamValue& value) {
  if (std::holds_alternative<double>(value)) return hp::DATA_TYPE_FLOAT64;
  if (std::holds_alternative<std::string>(value)) return hp::DATA_TYPE_STRING;
  return hp::DATA_TYPE_BOOL;
}

// The API's HParams as the engine's experiment config and session start.
// Hyperparameters are taken in name order (proto maps have none), so output
// is deterministic; a name with only a domain is in the experiment only.
struct HParamsParts {
  ExperimentConfig experiment;
  SessionStart session;
  std::vector<TorchHParamDomain> torch_domains;
  std::vector<std::string> metric_tags;
};

absl::StatusOr<HParamsParts> ConvertHParams(const v1::HParams& hparams, double now,
                                            const Limits& limits) {
  std::map<std::string_view, const v1::HParamValue*> values;
  std::map<std::string_view, const v1::HParamDomain*> domains;
  for (const auto& [name, value] : hparams.values()) values[name] = &value;
  for (const auto& [name, domain] : hparams.domains()) domains[name] = &domain;
  std::vector<std::string_view> names;
  for (const auto& [name, value] : values) names.push_back(name);
  for (const auto& [name, domain] : domains) {
    if (!values.contains(name)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());

  HParamsParts parts;
  parts.experiment.time_created_secs = now;
  parts.session.start_time_secs = now;
  for (std::string_view name : names) {
    const std::string field = absl::StrCat("values[", EscapeForMessage(name), "]");
    if (name.empty()) return Bad(field, "hparam name is empty");
    TBLOG_RETURN_IF_ERROR(ValidateLabel(name, "hparam name", limits.max_tag_bytes));
    HParamConfig config;
    config.name = std::string(name);
    if (auto it = values.find(name); it != values.end()) {
      absl::StatusOr<HParamValue> value = ToHParamValue(*it->second, field, limits);
      if (!value.ok()) return value.status();
      config.type = TypeOf(*value);
      parts.session.hparams.push_back(HParam{config.name, *std::move(value)});
    }
    if (auto it = domains.find(name); it != domains.end()) {
      const std::string domain_field = absl::StrCat("domains[", EscapeForMessage(name), "]");
      const v1::HParamDomain& domain = *it->second;
      switch (domain.domain_case()) {
        case v1::HParamDomain::kInterval: {
          const double lo = domain.interval().min(), hi = domain.interval().max();
          if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) {
            return Bad(domain_field, absl::StrCat("interval [", lo, ", ", hi,
                                                  "] must be finite with min <= max"));
          }
          if (hparams.torch_style()) {
            return Bad(domain_field, "PyTorch's add_hparams takes discrete domains only");
          }
          config.domain = HParamInterval{lo, hi};
          if (config.type == hp::DATA_TYPE_UNSET) config.type = hp::DATA_TYPE_FLOAT64;
          break;
        }
        case v1::HParamDomain::kDiscrete: {
          std::vector<HParamValue> list;
          for (int i = 0; i < domain.discrete().values_size(); ++i) {
            absl::StatusOr<HParamValue> v = ToHParamValue(
                domain.discrete().values(i), absl::StrCat(domain_field, ".discrete.values[", i, "]"),
                limits);
            if (!v.ok()) return v.status();
            list.push_back(*std::move(v));
          }
          if (list.empty()) return Bad(domain_field, "discrete domain has no values");
          if (config.type == hp::DATA_TYPE_UNSET) config.type = TypeOf(list.front());
          parts.torch_domains.push_back(TorchHParamDomain{config.name, list});
          config.domain = std::move(list);
          break;
        }
        case v1::HParamDomain::DOMAIN_NOT_SET:
          return Bad(domain_field, "neither interval nor discrete is set");
      }
    }
    parts.experiment.hparams.push_back(std::move(config));
  }

  for (int i = 0; i < hparams.metrics_size(); ++i) {
    const v1::MetricSpec& spec = hparams.metrics(i);
    const std::string field = absl::StrCat("metrics[", i, "]");
    TBLOG_RETURN_IF_ERROR(Annotate(ValidateTag(spec.tag(), limits), field));
    TBLOG_RETURN_IF_ERROR(Annotate(ValidateSubrun(spec.subrun(), limits), field));
    TBLOG_RETURN_IF_ERROR(Annotate(
        ValidateLabel(spec.display_name(), "display_name", limits.max_tag_bytes), field));
    TBLOG_RETURN_IF_ERROR(Annotate(
        ValidateFreeText(spec.description(), "description", limits.max_text_bytes), field));
    if (!v1::DatasetType_IsValid(spec.dataset_type())) {
      return Bad(absl::StrCat(field, ".dataset_type"), UnknownEnum(spec.dataset_type()));
    }
    if (hparams.torch_style() && !spec.subrun().empty()) {
      return Bad(absl::StrCat(field, ".subrun"),
                 "PyTorch's add_hparams names metrics by tag only; leave subrun empty");
    }
    MetricConfig metric;
    metric.tag = spec.tag();
    metric.group = spec.subrun();
    metric.display_name = spec.display_name();
    metric.description = spec.description();
    metric.dataset_type = static_cast<hp::DatasetType>(spec.dataset_type());
    parts.experiment.metrics.push_back(std::move(metric));
    parts.metric_tags.push_back(spec.tag());
  }
  return parts;
}

HParamsStyle StyleOf(const v1::HParams& hparams) {
  return hparams.torch_style() ? HParamsStyle::kPyTorch : HParamsStyle::kTensorBoard;
}

// The experiment config and session start of `hparams` as events of `header`.
absl::Status AppendHParamsStart(const HParamsParts& parts, const v1::HParams& hparams,
                                const Header& header, Converted& out) {
  absl::StatusOr<tb::Summary::Value> experiment =
      HParamsExperimentValue(parts.experiment, StyleOf(hparams));
  if (!experiment.ok()) return experiment.status();
  absl::StatusOr<tb::Summary::Value> session =
      HParamsSessionStartValue(parts.session, StyleOf(hparams));
  if (!session.ok()) return session.status();
  out.events.push_back(SummaryEvent(header, *std::move(experiment)));
  out.events.push_back(SummaryEvent(header, *std::move(session)));
  return absl::OkStatus();
}

}  // namespace

bool HasHParams(const v1::HParams& hparams) {
  return hparams.values_size() > 0 || hparams.metrics_size() > 0 || hparams.domains_size() > 0;
}

absl::Status ConvertHParamsRecord(const v1::HParams& hparams, const Header& header,
                                  const Limits& limits, Converted& out) {
  if (!HasHParams(hparams)) return Bad("values", "no hparams or metrics given");
  absl::StatusOr<HParamsParts> parts = ConvertHParams(hparams, header.wall_time, limits);
  if (!parts.ok()) return parts.status();
  if (!hparams.torch_style()) return AppendHParamsStart(*parts, hparams, header, out);
  // As SummaryWriter.add_hparams: experiment, session start and end, all in
  // the record's (sub-)run. The metric scalars are the client's to send.
  absl::StatusOr<TorchHParamsValues> values =
      TorchHParamsSummary(parts->session.hparams, parts->metric_tags, parts->torch_domains);
  if (!values.ok()) return values.status();
  out.events.push_back(SummaryEvent(header, std::move(values->experiment)));
  out.events.push_back(SummaryEvent(header, std::move(values->session_start)));
  out.events.push_back(SummaryEvent(header, std::move(values->session_end)));
  return absl::OkStatus();
}

absl::Status AppendRunStartHParams(const v1::HParams& hparams, double now, const Limits& limits,
                                   Converted& out) {
  absl::StatusOr<HParamsParts> parts = ConvertHParams(hparams, now, limits);
  if (!parts.ok()) return parts.status();
  return AppendHParamsStart(*parts, hparams, Header{"", "", 0, now}, out);
}

Converted HParamsSessionEnd(v1::SessionStatus status, const v1::HParams& hparams, double now) {
  Converted out;
  if (!HasHParams(hparams)) return out;
  SessionEnd end;
  end.end_time_secs = now;
  switch (status) {
    case v1::SESSION_STATUS_UNSPECIFIED:
    case v1::SESSION_STATUS_SUCCESS: end.status = hp::STATUS_SUCCESS; break;
    case v1::SESSION_STATUS_FAILURE: end.status = hp::STATUS_FAILURE; break;
    case v1::SESSION_STATUS_RUNNING: end.status = hp::STATUS_RUNNING; break;
    default: end.status = hp::STATUS_UNKNOWN; break;
  }
  absl::StatusOr<tb::Summary::Value> value = HParamsSessionEndValue(end, StyleOf(hparams));
  // Cannot fail: the status is one of hp::Status's values. Should the engine
  // ever refuse it, the run still closes, and the warning says why.
  if (value.ok()) {
    out.events.push_back(SummaryEvent(Header{"", "", 0, now}, *std::move(value)));
  } else {
    out.warnings.push_back(
        absl::StrCat("hparams session end not written: ", value.status().message()));
  }
  return out;
}

}  // namespace tblog::daemon::convert
