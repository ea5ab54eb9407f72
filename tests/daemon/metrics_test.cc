// The daemon's metrics (server/daemon/metrics*.h): conventional names and
// types, counters and gauges that follow the state of real components (a
// ByteBudget, a WorkerPool), the flush histogram, points counted as points,
// bounded per-run series, build info and the process collector.
// tests/daemon/metrics_scrape_test.py scrapes the real daemon and parses the
// text with the official Prometheus parser.
#include "daemon/metrics.h"

#include <unistd.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "daemon/byte_budget.h"
#include "daemon/metrics_process.h"
#include "daemon/worker_pool.h"
#include "gmock/gmock.h"
#include "daemon/request_builders.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// One parsed exposition: family -> type, and sample ("name{labels}", labels
// as rendered) -> value.
struct Exposition {
  std::map<std::string, std::string> types;
  std::map<std::string, double> samples;
};

// Reads the text format strictly enough to catch what a Prometheus server
// would reject: every family has HELP then TYPE before its samples; every
// sample belongs to the family declared last (a histogram's _bucket, _sum and
// _count included) and has a number.
Exposition Parse(const std::string& text) {
  static const std::regex kHelp(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*)");
  static const std::regex kType(
      R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram))");
  static const std::regex kSample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (\S+))");
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
      const bool belongs = name == family || (type == "histogram" && (name == family + "_bucket" ||
                                                                      name == family + "_sum" ||
                                                                      name == family + "_count"));
      EXPECT_TRUE(belongs) << "sample outside its family " << family << ": " << line;
      double value = 0;
      const std::string number = match[5];
      EXPECT_TRUE(absl::SimpleAtod(number, &value)) << line;
      exposition.samples[name + match[2].str()] = value;
    } else {
      ADD_FAILURE() << "not a Prometheus text line: '" << line << "'";
    }
  }
  return exposition;
}

// Every sample of `expected` has its value in `e`.
void ExpectSamples(const Exposition& e, const std::map<std::string, double>& expected) {
  for (const auto& [name, value] : expected) {
    ASSERT_EQ(e.samples.count(name), 1u) << name;
    EXPECT_EQ(e.samples.at(name), value) << name;
  }
}

v1::Record Scalar() {
  v1::Record record;
  record.set_tag("loss");
  record.mutable_scalar()->set_value(1);
  return record;
}

TEST(MetricsTest, ExpositionIsWellFormedAndNamedByConvention) {
  Metrics metrics;
  ByteBudget budget(1000);
  WorkerPool workers(1);
  metrics.ReadGaugesFrom(&budget, &workers);
  metrics.AddGauge("tblogd_active_runs", "Open runs.", [] { return 0; });
  metrics.AddGauge("tblogd_active_streams", "Open Write streams.", [] { return 0; });
  metrics.AddRejected("a/run", absl::StatusCode::kInvalidArgument);
  metrics.AddStreamDropped(absl::StatusCode::kNotFound);
  metrics.RunLeaseAcquired("a/run");
  metrics.AddFlush(absl::Milliseconds(3));
  const std::string text = metrics.RenderPrometheus();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const Exposition exposition = Parse(text);
  for (const auto& [family, type] : exposition.types) {
    EXPECT_TRUE(absl::StartsWith(family, "tblogd_") || absl::StartsWith(family, "process_"))
        << family;
    // Counters end in _total; nothing else does.
    EXPECT_EQ(absl::EndsWith(family, "_total"), type == "counter") << family;
    // Units are base units, last (before _total).
    for (const char* unit : {"bytes", "seconds"}) {
      if (absl::StrContains(family, std::string("_") + unit + "_") ||
          absl::EndsWith(family, std::string("_") + unit)) {
        EXPECT_TRUE(absl::EndsWith(family, std::string("_") + unit) ||
                    absl::EndsWith(family, std::string("_") + unit + "_total"))
            << family;
      }
    }
  }
  const std::map<std::string, std::string> expected = {
      {"tblogd_build_info", "gauge"},
      {"tblogd_records_received_total", "counter"},
      {"tblogd_points_received_total", "counter"},
      {"tblogd_records_written_total", "counter"},
      {"tblogd_points_written_total", "counter"},
      {"tblogd_records_rejected_total", "counter"},
      {"tblogd_streams_dropped_total", "counter"},
      {"tblogd_received_bytes_total", "counter"},
      {"tblogd_event_file_written_bytes_total", "counter"},
      {"tblogd_flush_duration_seconds", "histogram"},
      {"tblogd_flush_call_duration_seconds", "histogram"},
      {"tblogd_inflight_bytes", "gauge"},
      {"tblogd_parked_streams", "gauge"},
      {"tblogd_worker_queued_tasks", "gauge"},
      {"tblogd_active_runs", "gauge"},
      {"tblogd_active_streams", "gauge"},
      {"tblogd_run_records_rejected_total", "counter"},
      {"tblogd_run_leases_acquired_total", "counter"},
      {"tblogd_run_leases", "gauge"},
      {"tblogd_run_series_evicted_total", "counter"},
      {"process_cpu_seconds_total", "counter"},
      {"process_resident_memory_bytes", "gauge"},
      {"process_open_fds", "gauge"},
  };
  for (const auto& [family, type] : expected) {
    ASSERT_EQ(exposition.types.count(family), 1u) << family;
    EXPECT_EQ(exposition.types.at(family), type) << family;
  }
}

