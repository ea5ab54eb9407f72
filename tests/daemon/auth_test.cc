// auth: the token file's format and identities, constant-time lookup, and,
// on a real daemon, that every RPC but health needs a token (unix socket and
// loopback TCP), that the token file is reloaded, and that tokens without TLS
// stay on loopback.
#include "daemon/auth.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/daemon_test_util.h"
#include "daemon/health_probe.h"
#include "daemon/tls_test_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tblog/connection.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::daemon {
namespace {

using testing::FreshTempDir;
using testing::WriteFileAtomically;

constexpr char kTokenA[] = "tok-aaaaaaaaaaaaaaaaaaaaaaaa";
constexpr char kTokenB[] = "tok-bbbbbbbbbbbbbbbbbbbbbbbb";
constexpr char kTokenC[] = "tok-cccccccccccccccccccccccc";

TEST(TokenSetTest, ParsesNamesCommentsAndBlankLines) {
  auto set = TokenSet::Parse(absl::StrCat("# the trainers\n\n  team-a:", kTokenA, "  \n", kTokenB,
                                          "\n# end\n"));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 2u);
  EXPECT_EQ(set->Find(kTokenA), "team-a");
  const std::string unnamed = set->Find(kTokenB);
  EXPECT_TRUE(absl::StartsWith(unnamed, "sha256:")) << unnamed;
  EXPECT_EQ(unnamed.size(), 7u + 16u);
  EXPECT_EQ(set->Find(kTokenC), "");
  EXPECT_EQ(set->Find(""), "");
  EXPECT_EQ(set->Find(std::string(kTokenA) + "x"), "");  // a prefix is not a match
}

TEST(TokenSetTest, IdentityOfAnUnnamedTokenIsStable) {
  auto first = TokenSet::Parse(kTokenB);
  auto second = TokenSet::Parse(absl::StrCat("x:", kTokenA, "\n", kTokenB));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->Find(kTokenB), second->Find(kTokenB));
  // It does not hold the token.
  EXPECT_FALSE(absl::StrContains(first->Find(kTokenB), "bbbb"));
}

TEST(TokenSetTest, RefusesBadFilesNamingTheLine) {
  struct Case {
    std::string text;
    std::string message;
  };
  const Case cases[] = {
      {"", "no token"},
      {"# only a comment\n", "no token"},
      {"short", "line 1: a token is 16 to 4096"},
      {absl::StrCat(kTokenA, "\nhas space inside token x"), "line 2: a token is"},
      {absl::StrCat("bad name:", kTokenA), "line 1: a token's name"},
      {absl::StrCat(kTokenA, "\n", kTokenA), "line 2: the same token is listed twice"},
      {absl::StrCat("n:", kTokenA, "\nn:", kTokenB), "line 2: the same name is used twice"},
  };
  for (const Case& c : cases) {
    auto set = TokenSet::Parse(c.text);
    ASSERT_FALSE(set.ok()) << c.text;
    EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(set.status().message(), c.message))
        << c.text << " -> " << set.status().message();
    // The error never quotes a token.
    EXPECT_FALSE(absl::StrContains(set.status().message(), "tok-")) << set.status().message();
  }
}

