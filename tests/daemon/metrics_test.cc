// The daemon's Prometheus exposition (server/daemon/metrics.h): a well-formed
// text format, conventional names, and counters and gauges that follow the
// state of real components (a ByteBudget, a WorkerPool).
#include "daemon/metrics.h"

#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "daemon/byte_budget.h"
#include "daemon/worker_pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// One parsed exposition: family -> type, and sample ("name{labels}") -> value.
struct Exposition {
  std::map<std::string, std::string> types;
  std::map<std::string, double> samples;
};

// Parses the text format strictly enough to catch what a Prometheus server
// would reject: every family has HELP then TYPE, before its samples; every
// sample belongs to the family declared last, has a valid name, and a number.
Exposition Parse(const std::string& text) {
  static const std::regex kHelp(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*)");
  static const std::regex kType(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|summary))");
  static const std::regex kSample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"\})? (\S+))");
  Exposition exposition;
  std::istringstream lines(text);
  std::string line, help_family, family, type;
  std::smatch match;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, match, kHelp)) {
      help_family = match[1];
      family.clear();
    } else if (std::regex_match(line, match, kType)) {
      EXPECT_EQ(match[1], help_family) << "TYPE without its HELP: " << line;
      family = match[1];
      type = match[2];
      EXPECT_EQ(exposition.types.count(family), 0u) << "family declared twice: " << family;
      exposition.types[family] = type;
    } else if (std::regex_match(line, match, kSample)) {
      const std::string name = match[1];
      const bool belongs =
          name == family ||
          (type == "summary" && (name == family + "_sum" || name == family + "_count"));
      EXPECT_TRUE(belongs) << "sample outside its family " << family << ": " << line;
      double value = 0;
      EXPECT_TRUE(absl::SimpleAtod(match[3].str(), &value)) << line;
      exposition.samples[name + match[2].str()] = value;
    } else {
      ADD_FAILURE() << "not a Prometheus text line: '" << line << "'";
    }
  }
  return exposition;
}

TEST(MetricsTest, ExpositionIsWellFormedAndNamedByConvention) {
  Metrics metrics;
  ByteBudget budget(1000);
  WorkerPool workers(1);
  metrics.ReadGaugesFrom(&budget, &workers);
  metrics.AddGauge("tblogd_active_runs", "Open runs.", [] { return 0; });
  metrics.AddGauge("tblogd_active_streams", "Open Write streams.", [] { return 0; });
  metrics.AddRejected(3);
  const std::string text = metrics.RenderPrometheus();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const Exposition exposition = Parse(text);
  for (const auto& [family, type] : exposition.types) {
    EXPECT_TRUE(absl::StartsWith(family, "tblogd_")) << family;
    // Counters end in _total; nothing else may (nor claim a summary's suffixes).
    EXPECT_EQ(absl::EndsWith(family, "_total"), type == "counter") << family;
    EXPECT_FALSE(absl::EndsWith(family, "_sum") || absl::EndsWith(family, "_count")) << family;
  }
  for (const char* family :
       {"tblogd_records_received_total", "tblogd_records_written_total",
        "tblogd_records_rejected_total", "tblogd_received_bytes_total", "tblogd_flushes_total",
        "tblogd_inflight_bytes", "tblogd_parked_streams", "tblogd_worker_queued_tasks",
        "tblogd_active_runs", "tblogd_active_streams", "tblogd_flush_latency_seconds"}) {
    EXPECT_EQ(exposition.types.count(family), 1u) << family;
  }
}

