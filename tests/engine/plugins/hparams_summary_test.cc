#include "engine/plugins/hparams_summary.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "golden_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace tblog {
namespace {

hp::HParamsPluginData Content(const tb::Summary::Value& value) {
  hp::HParamsPluginData data;
  EXPECT_TRUE(data.ParseFromString(value.metadata().plugin_data().content()));
  return data;
}

ExperimentConfig GoldenExperiment() {
  ExperimentConfig experiment;
  experiment.time_created_secs = 1700000000.0;
  HParamConfig lr;
  lr.name = "lr";
  lr.type = hp::DATA_TYPE_FLOAT64;
  lr.domain = HParamInterval{0.0001, 0.1};
  HParamConfig optimizer;
  optimizer.name = "optimizer";
  optimizer.type = hp::DATA_TYPE_STRING;
  optimizer.domain = std::vector<HParamValue>{std::string("adam"), std::string("sgd")};
  experiment.hparams = {lr, optimizer};
  MetricConfig accuracy;
  accuracy.tag = "epoch_accuracy";
  accuracy.display_name = "Accuracy";
  experiment.metrics = {accuracy};
  return experiment;
}

TEST(HParamsSummaryTest, TensorBoardStyleCarriesAnEmptyFloatTensor) {
  absl::StatusOr<tb::Summary::Value> value =
      HParamsExperimentValue(GoldenExperiment(), HParamsStyle::kTensorBoard);
  ASSERT_TRUE(value.ok()) << value.status();
  ExpectAndClearDataClass(tb::DATA_CLASS_TENSOR, &*value);
  EXPECT_EQ(value->tag(), kHParamsExperimentTag);
  EXPECT_EQ(value->metadata().plugin_data().plugin_name(), "hparams");
  ASSERT_TRUE(value->has_tensor());
  EXPECT_EQ(value->tensor().dtype(), tb::DT_FLOAT);
  ASSERT_EQ(value->tensor().tensor_shape().dim_size(), 1);
  EXPECT_EQ(value->tensor().tensor_shape().dim(0).size(), 0);
  const hp::HParamsPluginData data = Content(*value);
  ASSERT_TRUE(data.has_experiment());
  EXPECT_EQ(data.experiment().hparam_infos(1).domain_discrete().values(1).string_value(), "sgd");

  absl::StatusOr<tb::Summary::Value> torch =
      HParamsExperimentValue(GoldenExperiment(), HParamsStyle::kPyTorch);
  ASSERT_TRUE(torch.ok());
  EXPECT_FALSE(torch->has_tensor());
  EXPECT_EQ(torch->metadata().data_class(), tb::DATA_CLASS_UNKNOWN);
}

TEST(HParamsSummaryTest, SessionStartKeepsTypedValuesInGivenOrder) {
  SessionStart session;
  session.hparams = {{"units", 64.0}, {"act", std::string("relu")}, {"bn", true}};
  session.group_name = "g";
  session.start_time_secs = 5;
  absl::StatusOr<tb::Summary::Value> value =
      HParamsSessionStartValue(session, HParamsStyle::kTensorBoard);
  ASSERT_TRUE(value.ok()) << value.status();
  ExpectAndClearDataClass(tb::DATA_CLASS_TENSOR, &*value);
  const hp::HParamsPluginData data = Content(*value);
  ASSERT_TRUE(data.has_session_start_info());
  const hp::SessionStartInfo& start = data.session_start_info();
  EXPECT_EQ(start.hparams().at("units").number_value(), 64.0);
  EXPECT_EQ(start.hparams().at("act").string_value(), "relu");
  EXPECT_TRUE(start.hparams().at("bn").bool_value());
  EXPECT_EQ(start.group_name(), "g");
  EXPECT_EQ(start.start_time_secs(), 5);
  // Deterministic: the entries appear in the given order in the bytes.
  const std::string& bytes = value->metadata().plugin_data().content();
  EXPECT_LT(bytes.find("units"), bytes.find("act"));
  EXPECT_LT(bytes.find("act"), bytes.find("bn"));
}

TEST(HParamsSummaryTest, SessionEndChecksTheStatus) {
  absl::StatusOr<tb::Summary::Value> value =
      HParamsSessionEndValue({hp::STATUS_FAILURE, 12.5}, HParamsStyle::kTensorBoard);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(value->tag(), kHParamsSessionEndTag);
  EXPECT_EQ(Content(*value).session_end_info().status(), hp::STATUS_FAILURE);
  EXPECT_EQ(Content(*value).session_end_info().end_time_secs(), 12.5);
  absl::Status status =
      HParamsSessionEndValue({static_cast<hp::Status>(7), 0}, HParamsStyle::kTensorBoard).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("unknown status 7"), absl::string_view::npos) << status;
}

