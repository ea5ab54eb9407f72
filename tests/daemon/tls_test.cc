// tls: TLS and mTLS on the TCP listener with certificates made by the test
// (Debian's openssl), refusals of unusable settings at start, certificate
// rotation without a restart, CallerIdentity, `tblogd health` and the C++
// Writer over TLS with a token.
#include "daemon/tls.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "daemon/auth.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/daemon_test_util.h"
#include "daemon/health_probe.h"
#include "daemon/tls_test_util.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/auth_context.h"
#include "gtest/gtest.h"
#include "tblog/client.h"
#include "tblog/connection.h"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::daemon {
namespace {

namespace fs = std::filesystem;
using testing::FreshTempDir;
using testing::MakeTestCerts;
using testing::ReadFileOrEmpty;
using testing::ReadSummaryEvents;
using testing::WriteFileAtomically;

constexpr char kToken[] = "tok-tls-test-token-0123456789";

TEST(TlsOptionsTest, LoopbackListenAddresses) {
  for (const char* loopback : {"127.0.0.1:6066", "127.1.2.3:1", "localhost:6066", "[::1]:6066",
                               "[::ffff:127.0.0.1]:6066"}) {
    EXPECT_TRUE(IsLoopbackListenAddress(loopback)) << loopback;
  }
  for (const char* other : {"0.0.0.0:6066", "[::]:6066", "192.0.2.1:6066", "tblogd:6066",
                            ":6066", "[::1:6066", "10.0.0.1:6066"}) {
    EXPECT_FALSE(IsLoopbackListenAddress(other)) << other;
  }
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshTempDir("tls_test");
    certs_ = dir_ / "certs";
    ASSERT_TRUE(MakeTestCerts(certs_));
  }
  void TearDown() override {
    if (daemon_) {
      EXPECT_TRUE(daemon_->Shutdown(absl::Seconds(10)).ok());
    }
  }

  std::string Cert(const std::string& name) const { return (certs_ / name).string(); }

  SecurityOptions ServerTls(bool mtls) const {
    SecurityOptions security;
    security.tls_cert_file = Cert("server.crt");
    security.tls_key_file = Cert("server.key");
    if (mtls) security.tls_client_ca_file = Cert("client-ca.crt");
    security.credentials_reload_interval = absl::Seconds(1);
    return security;
  }

  void StartDaemon(const SecurityOptions& security) {
    DaemonOptions options;
    options.logdir = (dir_ / "logs").string();
    options.listen = "127.0.0.1:0";
    options.unix_socket = (dir_ / "tblogd.sock").string();
    options.workers = 1;
    options.flush_interval = absl::Milliseconds(100);
    options.security = security;
    auto daemon = Daemon::Start(options);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = std::move(*daemon);
    tcp_ = daemon_->listening_addresses()[0];
    unix_ = daemon_->listening_addresses()[1];
  }

  // ListRuns over a fresh channel; `server_cn` gets the daemon certificate's CN.
  grpc::Status List(const std::string& target, const ConnectionOptions& connection,
                    std::string* server_cn = nullptr) {
    auto channel = OpenChannel(target, connection, grpc::ChannelArguments());
    if (!channel.ok()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "");
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListRunsResponse runs;
    grpc::Status status = v1::TBLog::NewStub(*channel)->ListRuns(&context, v1::ListRunsRequest(), &runs);
    if (server_cn != nullptr && context.auth_context() != nullptr) {
      auto names = context.auth_context()->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
      *server_cn = names.empty() ? "" : std::string(names[0].data(), names[0].size());
    }
    return status;
  }

  ConnectionOptions TrustingCa(const std::string& ca) const {
    ConnectionOptions connection;
    connection.tls_ca_file = Cert(ca);
    return connection;
  }

  fs::path dir_;
  fs::path certs_;
  std::unique_ptr<Daemon> daemon_;
  std::string tcp_;
  std::string unix_;
};

