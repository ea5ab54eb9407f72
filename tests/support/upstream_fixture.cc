#include "support/upstream_fixture.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/daemon_test_util.h"
#include "httplib.h"

namespace tblog::testing {

namespace fs = std::filesystem;
using ::tblog::daemon::testing::ReadSummaryEvents;

std::map<std::string, std::vector<int64_t>> StepsByTag(const fs::path& dir) {
  std::map<std::string, std::vector<int64_t>> steps;
  for (const auto& event : ReadSummaryEvents(dir)) {
    for (const auto& value : event.summary().value()) steps[value.tag()].push_back(event.step());
  }
  return steps;
}

void ExpectEachStepOnce(const std::map<std::string, std::vector<int64_t>>& by_tag,
                        const std::string& tag, int64_t steps) {
  auto it = by_tag.find(tag);
  ASSERT_NE(it, by_tag.end()) << "no points of " << tag;
  const std::vector<int64_t>& got = it->second;
  std::map<int64_t, int> seen;
  for (int64_t step : got) ++seen[step];
  int64_t missing = 0, doubled = 0, out_of_order = 0;
  for (int64_t i = 0; i < steps; ++i) missing += seen.count(i) == 0 ? 1 : 0;
  for (const auto& [step, n] : seen) doubled += n > 1 ? n - 1 : 0;
  for (size_t i = 1; i < got.size(); ++i) out_of_order += got[i] <= got[i - 1] ? 1 : 0;
  EXPECT_TRUE(missing == 0 && doubled == 0 && out_of_order == 0 &&
              static_cast<int64_t>(got.size()) == steps)
      << tag << ": " << got.size() << " points for " << steps << " steps: " << missing
      << " missing, " << doubled << " doubled, " << out_of_order << " out of order";
}

WrittenPoints ReadPoints(const fs::path& dir) {
  WrittenPoints points;
  if (!fs::exists(dir)) return points;
  for (const auto& event : ReadSummaryEvents(dir)) {
    for (const auto& value : event.summary().value()) {
      WrittenPoint point{.value = value.simple_value()};
      if (value.has_histo()) {
        point.num = static_cast<int64_t>(value.histo().num());
        point.value = value.histo().num();
        point.sum = value.histo().sum();
      } else if (value.has_tensor() && value.tensor().float_val_size() > 0) {
        point.value = value.tensor().float_val(0);
      } else if (value.has_tensor() && value.tensor().double_val_size() > 0) {
        point.value = value.tensor().double_val(0);
      }
      points[value.tag()][event.step()].push_back(point);
    }
  }
  return points;
}

uint64_t ProcStatusBytes(pid_t pid, const std::string& field) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    uint64_t kib = 0;
    // "VmRSS:	  12345 kB"
    std::vector<absl::string_view> words = absl::StrSplit(
        absl::string_view(line).substr(field.size() + 1), ' ', absl::SkipWhitespace());
    return !words.empty() && absl::SimpleAtoi(words[0], &kib) ? kib * 1024 : 0;
  }
  return 0;
}

namespace {

#if defined(__has_feature)
#define TBLOG_HAS_FEATURE(x) __has_feature(x)
#else
#define TBLOG_HAS_FEATURE(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || TBLOG_HAS_FEATURE(thread_sanitizer)
constexpr bool kThreadSanitizer = true;
#else
constexpr bool kThreadSanitizer = false;
#endif
#if defined(__SANITIZE_ADDRESS__) || TBLOG_HAS_FEATURE(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#undef TBLOG_HAS_FEATURE

}  // namespace

