// RejectionLog (server/daemon/rejection_log.h): what an operator reads about
// rejected records and dropped streams, captured from spdlog.
#include "daemon/rejection_log.h"

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class RejectionLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_pattern("%l %v");
    spdlog::set_default_logger(logger);
  }
  void TearDown() override { spdlog::set_default_logger(previous_); }

  std::vector<std::string> Lines() const {
    return absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
  }

  static v1::WriteResponse Errors(int n, const std::string& tag) {
    v1::WriteResponse ack;
    for (int i = 0; i < n; ++i) {
      v1::RecordError* error = ack.add_errors();
      error->set_sequence(7);
      error->set_index(static_cast<uint32_t>(i));
      error->set_tag(tag);
      error->set_code(3);  // INVALID_ARGUMENT
      error->set_message("value: bad");
    }
    return ack;
  }

  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
  absl::Time now_ = absl::FromUnixSeconds(1000);
  RejectionLog log_{2, [this] { return now_; }};
};

TEST_F(RejectionLogTest, NamesPeerRunWriterAndReason) {
  log_.RecordsRejected("ipv4:10.0.0.7:5555", "exp/run", "w1", Errors(1, "loss"));
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  EXPECT_EQ(lines[0],
            "warning record rejected: peer=ipv4:10.0.0.7:5555 run=\"exp/run\" writer=\"w1\" "
            "sequence=7 index=0 tag=\"loss\" reason=INVALID_ARGUMENT message=\"value: bad\"");
}

TEST_F(RejectionLogTest, ClientTextCannotForgeALine) {
  log_.RecordsRejected("unix:", "exp/run", "w\n1", Errors(1, "x\nwarning forged"));
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  EXPECT_THAT(lines[0], HasSubstr(R"(tag="x\nwarning forged")"));
  EXPECT_THAT(lines[0], HasSubstr(R"(writer="w\n1")"));
}

TEST_F(RejectionLogTest, RateLimitedPerReasonWithTheSuppressedCount) {
  log_.RecordsRejected("p", "r", "w", Errors(10, "t"));
  EXPECT_EQ(Lines().size(), 2u);  // 2 per second
  // Another reason has its own budget.
  log_.StreamDropped("p", "r", "w", absl::NotFoundError("no run"));
  ASSERT_EQ(Lines().size(), 3u);
  EXPECT_EQ(Lines()[2],
            "warning write stream dropped: peer=p run=\"r\" writer=\"w\" reason=NOT_FOUND "
            "message=\"no run\"");
  now_ += absl::Seconds(1);
  log_.RecordsRejected("p", "r", "w", Errors(1, "t"));
  ASSERT_EQ(Lines().size(), 4u);
  EXPECT_THAT(Lines()[3], HasSubstr("(8 similar lines suppressed)"));
  log_.RecordsRejected("p", "r", "w", Errors(1, "t"));
  EXPECT_THAT(Lines()[4], Not(HasSubstr("suppressed")));
}

TEST_F(RejectionLogTest, AnAckWithoutErrorsWritesNothing) {
  log_.RecordsRejected("p", "r", "w", v1::WriteResponse());
  EXPECT_EQ(out_.str(), "");
}

}  // namespace
}  // namespace tblog::daemon