TEST(MetricsTest, CountersFollowWhatWasCounted) {
  Metrics metrics;
  metrics.AddReceived(RecordKind::kScalar, 3);
  metrics.AddReceived(RecordKind::kImage, 1);
  metrics.AddWritten(RecordKind::kScalar, 2);
  metrics.AddRejected(static_cast<int>(absl::StatusCode::kInvalidArgument));
  metrics.AddRejected(static_cast<int>(absl::StatusCode::kInvalidArgument));
  metrics.AddFlush(absl::Milliseconds(250));
  metrics.AddFlush(absl::Milliseconds(500));
  metrics.bytes_received += 4096;
  int64_t open_runs = 2;
  metrics.AddGauge("tblogd_active_runs", "Open runs.", [&open_runs] { return open_runs; });
  const Exposition e = Parse(metrics.RenderPrometheus());
  EXPECT_EQ(e.samples.at("tblogd_records_received_total{kind=\"scalar\"}"), 3);
  EXPECT_EQ(e.samples.at("tblogd_records_received_total{kind=\"image\"}"), 1);
  EXPECT_EQ(e.samples.at("tblogd_records_received_total{kind=\"histogram\"}"), 0);
  EXPECT_EQ(e.samples.at("tblogd_records_written_total{kind=\"scalar\"}"), 2);
  EXPECT_EQ(e.samples.at("tblogd_records_rejected_total{code=\"INVALID_ARGUMENT\"}"), 2);
  EXPECT_EQ(e.samples.count("tblogd_records_rejected_total{code=\"NOT_FOUND\"}"), 0u);
  EXPECT_EQ(e.samples.at("tblogd_received_bytes_total"), 4096);
  EXPECT_EQ(e.samples.at("tblogd_active_runs"), 2);
  open_runs = 1;  // read from its owner at every scrape
  EXPECT_EQ(Parse(metrics.RenderPrometheus()).samples.at("tblogd_active_runs"), 1);
  EXPECT_EQ(e.samples.at("tblogd_flushes_total"), 2);
  EXPECT_EQ(e.samples.at("tblogd_flush_latency_seconds_count"), 2);
  EXPECT_DOUBLE_EQ(e.samples.at("tblogd_flush_latency_seconds_sum"), 0.75);
}

TEST(MetricsTest, BudgetGaugesAreReadFromTheBudget) {
  Metrics metrics;
  ByteBudget budget(100);
  metrics.ReadGaugesFrom(&budget, nullptr);
  budget.Charge(40);
  Exposition e = Parse(metrics.RenderPrometheus());
  EXPECT_EQ(e.samples.at("tblogd_inflight_bytes"), 40);
  EXPECT_EQ(e.samples.at("tblogd_parked_streams"), 0);

  bool resumed = false;
  const ByteBudget::Grant grant = budget.Reserve(70, [&resumed](bool) { resumed = true; });
  ASSERT_FALSE(grant.granted);  // 40 + 70 is over capacity: the stream waits
  e = Parse(metrics.RenderPrometheus());
  EXPECT_EQ(e.samples.at("tblogd_inflight_bytes"), 40);
  EXPECT_EQ(e.samples.at("tblogd_parked_streams"), 1);

  budget.Release(40);
  EXPECT_TRUE(resumed);
  e = Parse(metrics.RenderPrometheus());
  EXPECT_EQ(e.samples.at("tblogd_inflight_bytes"), 70);  // its reservation
  EXPECT_EQ(e.samples.at("tblogd_parked_streams"), 0);
  budget.Cancel(grant.ticket);
  e = Parse(metrics.RenderPrometheus());
  EXPECT_EQ(e.samples.at("tblogd_inflight_bytes"), 0);
  EXPECT_EQ(e.samples.at("tblogd_parked_streams"), 0);
  EXPECT_EQ(e.samples.count("tblogd_worker_queued_tasks"), 0u);  // no pool given
}

TEST(MetricsTest, QueuedTasksAreReadFromTheWorkerPool) {
  Metrics metrics;
  Notification running, release;
  {
    WorkerPool workers(1);
    metrics.ReadGaugesFrom(nullptr, &workers);
    workers.Submit([&] {
      running.Notify();
      release.WaitForNotification();
    });
    running.WaitForNotification();  // the only worker is busy from now on
    for (int i = 0; i < 3; ++i) workers.Submit([] {});
    const Exposition e = Parse(metrics.RenderPrometheus());
    EXPECT_EQ(e.samples.at("tblogd_worker_queued_tasks"), 3);
    EXPECT_EQ(e.samples.count("tblogd_inflight_bytes"), 0u);  // no budget given
    release.Notify();
  }  // the pool runs the queued tasks and joins
}

TEST(MetricsTest, WithoutSourcesOnlyTheCountersAreRendered) {
  const std::string text = Metrics().RenderPrometheus();
  EXPECT_THAT(text, Not(HasSubstr("tblogd_inflight_bytes")));
  EXPECT_THAT(text, Not(HasSubstr("tblogd_worker_queued_tasks")));
  EXPECT_THAT(text, HasSubstr("tblogd_records_received_total"));
}

}  // namespace
}  // namespace tblog::daemon