uint64_t PeakAllowance(uint64_t idle, uint64_t budget, int connections) {
  constexpr uint64_t kMiB = uint64_t{1} << 20;
  const uint64_t shadow = kThreadSanitizer ? 4 : 1;
  // ASan keeps freed memory in its quarantine (quarantine_size_mb, 256 MiB
  // by default) before reusing it: resident, and not the daemon's doing.
  const uint64_t quarantine = kAddressSanitizer ? 256 * kMiB : 0;
  const uint64_t slack = (kThreadSanitizer || kAddressSanitizer ? 96 : 48) * kMiB;
  return idle + shadow * budget + slack + quarantine +
         static_cast<uint64_t>(connections) * kMiB;
}

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::map<std::string, double> ScrapeMetrics(const std::string& log_path) {
  const std::string line_start = "metrics on http://";
  const std::string log = ReadTextFile(log_path);
  const size_t at = log.find(line_start);
  EXPECT_NE(at, std::string::npos) << log_path << ": " << log;
  if (at == std::string::npos) return {};
  const size_t begin = at + line_start.size();
  const std::string address = log.substr(begin, log.find("/metrics", begin) - begin);
  const size_t colon = address.rfind(':');
  httplib::Client client(address.substr(0, colon), std::stoi(address.substr(colon + 1)));
  client.set_read_timeout(10, 0);
  auto response = client.Get("/metrics");
  EXPECT_TRUE(response && response->status == 200) << address;
  std::map<std::string, double> samples;
  if (!response) return samples;
  for (absl::string_view line : absl::StrSplit(response->body, '\n')) {
    if (line.empty() || line[0] == '#' || line.find('{') != absl::string_view::npos) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    double value = 0;
    if (parts.size() == 2 && absl::SimpleAtod(parts[1], &value)) {
      samples[std::string(parts[0])] = value;
    }
  }
  return samples;
}