TEST(MetricsTest, PointsAreCountedAsPoints) {
  Metrics metrics;
  const v1::Record column = tblog::testing::ScalarColumnRecord(1000);
  metrics.AddReceived(column);
  metrics.AddReceived(Scalar());
  metrics.AddReceived(Scalar());
  metrics.AddWritten(column);
  metrics.AddWritten(Scalar());
  EXPECT_EQ(PointsOf(column), 1000u);
  EXPECT_EQ(PointsOf(Scalar()), 1u);
  EXPECT_EQ(PointsOf(tblog::testing::ScalarColumnRecord(0)), 0u);
  ExpectSamples(Parse(metrics.RenderPrometheus()),
                {{"tblogd_records_received_total{kind=\"scalars\"}", 1},
                 {"tblogd_points_received_total{kind=\"scalars\"}", 1000},
                 {"tblogd_points_received_total{kind=\"scalar\"}", 2},
                 {"tblogd_points_written_total{kind=\"scalars\"}", 1000},
                 {"tblogd_records_written_total{kind=\"scalar\"}", 1},
                 {"tblogd_points_written_total{kind=\"histogram\"}", 0}});
}

TEST(MetricsTest, CountersFollowWhatWasCounted) {
  Metrics metrics;
  metrics.AddRejected("exp/a", absl::StatusCode::kInvalidArgument);
  metrics.AddRejected("exp/a", absl::StatusCode::kInvalidArgument);
  metrics.AddRejected("exp/b", absl::StatusCode::kResourceExhausted);
  metrics.AddStreamDropped(absl::StatusCode::kNotFound);
  metrics.bytes_received += 4096;
  int64_t open_runs = 2;
  metrics.AddGauge("tblogd_active_runs", "Open runs.", [&open_runs] { return open_runs; });
  const Exposition e = Parse(metrics.RenderPrometheus());
  EXPECT_EQ(e.samples.at("tblogd_records_rejected_total{reason=\"INVALID_ARGUMENT\"}"), 2);
  EXPECT_EQ(e.samples.at("tblogd_records_rejected_total{reason=\"RESOURCE_EXHAUSTED\"}"), 1);
  EXPECT_EQ(e.samples.count("tblogd_records_rejected_total{reason=\"NOT_FOUND\"}"), 0u);
  EXPECT_EQ(e.samples.at(
                "tblogd_run_records_rejected_total{reason=\"INVALID_ARGUMENT\",run=\"exp/a\"}"),
            2);
  EXPECT_EQ(e.samples.at(
                "tblogd_run_records_rejected_total{reason=\"RESOURCE_EXHAUSTED\",run=\"exp/b\"}"),
            1);
  EXPECT_EQ(e.samples.at("tblogd_streams_dropped_total{reason=\"NOT_FOUND\"}"), 1);
  EXPECT_EQ(e.samples.at("tblogd_received_bytes_total"), 4096);
  EXPECT_EQ(e.samples.at("tblogd_active_runs"), 2);
  open_runs = 1;  // read from its owner at every scrape
  EXPECT_EQ(Parse(metrics.RenderPrometheus()).samples.at("tblogd_active_runs"), 1);
}