TEST(HParamsSummaryTest, RejectsInvalidConfigs) {
  const auto experiment_error = [](const ExperimentConfig& experiment) {
    return HParamsExperimentValue(experiment, HParamsStyle::kTensorBoard).status();
  };
  ExperimentConfig experiment = GoldenExperiment();
  experiment.hparams[1].name = "lr";
  EXPECT_NE(experiment_error(experiment).message().find("'lr' is given twice"),
            absl::string_view::npos);
  experiment = GoldenExperiment();
  experiment.hparams[0].name = "";
  EXPECT_FALSE(experiment_error(experiment).ok());
  experiment = GoldenExperiment();
  experiment.hparams[0].domain = HParamInterval{1, 0};
  EXPECT_FALSE(experiment_error(experiment).ok());
  experiment.hparams[0].domain = HParamInterval{0, std::numeric_limits<double>::infinity()};
  EXPECT_FALSE(experiment_error(experiment).ok());
  experiment = GoldenExperiment();
  experiment.hparams[1].domain = std::vector<HParamValue>{std::string("adam"), 1.0};
  EXPECT_FALSE(experiment_error(experiment).ok());
  experiment.hparams[1].domain = std::vector<HParamValue>{};
  EXPECT_FALSE(experiment_error(experiment).ok());
  experiment = GoldenExperiment();
  experiment.hparams[1].domain = std::vector<HParamValue>{std::nan("")};
  experiment.hparams[1].type = hp::DATA_TYPE_FLOAT64;
  EXPECT_NE(experiment_error(experiment).message().find("must be finite"), absl::string_view::npos);
  experiment = GoldenExperiment();
  experiment.metrics.push_back(experiment.metrics[0]);
  EXPECT_FALSE(experiment_error(experiment).ok());
  experiment.metrics[1].group = "validation";  // same tag, another run: fine
  EXPECT_TRUE(experiment_error(experiment).ok());
  experiment.metrics[1].tag = "";
  EXPECT_FALSE(experiment_error(experiment).ok());

  SessionStart session;
  session.hparams = {{"lr", 0.1}, {"lr", 0.2}};
  EXPECT_FALSE(HParamsSessionStartValue(session, HParamsStyle::kTensorBoard).ok());
  session.hparams = {{"lr", std::numeric_limits<double>::quiet_NaN()}};
  EXPECT_FALSE(HParamsSessionStartValue(session, HParamsStyle::kTensorBoard).ok());
  session.hparams = {{"", 1.0}};
  EXPECT_FALSE(HParamsSessionStartValue(session, HParamsStyle::kTensorBoard).ok());
}

TEST(HParamsSummaryTest, TorchStoresBoolsAsNumbersAndChecksDomains) {
  const std::vector<HParam> hparams = {{"bn", true}, {"opt", std::string("sgd")}};
  const std::vector<std::string> metrics = {"m"};
  const std::vector<TorchHParamDomain> domains = {{"bn", {true, false}}};
  absl::StatusOr<TorchHParamsValues> values = TorchHParamsSummary(hparams, metrics, domains);
  ASSERT_TRUE(values.ok()) << values.status();
  const hp::Experiment experiment = Content(values->experiment).experiment();
  EXPECT_EQ(experiment.hparam_infos(0).type(), hp::DATA_TYPE_FLOAT64);
  EXPECT_EQ(experiment.hparam_infos(0).domain_discrete().values(0).number_value(), 1.0);
  EXPECT_EQ(experiment.hparam_infos(1).type(), hp::DATA_TYPE_STRING);
  EXPECT_EQ(Content(values->session_start).session_start_info().hparams().at("bn").number_value(),
            1.0);
  EXPECT_EQ(Content(values->session_end).session_end_info().status(), hp::STATUS_SUCCESS);

  const std::vector<TorchHParamDomain> wrong_kind = {{"bn", {1.0}}};
  EXPECT_FALSE(TorchHParamsSummary(hparams, metrics, wrong_kind).ok());
  const std::vector<TorchHParamDomain> unknown = {{"nope", {1.0}}};
  EXPECT_FALSE(TorchHParamsSummary(hparams, metrics, unknown).ok());
  const std::vector<std::string> twice = {"m", "m"};
  EXPECT_FALSE(TorchHParamsSummary(hparams, twice).ok());
}