// A daemon with --auth-token-file on a unix socket and loopback TCP.
class TokenDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshTempDir("auth_test");
    token_file_ = dir_ / "tokens";
    WriteFileAtomically(token_file_, absl::StrCat("team-a:", kTokenA, "\n", kTokenB, "\n"));
    StartDaemon();
  }
  // A daemon on dir_ (again, after the test stopped one: a restart).
  void StartDaemon() {
    DaemonOptions options;
    options.logdir = (dir_ / "logs").string();
    options.listen = "127.0.0.1:0";
    options.unix_socket = (dir_ / "tblogd.sock").string();
    options.workers = 1;
    options.security.auth_token_file = token_file_.string();
    options.security.credentials_reload_interval = absl::Seconds(1);
    auto daemon = Daemon::Start(options);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = std::move(*daemon);
  }
  void TearDown() override {
    if (daemon_) {
      EXPECT_TRUE(daemon_->Shutdown(absl::Seconds(10)).ok());
    }
  }

  std::unique_ptr<v1::TBLog::Stub> Stub(const std::string& target, const std::string& token) {
    ConnectionOptions connection;
    connection.token = token;
    auto channel = OpenChannel(target, connection, grpc::ChannelArguments());
    EXPECT_TRUE(channel.ok()) << channel.status();
    return v1::TBLog::NewStub(*channel);
  }

  // The status of each RPC of the API called with `token` ("" = none).
  std::map<std::string, grpc::Status> CallEveryRpc(const std::string& target,
                                                   const std::string& token) {
    auto stub = Stub(target, token);
    std::map<std::string, grpc::Status> result;
    auto context = [] {
      auto c = std::make_unique<grpc::ClientContext>();
      c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      return c;
    };
    v1::OpenRunRequest open;
    open.set_experiment("auth");
    v1::OpenRunResponse opened;
    result["OpenRun"] = stub->OpenRun(context().get(), open, &opened);
    v1::WriteRequest write;
    write.set_run_id(opened.run_id().empty() ? "none" : opened.run_id());
    write.set_writer_id("w");
    write.set_sequence(1);
    v1::WriteResponse written;
    result["WriteBatch"] = stub->WriteBatch(context().get(), write, &written);
    {
      auto c = context();
      auto stream = stub->Write(c.get());
      stream->Write(write);
      stream->WritesDone();
      while (stream->Read(&written)) {
      }
      result["Write"] = stream->Finish();
    }
    v1::FlushRequest flush;
    flush.set_run_id(write.run_id());
    v1::FlushResponse flushed;
    result["Flush"] = stub->Flush(context().get(), flush, &flushed);
    v1::ListRunsResponse runs;
    result["ListRuns"] = stub->ListRuns(context().get(), v1::ListRunsRequest(), &runs);
    v1::GetRunRequest get;
    get.set_run_id(write.run_id());
    v1::RunInfo info;
    result["GetRun"] = stub->GetRun(context().get(), get, &info);
    v1::CloseRunRequest close;
    close.set_run_id(write.run_id());
    v1::CloseRunResponse closed;
    result["CloseRun"] = stub->CloseRun(context().get(), close, &closed);
    return result;
  }

  std::filesystem::path dir_;
  std::filesystem::path token_file_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(TokenDaemonTest, EveryRpcNeedsAKnownToken) {
  for (const std::string& target : daemon_->listening_addresses()) {
    SCOPED_TRACE(target);
    for (const std::string token : {"", "tok-wrong-wrong-wrong-wrong"}) {
      SCOPED_TRACE(token.empty() ? "no token" : "wrong token");
      const auto statuses = CallEveryRpc(target, token);
      EXPECT_EQ(statuses.size(), 7u);
      for (const auto& [rpc, status] : statuses) {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << rpc << ": " << status.error_message();
        EXPECT_FALSE(absl::StrContains(status.error_message(), "tok-")) << status.error_message();
      }
    }
    for (const std::string token : {kTokenA, kTokenB}) {
      for (const auto& [rpc, status] : CallEveryRpc(target, token)) {
        EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << rpc << ": " << status.error_message();
      }
    }
  }
}

TEST_F(TokenDaemonTest, AMalformedAuthorizationIsUnauthenticated) {
  auto channel = grpc::CreateChannel(daemon_->listening_addresses()[1],
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::TBLog::NewStub(channel);
  for (const std::string& value : {std::string("Basic ") + kTokenA, std::string(kTokenA),
                                  std::string("Bearer")}) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", value);
    v1::ListRunsResponse runs;
    grpc::Status status = stub->ListRuns(&context, v1::ListRunsRequest(), &runs);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << value;
  }
  grpc::ClientContext context;
  context.AddMetadata("authorization", std::string("bearer ") + kTokenA);  // scheme: any case
  v1::ListRunsResponse runs;
  EXPECT_TRUE(stub->ListRuns(&context, v1::ListRunsRequest(), &runs).ok());
}

// Run ownership outlives a restart (run_owner.h): the run team-a's token
// opened stays team-a's, and the other token is refused (before: the first
// to reopen it after the restart took it over).
TEST_F(TokenDaemonTest, ARunsOwnerOutlivesARestart) {
  auto open = [&](const std::string& token) {
    v1::OpenRunRequest request;
    request.set_run_path("owned/run");
    v1::OpenRunResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return Stub(daemon_->listening_addresses()[0], token)->OpenRun(&context, request, &response);
  };
  ASSERT_TRUE(open(kTokenA).ok());
  ASSERT_TRUE(daemon_->Shutdown(absl::Seconds(10)).ok());
  daemon_.reset();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const grpc::Status taken = open(kTokenB);
  EXPECT_EQ(taken.error_code(), grpc::StatusCode::PERMISSION_DENIED) << taken.error_message();
  EXPECT_TRUE(open(kTokenA).ok());
}

TEST_F(TokenDaemonTest, HealthNeedsNoToken) {
  for (const std::string& target : daemon_->listening_addresses()) {
    EXPECT_TRUE(CheckHealth(target, "", absl::Seconds(10)).ok()) << target;
    EXPECT_TRUE(CheckHealth(target, "tblog.v1.TBLog", absl::Seconds(10)).ok()) << target;
  }
}

