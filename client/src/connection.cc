#include "tblog/connection.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace tblog {
namespace {

std::string Environment(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  if (in) contents << in.rdbuf();
  if (!in || in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the ", what, " ", path));
  }
  return contents.str();
}

}  // namespace

ConnectionOptions ConnectionOptions::FromEnvironment() {
  ConnectionOptions options;
  const std::string tls = absl::AsciiStrToLower(Environment("TBLOG_TLS"));
  options.tls = tls == "1" || tls == "true" || tls == "yes";
  options.tls_ca_file = Environment("TBLOG_TLS_CA");
  options.tls_cert_file = Environment("TBLOG_TLS_CLIENT_CERT");
  options.tls_key_file = Environment("TBLOG_TLS_CLIENT_KEY");
  options.tls_server_name = Environment("TBLOG_TLS_SERVER_NAME");
  options.token = Environment("TBLOG_TOKEN");
  if (const std::string file = Environment("TBLOG_TOKEN_FILE"); options.token.empty() && !file.empty()) {
    // Read when the options are made; an unreadable file leaves no token, and
    // the daemon's UNAUTHENTICATED then names what is missing.
    std::ifstream in(file);
    std::string line;
    if (std::getline(in, line)) options.token = std::string(absl::StripAsciiWhitespace(line));
  }
  return options;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& target,
                                                           const ConnectionOptions& options,
                                                           const grpc::ChannelArguments& args) {
  grpc::ChannelArguments channel_args = args;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.uses_tls()) {
    if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
      return absl::InvalidArgumentError(
          "a TLS client certificate needs its key, and a key its certificate (TBLOG_TLS_CLIENT_CERT, "
          "TBLOG_TLS_CLIENT_KEY)");
    }
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      auto ca = ReadFile(options.tls_ca_file, "TLS CA file");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *std::move(ca);
    }
    if (!options.tls_cert_file.empty()) {
      auto cert = ReadFile(options.tls_cert_file, "TLS client certificate");
      if (!cert.ok()) return cert.status();
      auto key = ReadFile(options.tls_key_file, "TLS client key");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *std::move(cert);
      ssl.pem_private_key = *std::move(key);
    }
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      channel_args.SetSslTargetNameOverride(options.tls_server_name);
    }
  } else if (!options.token.empty()) {
    // Call credentials need a channel that gRPC deems private: local
    // credentials are, and connect only to a unix socket or a loopback
    // address, so a token never crosses a network in the clear.
    const bool unix_socket = absl::StartsWith(target, "unix:") || absl::StartsWith(target, "unix-abstract:");
    credentials = grpc::experimental::LocalCredentials(unix_socket ? UDS : LOCAL_TCP);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  if (!options.token.empty()) {
    credentials = grpc::CompositeChannelCredentials(
        credentials, grpc::AccessTokenCredentials(options.token));
  }
  return grpc::CreateCustomChannel(target, credentials, channel_args);
}

}  // namespace tblog