TEST_F(TlsTest, UnusableSettingsStopTheStartNamingTheFlag) {
  struct Case {
    SecurityOptions security;
    std::string message;
  };
  SecurityOptions cert_only = ServerTls(false);
  cert_only.tls_key_file.clear();
  SecurityOptions ca_only;
  ca_only.tls_client_ca_file = Cert("client-ca.crt");
  SecurityOptions wrong_key = ServerTls(false);
  wrong_key.tls_key_file = Cert("server2.key");
  SecurityOptions missing = ServerTls(false);
  missing.tls_cert_file = (dir_ / "nope.crt").string();
  SecurityOptions not_pem = ServerTls(false);
  not_pem.tls_cert_file = Cert("server.key");
  SecurityOptions bad_ca = ServerTls(true);
  bad_ca.tls_client_ca_file = Cert("client.key");
  const Case cases[] = {
      {cert_only, "--tls-cert and --tls-key go together"},
      {ca_only, "--tls-client-ca needs --tls-cert"},
      {wrong_key, "--tls-key: " + Cert("server2.key") + " is not the key of"},
      {missing, "--tls-cert: cannot read"},
      {not_pem, "holds no PEM certificate"},
      {bad_ca, "--tls-client-ca: "},
  };
  for (const Case& c : cases) {
    const absl::Status status = CheckSecurityOptions(c.security, "127.0.0.1:0");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_TRUE(absl::StrContains(status.message(), c.message)) << status;
  }
  // Daemon::Start checks the same, before anything listens.
  DaemonOptions options;
  options.logdir = (dir_ / "logs").string();
  options.listen = "127.0.0.1:0";
  options.security = wrong_key;
  EXPECT_EQ(Daemon::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TlsTest, ServesTlsOnTcpAndPlaintextOnTheUnixSocket) {
  StartDaemon(ServerTls(false));
  std::string cn;
  EXPECT_TRUE(List(tcp_, TrustingCa("ca.crt"), &cn).ok());
  EXPECT_EQ(cn, "tblogd");
  EXPECT_FALSE(List(tcp_, ConnectionOptions{}).ok());          // plaintext to TLS
  EXPECT_FALSE(List(tcp_, TrustingCa("ca2.crt")).ok());        // a CA that did not sign it
  ConnectionOptions by_name = TrustingCa("ca.crt");
  by_name.tls_server_name = "localhost";                       // a SAN of the certificate
  EXPECT_TRUE(List(tcp_, by_name).ok());
  by_name.tls_server_name = "someone-else";
  EXPECT_FALSE(List(tcp_, by_name).ok());
  EXPECT_TRUE(List(unix_, ConnectionOptions{}).ok());          // the unix socket stays plaintext
  // `tblogd health` with the same settings.
  EXPECT_TRUE(CheckHealth(tcp_, "", absl::Seconds(10), TrustingCa("ca.crt")).ok());
  EXPECT_FALSE(CheckHealth(tcp_, "", absl::Seconds(3)).ok());
}

TEST_F(TlsTest, MutualTlsRefusesClientsWithoutASignedCertificate) {
  StartDaemon(ServerTls(true));
  ConnectionOptions client = TrustingCa("ca.crt");
  EXPECT_EQ(List(tcp_, client).error_code(), grpc::StatusCode::UNAVAILABLE);  // no certificate
  client.tls_cert_file = Cert("rogue-client.crt");
  client.tls_key_file = Cert("rogue-client.key");
  EXPECT_EQ(List(tcp_, client).error_code(), grpc::StatusCode::UNAVAILABLE);  // not signed by the CA
  client.tls_cert_file = Cert("client.crt");
  client.tls_key_file = Cert("client.key");
  EXPECT_TRUE(List(tcp_, client).ok());
  EXPECT_TRUE(CheckHealth(tcp_, "", absl::Seconds(10), client).ok());
  // A client certificate without its key is the client's error, before any call.
  client.tls_key_file.clear();
  EXPECT_EQ(OpenChannel(tcp_, client, grpc::ChannelArguments()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Kubernetes updates a mounted Secret by pointing a symlink at a new
// directory; the daemon's paths go through it, as they would in a pod.
TEST_F(TlsTest, ARotatedCertificateIsServedWithoutARestart) {
  const fs::path first = dir_ / "secret-1";
  const fs::path second = dir_ / "secret-2";
  fs::create_directories(first);
  fs::create_directories(second);
  fs::copy_file(Cert("server.crt"), first / "tls.crt");
  fs::copy_file(Cert("server.key"), first / "tls.key");
  fs::copy_file(Cert("server2.crt"), second / "tls.crt");
  fs::copy_file(Cert("server2.key"), second / "tls.key");
  const fs::path data = dir_ / "secret";
  fs::create_directory_symlink(first, data);
  SecurityOptions security;
  security.tls_cert_file = (data / "tls.crt").string();
  security.tls_key_file = (data / "tls.key").string();
  security.credentials_reload_interval = absl::Seconds(1);
  StartDaemon(security);

  std::string cn;
  ASSERT_TRUE(List(tcp_, TrustingCa("ca.crt"), &cn).ok());
  EXPECT_EQ(cn, "tblogd");
  EXPECT_FALSE(List(tcp_, TrustingCa("ca2.crt")).ok());

  // The swap: a new symlink renamed over the old one, in one step.
  fs::create_directory_symlink(second, dir_ / "secret.new");
  fs::rename(dir_ / "secret.new", data);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!List(tcp_, TrustingCa("ca2.crt"), &cn).ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_TRUE(List(tcp_, TrustingCa("ca2.crt"), &cn).ok());
  EXPECT_EQ(cn, "tblogd-rotated");
  EXPECT_FALSE(List(tcp_, TrustingCa("ca.crt")).ok());  // new connections get the new one

  // A key that does not match its certificate: gRPC takes it and new
  // handshakes fail (logged); fixing the files brings TLS back, still with
  // no restart. Established connections are not affected either way.
  const std::string good_key = ReadFileOrEmpty(second / "tls.key");
  WriteFileAtomically(second / "tls.key", ReadFileOrEmpty(Cert("server.key")));
  auto wait_for = [&](bool ok) {
    const absl::Time until = absl::Now() + absl::Seconds(30);
    while (List(tcp_, TrustingCa("ca2.crt")).ok() != ok && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(250));
    }
    return List(tcp_, TrustingCa("ca2.crt")).ok() == ok;
  };
  EXPECT_TRUE(wait_for(false));
  WriteFileAtomically(second / "tls.key", good_key);
  EXPECT_TRUE(wait_for(true));
}

// CallerIdentity as a handler sees it: a small TBLog service whose ListRuns
// answers with its caller's identity, behind MakeListenerCredentials.
class IdentityEcho final : public v1::TBLog::CallbackService {
 public:
  grpc::ServerUnaryReactor* ListRuns(grpc::CallbackServerContext* context,
                                     const v1::ListRunsRequest*, v1::ListRunsResponse*) override {
    context->AddTrailingMetadata("caller", CallerIdentity(*context));
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

TEST_F(TlsTest, CallerIdentityIsTheTokenNameElseTheClientCertificate) {
  WriteFileAtomically(dir_ / "tokens", absl::StrCat("team-a:", kToken, "\n"));
  struct Case {
    bool mtls;
    bool tokens;
    bool client_cert;
    std::string identity;
  };
  const Case cases[] = {
      {true, true, true, "team-a"},
      {true, false, true, "x509:trainer-1"},
      {false, false, false, ""},
      {false, true, false, "team-a"},
  };
  for (const Case& c : cases) {
    SecurityOptions security = ServerTls(c.mtls);
    std::shared_ptr<TokenAuthenticator> authenticator;
    if (c.tokens) {
      security.auth_token_file = (dir_ / "tokens").string();
      authenticator = *TokenAuthenticator::Start(security.auth_token_file, absl::Seconds(1));
    }
    auto credentials = MakeListenerCredentials(security, "127.0.0.1:0", authenticator);
    ASSERT_TRUE(credentials.ok()) << credentials.status();
    IdentityEcho service;
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", credentials->tcp, &port);
    builder.RegisterService(&service);
    auto server = builder.BuildAndStart();
    ASSERT_NE(server, nullptr);

    ConnectionOptions connection = TrustingCa("ca.crt");
    if (c.client_cert) {
      connection.tls_cert_file = Cert("client.crt");
      connection.tls_key_file = Cert("client.key");
    }
    if (c.tokens) connection.token = kToken;
    auto channel = OpenChannel(absl::StrCat("127.0.0.1:", port), connection, grpc::ChannelArguments());
    ASSERT_TRUE(channel.ok());
    grpc::ClientContext context;
    v1::ListRunsResponse runs;
    ASSERT_TRUE(v1::TBLog::NewStub(*channel)->ListRuns(&context, v1::ListRunsRequest(), &runs).ok());
    auto caller = context.GetServerTrailingMetadata().find("caller");
    ASSERT_NE(caller, context.GetServerTrailingMetadata().end());
    EXPECT_EQ(std::string(caller->second.data(), caller->second.size()), c.identity);
    server->Shutdown();
  }
}

TEST_F(TlsTest, TheCppWriterWritesOverMutualTlsWithAToken) {
  WriteFileAtomically(dir_ / "tokens", absl::StrCat(kToken, "\n"));
  SecurityOptions security = ServerTls(true);
  security.auth_token_file = (dir_ / "tokens").string();
  StartDaemon(security);

  WriterOptions options;
  options.target = tcp_;
  options.experiment = "tls";
  options.connection.tls_ca_file = Cert("ca.crt");
  options.connection.tls_cert_file = Cert("client.crt");
  options.connection.tls_key_file = Cert("client.key");
  options.connection.token = kToken;
  auto writer = Writer::Open(options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (int step = 0; step < 10; ++step) {
    ASSERT_TRUE((*writer)->scalar("loss", step, 1.0 / (step + 1)).ok());
  }
  ASSERT_TRUE((*writer)->close().ok());
  const std::string run = (*writer)->run_path();
  EXPECT_EQ(ReadSummaryEvents(fs::path(dir_ / "logs") / run).size(), 10u);

  // Without the token: the daemon's answer, not a retry loop.
  options.connection.token.clear();
  auto refused = Writer::Open(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << refused.status();
}

TEST(TlsConfigTest, FlagsAndEnvironment) {
  const char* argv[] = {"tblogd", "--tls-cert", "/c.pem", "--tls-key", "/k.pem",
                        "--tls-client-ca", "/ca.pem", "--credentials-reload-interval", "2s"};
  std::ostringstream out, err;
  // Files that do not exist are a usage error naming the flag.
  Command cmd = ParseCommandLine(9, argv, out, err);
  EXPECT_EQ(cmd.kind, Command::Kind::kExit);
  EXPECT_TRUE(absl::StrContains(err.str(), "--tls-cert: cannot read /c.pem")) << err.str();

  const char* bad_interval[] = {"tblogd", "--credentials-reload-interval", "500ms"};
  cmd = ParseCommandLine(3, bad_interval, out, err);
  EXPECT_EQ(cmd.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(err.str(), "must be at least 1s")) << err.str();

  const char* health[] = {"tblogd", "health", "--address", "127.0.0.1:1", "--tls-ca", "/ca.pem",
                          "--tls-cert", "/c.pem", "--tls-key", "/k.pem", "--token", "t",
                          "--tls-server-name", "tblogd.example"};
  cmd = ParseCommandLine(14, health, out, err);
  ASSERT_EQ(cmd.kind, Command::Kind::kHealth) << err.str();
  EXPECT_EQ(cmd.health_connection.tls_ca_file, "/ca.pem");
  EXPECT_EQ(cmd.health_connection.tls_cert_file, "/c.pem");
  EXPECT_EQ(cmd.health_connection.tls_key_file, "/k.pem");
  EXPECT_EQ(cmd.health_connection.token, "t");
  EXPECT_EQ(cmd.health_connection.tls_server_name, "tblogd.example");
  EXPECT_TRUE(cmd.health_connection.uses_tls());

  ::setenv("TBLOG_TLS_CA", "/env-ca.pem", 1);
  ::setenv("TBLOG_TOKEN", "env-token", 1);
  const char* health_env[] = {"tblogd", "health"};
  cmd = ParseCommandLine(2, health_env, out, err);
  ::unsetenv("TBLOG_TLS_CA");
  ::unsetenv("TBLOG_TOKEN");
  EXPECT_EQ(cmd.health_connection.tls_ca_file, "/env-ca.pem");
  EXPECT_EQ(cmd.health_connection.token, "env-token");
}

}  // namespace
}  // namespace tblog::daemon
