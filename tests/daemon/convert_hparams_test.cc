// Hyperparameters (convert/hparams.h): hparams records, and the events
// RecordConverter writes when a run opens and closes.
#include "daemon/record_converter.h"

#include <cmath>
#include <string>

#include "convert_test_util.h"
#include "engine/plugins/hparams_summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tblog/tensorboard/hparams.pb.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog::daemon {
namespace {

using ::testing::HasSubstr;

v1::HParams SampleHParams() {
  v1::HParams hparams;
  (*hparams.mutable_values())["lr"].set_number(0.01);
  (*hparams.mutable_values())["optimizer"].set_text("adam");
  (*hparams.mutable_values())["dropout"].set_flag(true);
  v1::MetricSpec* metric = hparams.add_metrics();
  metric->set_tag("accuracy");
  metric->set_subrun("validation");
  metric->set_dataset_type(v1::DATASET_TYPE_VALIDATION);
  return hparams;
}

hp::HParamsPluginData PluginData(const tb::Summary::Value& value) {
  hp::HParamsPluginData data;
  EXPECT_TRUE(data.ParseFromString(value.metadata().plugin_data().content()));
  return data;
}

TEST_F(RecordConverterTest, HParamsRecordTensorBoardAndTorchStyles) {
  v1::Record record = Base("");
  record.set_subrun("trial-1");
  *record.mutable_hparams() = SampleHParams();
  Converted out = Ok(record);
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_EQ(out.events[0].subrun, "trial-1");
  tb::Summary::Value experiment = ParseEvent(out.events[0]).summary().value(0);
  EXPECT_EQ(experiment.tag(), "_hparams_/experiment");
  const hp::Experiment config = PluginData(experiment).experiment();
  ASSERT_EQ(config.hparam_infos_size(), 3);
  EXPECT_EQ(config.hparam_infos(0).name(), "dropout");  // name order
  EXPECT_EQ(config.hparam_infos(0).type(), hp::DATA_TYPE_BOOL);
  EXPECT_EQ(config.hparam_infos(1).type(), hp::DATA_TYPE_FLOAT64);
  ASSERT_EQ(config.metric_infos_size(), 1);
  EXPECT_EQ(config.metric_infos(0).name().group(), "validation");
  const tb::Summary::Value start = ParseEvent(out.events[1]).summary().value(0);
  EXPECT_EQ(start.tag(), "_hparams_/session_start_info");
  EXPECT_EQ(PluginData(start).session_start_info().hparams().at("optimizer").string_value(),
            "adam");

  record.mutable_hparams()->mutable_metrics(0)->clear_subrun();
  record.mutable_hparams()->set_torch_style(true);
  out = Ok(record);
  ASSERT_EQ(out.events.size(), 3u);
  const tb::Summary::Value end = ParseEvent(out.events[2]).summary().value(0);
  EXPECT_EQ(end.tag(), "_hparams_/session_end_info");
  EXPECT_EQ(PluginData(end).session_end_info().status(), hp::STATUS_SUCCESS);
}

TEST_F(RecordConverterTest, HParamsDomains) {
  v1::Record record = Base("");
  *record.mutable_hparams() = SampleHParams();
  v1::HParamDomain& lr = (*record.mutable_hparams()->mutable_domains())["lr"];
  lr.mutable_interval()->set_min(1e-4);
  lr.mutable_interval()->set_max(1.0);
  v1::HParamDomain& layers = (*record.mutable_hparams()->mutable_domains())["layers"];
  layers.mutable_discrete()->add_values()->set_number(2);
  layers.mutable_discrete()->add_values()->set_number(4);
  const Converted out = Ok(record);
  const hp::Experiment config =
      PluginData(ParseEvent(out.events[0]).summary().value(0)).experiment();
  ASSERT_EQ(config.hparam_infos_size(), 4);
  EXPECT_EQ(config.hparam_infos(1).name(), "layers");
  EXPECT_EQ(config.hparam_infos(1).domain_discrete().values_size(), 2);
  EXPECT_EQ(config.hparam_infos(2).name(), "lr");
  EXPECT_EQ(config.hparam_infos(2).domain_interval().max_value(), 1.0);
}

TEST_F(RecordConverterTest, HParamsRejectBadInput) {
  v1::Record nan = Base("");
  (*nan.mutable_hparams()->mutable_values())["lr"].set_number(std::nan(""));
  ExpectInvalid(nan, {"hparams", "values[\"lr\"]", "finite"});

  v1::Record unset = Base("");
  (*unset.mutable_hparams()->mutable_values())["lr"];
  ExpectInvalid(unset, {"values[\"lr\"]", "no value set"});

  v1::Record metric = Base("");
  metric.mutable_hparams()->add_metrics()->set_tag("bad\x7f");
  ExpectInvalid(metric, {"metrics[0]", "control character"});

  v1::Record dataset = Base("");
  v1::MetricSpec* spec = dataset.mutable_hparams()->add_metrics();
  spec->set_tag("acc");
  spec->set_dataset_type(static_cast<v1::DatasetType>(6));
  ExpectInvalid(dataset, {"metrics[0].dataset_type", "unknown enum value 6"});

  v1::Record interval = Base("");
  v1::HParamDomain& d = (*interval.mutable_hparams()->mutable_domains())["lr"];
  d.mutable_interval()->set_min(2);
  d.mutable_interval()->set_max(1);
  ExpectInvalid(interval, {"domains[\"lr\"]", "min <= max"});

  v1::Record empty = Base("");
  empty.mutable_hparams();
  ExpectInvalid(empty, {"hparams", "no hparams"});
}

TEST_F(RecordConverterTest, OpenRunWritesPurgeStartThenHParams) {
  v1::OpenRunRequest request;
  request.set_purge_step(42);
  *request.mutable_hparams() = SampleHParams();
  absl::StatusOr<Converted> out = converter_.OpenRunEvents(request, 1234.5);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->events.size(), 3u);
  const tb::Event purge = ParseEvent(out->events[0]);
  EXPECT_EQ(purge.step(), 42);
  EXPECT_EQ(purge.wall_time(), 1234.5);
  EXPECT_EQ(purge.session_log().status(), tb::SessionLog::START);
  EXPECT_EQ(ParseEvent(out->events[1]).summary().value(0).tag(), "_hparams_/experiment");
  const tb::Event start = ParseEvent(out->events[2]);
  EXPECT_EQ(start.step(), 0);
  EXPECT_EQ(start.summary().value(0).tag(), "_hparams_/session_start_info");
  EXPECT_EQ(PluginData(start.summary().value(0)).session_start_info().start_time_secs(), 1234.5);