TEST_F(TokenDaemonTest, TheTokenFileIsReloadedWithoutARestart) {
  const std::string target = daemon_->listening_addresses()[1];
  auto list = [&](const std::string& token) {
    grpc::ClientContext context;
    v1::ListRunsResponse runs;
    return Stub(target, token)->ListRuns(&context, v1::ListRunsRequest(), &runs).error_code();
  };
  ASSERT_EQ(list(kTokenC), grpc::StatusCode::UNAUTHENTICATED);
  WriteFileAtomically(token_file_, absl::StrCat("team-c:", kTokenC, "\n"));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (list(kTokenC) != grpc::StatusCode::OK && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(list(kTokenC), grpc::StatusCode::OK);
  EXPECT_EQ(list(kTokenA), grpc::StatusCode::UNAUTHENTICATED);  // removed from the file

  // A file that no longer parses keeps the tokens in force.
  WriteFileAtomically(token_file_, "# emptied by mistake\n");
  absl::SleepFor(absl::Seconds(3));
  EXPECT_EQ(list(kTokenC), grpc::StatusCode::OK);
}

TEST(TokenDaemonStartTest, TokensWithoutTlsNeedALoopbackListener) {
  const auto dir = FreshTempDir("auth_start_test");
  WriteFileAtomically(dir / "tokens", absl::StrCat(kTokenA, "\n"));
  DaemonOptions options;
  options.logdir = (dir / "logs").string();
  options.workers = 1;
  options.security.auth_token_file = (dir / "tokens").string();
  for (const std::string listen : {"0.0.0.0:0", "[::]:0", "192.0.2.1:0"}) {
    options.listen = listen;
    auto daemon = Daemon::Start(options);
    ASSERT_FALSE(daemon.ok()) << listen;
    EXPECT_EQ(daemon.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(daemon.status().message(), "--auth-token-file without TLS"))
        << daemon.status();
  }
  // From the command line too: a usage error, before anything starts.
  const std::string file = options.security.auth_token_file;
  const char* argv[] = {"tblogd", "--listen", "0.0.0.0:6066", "--auth-token-file", file.c_str()};
  std::ostringstream out, err;
  Command cmd = ParseCommandLine(5, argv, out, err);
  EXPECT_EQ(cmd.kind, Command::Kind::kExit);
  EXPECT_EQ(cmd.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(err.str(), "--auth-token-file without TLS")) << err.str();

  // A missing or empty token file stops the start, naming the file.
  options.listen = "127.0.0.1:0";
  options.security.auth_token_file = (dir / "missing").string();
  auto missing = Daemon::Start(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "missing")) << missing.status();
}

// This host's first IPv4 address that is not loopback, or "".
std::string NonLoopbackAddress() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* entry = list; entry != nullptr && found.empty(); entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || entry->ifa_addr->sa_family != AF_INET) continue;
    const auto* address = reinterpret_cast<const sockaddr_in*>(entry->ifa_addr);
    if ((ntohl(address->sin_addr.s_addr) >> 24) == 127) continue;
    char text[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &address->sin_addr, text, sizeof text) != nullptr) found = text;
  }
  freeifaddrs(list);
  return found;
}

// The client side of the rule: a token without TLS goes over gRPC's local
// credentials, which refuse a peer that is not loopback or a unix socket.
TEST(TokenClientTest, PlaintextTokensAreNotSentBeyondLoopback) {
  const std::string host = NonLoopbackAddress();
  if (host.empty()) GTEST_SKIP() << "this host has no non-loopback IPv4 address";
  const auto dir = FreshTempDir("auth_client_test");
  DaemonOptions options;
  options.logdir = (dir / "logs").string();
  options.workers = 1;
  options.listen = "0.0.0.0:0";  // no tokens: plaintext for everyone
  auto daemon = Daemon::Start(options);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  const std::string address = (*daemon)->listening_addresses()[0];
  const std::string port = address.substr(address.rfind(':') + 1);
  auto list = [&](const std::string& target, const std::string& token) {
    ConnectionOptions connection;
    connection.token = token;
    auto channel = OpenChannel(target, connection, grpc::ChannelArguments());
    EXPECT_TRUE(channel.ok());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListRunsResponse runs;
    return v1::TBLog::NewStub(*channel)->ListRuns(&context, v1::ListRunsRequest(), &runs);
  };
  EXPECT_TRUE(list(host + ":" + port, "").ok());              // reachable in plaintext
  EXPECT_TRUE(list("127.0.0.1:" + port, kTokenA).ok());       // a token to loopback: sent
  const grpc::Status remote = list(host + ":" + port, kTokenA);  // beyond loopback: refused
  EXPECT_EQ(remote.error_code(), grpc::StatusCode::UNAVAILABLE) << remote.error_message();
  EXPECT_TRUE((*daemon)->Shutdown(absl::Seconds(10)).ok());
}

}  // namespace
}  // namespace tblog::daemon