std::shared_ptr<grpc::Channel> Connect(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection per client
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

v1::Record HistogramRecord(const std::string& tag, int64_t step, size_t floats) {
  v1::Record record;
  record.set_tag(tag);
  record.set_step(step);
  v1::Tensor* values = record.mutable_histogram()->mutable_values();
  values->set_dtype(v1::DTYPE_FLOAT32);
  values->add_shape(static_cast<int64_t>(floats));
  std::string data(floats * 4, '\0');
  for (size_t i = 0; i < floats; ++i) {
    const float value = static_cast<float>(i % 100);
    std::memcpy(&data[i * 4], &value, 4);
  }
  values->set_data(std::move(data));
  return record;
}

v1::WriteRequest BatchOf(const std::string& run_id, const std::string& writer, uint64_t sequence,
                         v1::Record record) {
  v1::WriteRequest request;
  request.set_run_id(run_id);
  request.set_writer_id(writer);
  request.set_sequence(sequence);
  *request.add_records() = std::move(record);
  return request;
}

void WriteBatchRetryingRefusals(v1::TBLog::Stub& stub, const v1::WriteRequest& request,
                                std::atomic<int>* refused) {
  for (int attempt = 0;; ++attempt) {
    ASSERT_LT(attempt, 2000) << request.writer_id() << " never got in";
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
    v1::WriteResponse response;
    const grpc::Status status = stub.WriteBatch(&context, request, &response);
    if (status.ok()) {
      EXPECT_EQ(response.written_sequence(), request.sequence());
      return;
    }
    ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
    EXPECT_NE(status.error_message().find("--max-inflight-bytes"), std::string::npos)
        << status.error_message();
    ++*refused;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void UpstreamFixture::TearDown() {
  const char* keep = std::getenv("TBLOG_TEST_KEEP_DIR");
  if (!HasFailure() || keep == nullptr || *keep == '\0' || root_.path().empty()) return;
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path to = fs::path(keep) / absl::StrCat(test->test_suite_name(), ".", test->name(),
                                                    ".", absl::ToUnixMillis(absl::Now()));
  std::error_code error;  // sockets are skipped: copy what can be copied
  fs::create_directories(to, error);
  for (const auto& entry : fs::recursive_directory_iterator(root_.path(), error)) {
    const fs::path target = to / fs::relative(entry.path(), root_.path());
    if (entry.is_directory()) {
      fs::create_directories(target, error);
    } else if (entry.is_regular_file()) {
      fs::copy_file(entry.path(), target, fs::copy_options::overwrite_existing, error);
    }
  }
  std::printf("kept the test's daemons' files in %s\n", to.c_str());
}

std::string UpstreamFixture::SocketOf(const std::string& name) const {
  return absl::StrCat(root_.path(), "/", name, ".sock");
}

std::string UpstreamFixture::LogdirOf(const std::string& name) const {
  return absl::StrCat(root_.path(), "/", name, "-logs");
}

fs::path UpstreamFixture::RunDirOf(const std::string& name, const std::string& run) const {
  return fs::path(LogdirOf(name)) / run;
}

std::string UpstreamFixture::LogOf(const std::string& name) const {
  auto it = starts_.find(name);
  return absl::StrCat(SocketOf(name), ".", it == starts_.end() ? 0 : it->second, ".log");
}

absl::StatusOr<std::unique_ptr<DaemonProcess>> UpstreamFixture::StartDaemon(
    const std::string& name, const std::vector<std::string>& args) {
  ++starts_[name];
  DaemonProcess::Options options;
  options.logdir = LogdirOf(name);
  options.socket_path = SocketOf(name);
  options.log_path = LogOf(name);
  options.extra_args = {"--daemon-id", name};
  options.extra_args.insert(options.extra_args.end(), args.begin(), args.end());
  return DaemonProcess::Start(options);
}

absl::StatusOr<std::unique_ptr<DaemonProcess>> UpstreamFixture::StartUpstream(
    std::vector<std::string> extra) {
  std::vector<std::string> args = upstream_args_;
  args.insert(args.end(), extra.begin(), extra.end());
  return StartDaemon("upstream", args);
}

absl::StatusOr<std::unique_ptr<DaemonProcess>> UpstreamFixture::StartNode(
    const std::string& name, std::vector<std::string> extra) {
  std::vector<std::string> args = {"--upstream", "unix:" + SocketOf("upstream")};
  args.insert(args.end(), node_args_.begin(), node_args_.end());
  args.insert(args.end(), extra.begin(), extra.end());
  return StartDaemon(name, args);
}

void UpstreamFixture::StartUpstreamAndNodes(Daemons& daemons,
                                            const std::vector<std::string>& nodes) {
  auto upstream = StartUpstream();
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  daemons["upstream"] = *std::move(upstream);
  for (const std::string& node : nodes) {
    auto started = StartNode(node);
    ASSERT_TRUE(started.ok()) << node << ": " << started.status();
    daemons[node] = *std::move(started);
  }
}

void UpstreamFixture::StopAll(Daemons& daemons) {
  for (auto& [name, daemon] : daemons) {
    if (name != "upstream" && daemon != nullptr && daemon->pid() > 0) {
      EXPECT_TRUE(daemon->Stop(SIGTERM).ok()) << name;
    }
  }
  auto upstream = daemons.find("upstream");
  if (upstream != daemons.end() && upstream->second != nullptr && upstream->second->pid() > 0) {
    EXPECT_TRUE(upstream->second->Stop(SIGTERM).ok()) << "upstream";
  }
}

WriterOptions UpstreamFixture::QuickOptions(const std::string& daemon, const std::string& run,
                                            const std::string& writer_id) const {
  WriterOptions options;
  options.target = "unix:" + SocketOf(daemon);
  options.run_path = run;
  options.writer_id = writer_id;
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(200);
  options.close_timeout = absl::Seconds(120);
  return options;
}

WriterOptions UpstreamFixture::DurableOptions(const std::string& daemon, const std::string& run,
                                              const std::string& writer_id) const {
  WriterOptions options = QuickOptions(daemon, run, writer_id);
  options.retain_until = AckLevel::kDurable;
  options.batch_delay = absl::Milliseconds(2);
  return options;
}

}  // namespace tblog::testing