TEST(MetricsTest, FlushDurationIsAHistogram) {
  Metrics metrics;
  metrics.AddFlush(absl::Milliseconds(250));
  metrics.AddFlush(absl::Milliseconds(500));
  metrics.AddFlush(absl::Seconds(20));  // past the last bucket
  metrics.AddFlushCall(absl::Microseconds(50));
  metrics.AddFlushCall(absl::Seconds(-5));  // the wall clock was set back: counted as 0
  const Exposition e = Parse(metrics.RenderPrometheus());
  const std::string h = "tblogd_flush_duration_seconds";
  EXPECT_EQ(e.samples.at(h + "_count"), 3);
  EXPECT_DOUBLE_EQ(e.samples.at(h + "_sum"), 20.75);
  // Buckets are cumulative and inclusive of their bound (le).
  EXPECT_EQ(e.samples.at(h + "_bucket{le=\"0.1\"}"), 0);
  EXPECT_EQ(e.samples.at(h + "_bucket{le=\"0.25\"}"), 1);
  EXPECT_EQ(e.samples.at(h + "_bucket{le=\"0.5\"}"), 2);
  EXPECT_EQ(e.samples.at(h + "_bucket{le=\"10\"}"), 2);
  EXPECT_EQ(e.samples.at(h + "_bucket{le=\"+Inf\"}"), 3);
  EXPECT_EQ(e.samples.at("tblogd_flush_call_duration_seconds_bucket{le=\"0.0001\"}"), 2);
  EXPECT_DOUBLE_EQ(e.samples.at("tblogd_flush_call_duration_seconds_sum"), 0.00005);
  EXPECT_EQ(e.samples.count("tblogd_flushes_total"), 0u);  // the _count says it
}

TEST(MetricsTest, RunSeriesAreBoundedLeastRecentlyUpdatedFirst) {
  Metrics metrics(/*max_run_series=*/3);
  const auto code = absl::StatusCode::kInvalidArgument;
  metrics.AddRejected("a", code);
  metrics.AddRejected("b", code);
  metrics.AddRejected("c", code);
  metrics.AddRejected("a", code);  // b is now the least recently updated
  metrics.AddRejected("d", code);  // evicts b
  Exposition e = Parse(metrics.RenderPrometheus());
  auto series = [&e](const std::string& run) {
    return e.samples.count("tblogd_run_records_rejected_total{reason=\"INVALID_ARGUMENT\",run=\"" +
                           run + "\"}");
  };
  EXPECT_EQ(series("a"), 1u);
  EXPECT_EQ(series("b"), 0u);
  EXPECT_EQ(series("c"), 1u);
  EXPECT_EQ(series("d"), 1u);
  EXPECT_EQ(e.samples.at("tblogd_run_series_evicted_total"), 1);
  // The daemon-wide total keeps every one.
  EXPECT_EQ(e.samples.at("tblogd_records_rejected_total{reason=\"INVALID_ARGUMENT\"}"), 5);
  EXPECT_EQ(e.samples.at(
                "tblogd_run_records_rejected_total{reason=\"INVALID_ARGUMENT\",run=\"a\"}"),
            2);
  // Many runs later, still at most 3 series.
  for (int i = 0; i < 100; ++i) metrics.AddRejected("run-" + std::to_string(i), code);
  e = Parse(metrics.RenderPrometheus());
  int runs = 0;
  for (const auto& [name, value] : e.samples) {
    runs += absl::StartsWith(name, "tblogd_run_records_rejected_total{") ? 1 : 0;
  }
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(e.samples.at("tblogd_run_series_evicted_total"), 101);
}