  v1::OpenRunRequest plain;
  out = converter_.OpenRunEvents(plain, 1.0);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->events.empty());

  v1::OpenRunRequest bad;
  (*bad.mutable_hparams()->mutable_values())["x"].set_number(INFINITY);
  out = converter_.OpenRunEvents(bad, 1.0);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("hparams: values[\"x\"]"));
}

TEST_F(RecordConverterTest, CloseRunWritesSessionEndOnlyWithHParams) {
  EXPECT_TRUE(converter_.CloseRunEvents(v1::SESSION_STATUS_SUCCESS, v1::HParams(), 1.0)
                  .events.empty());
  const struct {
    v1::SessionStatus in;
    hp::Status out;
  } cases[] = {{v1::SESSION_STATUS_UNSPECIFIED, hp::STATUS_SUCCESS},
               {v1::SESSION_STATUS_FAILURE, hp::STATUS_FAILURE},
               {v1::SESSION_STATUS_RUNNING, hp::STATUS_RUNNING},
               {static_cast<v1::SessionStatus>(99), hp::STATUS_UNKNOWN}};
  for (const auto& c : cases) {
    const Converted out = converter_.CloseRunEvents(c.in, SampleHParams(), 99.0);
    ASSERT_EQ(out.events.size(), 1u);
    const tb::Event event = ParseEvent(out.events[0]);
    EXPECT_EQ(event.wall_time(), 99.0);
    const tb::Summary::Value& value = event.summary().value(0);
    EXPECT_EQ(value.tag(), "_hparams_/session_end_info");
    EXPECT_EQ(PluginData(value).session_end_info().status(), c.out);
    EXPECT_EQ(PluginData(value).session_end_info().end_time_secs(), 99.0);
  }
}

}  // namespace
}  // namespace tblog::daemon