TEST(HParamsGoldenTest, ExperimentMatchesTensorBoardByteForByte) {
  const std::vector<tb::Event> events = ReadGoldenEvents("hparams");
  const tb::Summary::Value* golden = FindValue(events, kHParamsExperimentTag, 0);
  ASSERT_NE(golden, nullptr);
  absl::StatusOr<tb::Summary::Value> value =
      HParamsExperimentValue(GoldenExperiment(), HParamsStyle::kTensorBoard);
  ASSERT_TRUE(value.ok()) << value.status();
  ExpectAndClearDataClass(tb::DATA_CLASS_TENSOR, &*value);
  ExpectSameBytes(*value, *golden);
}

TEST(HParamsGoldenTest, SessionStartMatchesTensorBoardByteForByte) {
  const std::vector<tb::Event> events = ReadGoldenEvents("hparams/trial-1");
  const tb::Summary::Value* golden = FindValue(events, kHParamsSessionStartTag, 0);
  ASSERT_NE(golden, nullptr);
  SessionStart session;
  session.hparams = {{"lr", 0.01}, {"optimizer", std::string("adam")}};
  session.group_name = "trial-1";
  session.start_time_secs = 1700000000.0;
  absl::StatusOr<tb::Summary::Value> value =
      HParamsSessionStartValue(session, HParamsStyle::kTensorBoard);
  ASSERT_TRUE(value.ok()) << value.status();
  ExpectAndClearDataClass(tb::DATA_CLASS_TENSOR, &*value);
  ExpectSameBytes(*value, *golden);
}

// torch_hparams/trial: add_hparams({"lr": 0.01, "optimizer": "adam",
// "layers": 3, "dropout_on": True}, {"hparam/accuracy": 0.9}).
TEST(HParamsGoldenTest, TorchAddHParamsMatchesPyTorch) {
  const std::vector<tb::Event> events = ReadGoldenEvents("torch_hparams/trial");
  const tb::Summary::Value* golden_experiment = FindValue(events, kHParamsExperimentTag, 0);
  const tb::Summary::Value* golden_start = FindValue(events, kHParamsSessionStartTag, 0);
  const tb::Summary::Value* golden_end = FindValue(events, kHParamsSessionEndTag, 0);
  ASSERT_NE(golden_experiment, nullptr);
  ASSERT_NE(golden_start, nullptr);
  ASSERT_NE(golden_end, nullptr);
  const std::vector<HParam> hparams = {
      {"lr", 0.01}, {"optimizer", std::string("adam")}, {"layers", 3.0}, {"dropout_on", true}};
  const std::vector<std::string> metrics = {"hparam/accuracy"};
  absl::StatusOr<TorchHParamsValues> values = TorchHParamsSummary(hparams, metrics);
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(values->experiment.SerializeAsString(), golden_experiment->SerializeAsString());
  EXPECT_EQ(values->session_end.SerializeAsString(), golden_end->SerializeAsString());
  // Python wrote the session's map in its own hash order (optimizer,
  // dropout_on, lr, layers), not the call's order; the entries are equal.
  hp::HParamsPluginData ours = Content(values->session_start);
  hp::HParamsPluginData theirs = Content(*golden_start);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(ours, theirs));
  EXPECT_EQ(values->session_start.ByteSizeLong(), golden_start->ByteSizeLong());
  // Given in Python's order, the entries give the same bytes.
  SessionStart session;
  session.hparams = {{"optimizer", std::string("adam")}, {"dropout_on", 1.0},
                     {"lr", 0.01}, {"layers", 3.0}};
  absl::StatusOr<tb::Summary::Value> start = HParamsSessionStartValue(session, HParamsStyle::kPyTorch);
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(start->SerializeAsString(), golden_start->SerializeAsString());
  // The metric itself is an ordinary simple_value scalar, written by the caller.
  const tb::Summary::Value* metric = FindValue(events, "hparam/accuracy", 0);
  ASSERT_NE(metric, nullptr);
  EXPECT_FLOAT_EQ(metric->simple_value(), 0.9f);
}

TEST(HParamsGoldenTest, TorchTopLevelRunHoldsOnlyTheFileVersion) {
  const std::vector<tb::Event> events = ReadGoldenEvents("torch_hparams");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
}

}  // namespace
}  // namespace tblog