TEST(MetricsTest, RunLeases) {
  Metrics metrics;
  metrics.RunLeaseAcquired("exp/a");
  metrics.RunLeaseAcquired("exp/a");
  metrics.RunLeaseAcquired("exp/a");
  metrics.RunLeaseReleased("exp/a");
  metrics.RunLeaseExpired("exp/a");
  metrics.RunLeaseAcquired("exp/b");
  metrics.AddRejected("exp/c", absl::StatusCode::kInvalidArgument);  // no leases: no lease series
  const Exposition e = Parse(metrics.RenderPrometheus());
  ExpectSamples(e, {{"tblogd_run_leases_acquired_total{run=\"exp/a\"}", 3},
                    {"tblogd_run_leases_released_total{run=\"exp/a\"}", 1},
                    {"tblogd_run_leases_expired_total{run=\"exp/a\"}", 1},
                    {"tblogd_run_leases{run=\"exp/a\"}", 1},
                    {"tblogd_run_leases{run=\"exp/b\"}", 1}});
  EXPECT_EQ(e.samples.count("tblogd_run_leases{run=\"exp/c\"}"), 0u);
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  Metrics metrics;
  // Run ids are checked names, but the exposition must not depend on it.
  metrics.AddRejected("a\"b\\c\nd", absl::StatusCode::kInvalidArgument);
  const std::string text = metrics.RenderPrometheus();
  EXPECT_THAT(text, HasSubstr(R"(run="a\"b\\c\nd")"));
  Parse(text);  // every line still parses
}

TEST(MetricsTest, BuildInfo) {
  const Exposition e = Parse(Metrics().RenderPrometheus());
  int found = 0;
  for (const auto& [name, value] : e.samples) {
    if (!absl::StartsWith(name, "tblogd_build_info{")) continue;
    ++found;
    EXPECT_EQ(value, 1);
    EXPECT_THAT(name, HasSubstr("version=\""));
    EXPECT_THAT(name, HasSubstr("grpc_version=\""));
  }
  EXPECT_EQ(found, 1);
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

// --- the process collector (metrics_process.h) ---

TEST(ProcessMetricsTest, ParsesProcStatFromTheLastParenthesis) {
  // proc(5): pid (comm) state ppid ... utime(14) stime(15) ... starttime(22)
  // vsize(23) rss(24) ...; the command name holds ") " to mislead a parser.
  const std::string line =
      "4242 (tb) logd (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 9 0 "
      "12345 1048576 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
  auto stat = ParseProcStat(line, /*ticks_per_second=*/100, /*page_size=*/4096);
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_DOUBLE_EQ(stat->cpu_seconds, 4.0);
  EXPECT_DOUBLE_EQ(stat->start_seconds_after_boot, 123.45);
  EXPECT_EQ(stat->virtual_memory_bytes, 1048576u);
  EXPECT_EQ(stat->resident_memory_bytes, 300u * 4096u);
}

TEST(ProcessMetricsTest, MalformedProcStatIsAnError) {
  EXPECT_FALSE(ParseProcStat("", 100, 4096).ok());
  EXPECT_FALSE(ParseProcStat("1 (x) S 1 2 3", 100, 4096).ok());
  EXPECT_FALSE(ParseProcStat("1 x S 1 2 3", 100, 4096).ok());
}

TEST(ProcessMetricsTest, ThisProcess) {
  const Exposition e = Parse(Metrics().RenderPrometheus());
  EXPECT_GT(e.samples.at("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(e.samples.at("process_virtual_memory_bytes"),
            e.samples.at("process_resident_memory_bytes"));
  EXPECT_GE(e.samples.at("process_cpu_seconds_total"), 0);
  EXPECT_GE(e.samples.at("process_open_fds"), 3);  // stdin, stdout, stderr at least
  EXPECT_LE(e.samples.at("process_open_fds"), e.samples.at("process_max_fds"));
  // Started before now, and not long before (generous: a loaded machine).
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  EXPECT_LE(e.samples.at("process_start_time_seconds"), now + 1);
  EXPECT_GT(e.samples.at("process_start_time_seconds"), now - 3600);
}

}  // namespace
}  // namespace tblog::daemon
