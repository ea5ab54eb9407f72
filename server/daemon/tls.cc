#include "daemon/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "base/status_util.h"
#include "grpcpp/security/auth_metadata_processor.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {
namespace {

struct BioFree { void operator()(BIO* bio) const { BIO_free(bio); } };
struct X509Free { void operator()(X509* cert) const { X509_free(cert); } };
struct KeyFree { void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); } };
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

absl::StatusOr<std::string> ReadPem(const std::string& path, std::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(flag), ": cannot read ", path));
  }
  return text.str();
}

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// "CN=tblogd serial=1A2B expires 2027-11-30T17:00:00Z", for the log.
std::string Describe(X509* cert) {
  std::string subject(256, '\0');
  X509_NAME_oneline(X509_get_subject_name(cert), subject.data(), static_cast<int>(subject.size()));
  subject.resize(subject.find('\0'));
  std::string serial = "?";
  if (BIGNUM* number = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(number)) {
      serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(number);
  }
  std::string expires = "?";
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) {
    expires = absl::FormatTime(absl::RFC3339_sec, absl::FromTM(tm, absl::UTCTimeZone()),
                               absl::UTCTimeZone());
  }
  return absl::StrCat(subject, " serial=", serial, " expires ", expires);
}

// The identity files as a TLS server would load them: the first certificate
// of the chain, a private key, and the two belonging together. Returns a
// description of the certificate.
absl::StatusOr<std::string> CheckIdentity(const SecurityOptions& security) {
  auto cert_pem = ReadPem(security.tls_cert_file, "--tls-cert");
  if (!cert_pem.ok()) return cert_pem.status();
  auto key_pem = ReadPem(security.tls_key_file, "--tls-key");
  if (!key_pem.ok()) return key_pem.status();
  X509Ptr cert(PEM_read_bio_X509(MemoryBio(*cert_pem).get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert: ", security.tls_cert_file, " holds no PEM certificate"));
  }
  KeyPtr key(PEM_read_bio_PrivateKey(MemoryBio(*key_pem).get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key: ", security.tls_key_file, " holds no PEM private key (or an encrypted one)"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--tls-key: ", security.tls_key_file,
                                                   " is not the key of ", security.tls_cert_file));
  }
  return Describe(cert.get());
}

absl::Status CheckClientCa(const std::string& path) {
  auto pem = ReadPem(path, "--tls-client-ca");
  if (!pem.ok()) return pem.status();
  X509Ptr cert(PEM_read_bio_X509(MemoryBio(*pem).get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-client-ca: ", path, " holds no PEM certificate"));
  }
  return absl::OkStatus();
}

// Whole seconds for gRPC's file watcher (config.cc allows no less than 1s).
unsigned int ReloadSeconds(const SecurityOptions& security) {
  return static_cast<unsigned int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(security.credentials_reload_interval)));
}

}  // namespace

bool IsLoopbackListenAddress(std::string_view listen) {
  absl::string_view host = Sv(listen);
  if (const size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (absl::ConsumePrefix(&host, "[")) {
    if (!absl::ConsumeSuffix(&host, "]")) return false;
  }
  if (host == "localhost") return true;
  const std::string text(host);
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

absl::Status CheckSecurityOptions(const SecurityOptions& security, std::string_view listen) {
  if (security.tls_cert_file.empty() != security.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key go together: set both (TLS) or neither (plaintext)");
  }
  if (!security.tls_client_ca_file.empty() && !security.tls()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca needs --tls-cert and --tls-key: client certificates are checked "
        "during a TLS handshake");
  }
  if (security.tls()) {
    if (auto identity = CheckIdentity(security); !identity.ok()) return identity.status();
    if (!security.tls_client_ca_file.empty()) {
      if (auto s = CheckClientCa(security.tls_client_ca_file); !s.ok()) return s;
    }
  } else if (security.tokens() && !listen.empty() && !IsLoopbackListenAddress(listen)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--auth-token-file without TLS is accepted only on a loopback --listen and the unix "
        "socket, and --listen is ", Sv(listen),
        ": a token would cross the network in the clear. Set --tls-cert and --tls-key, or "
        "listen on 127.0.0.1"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ListenerCredentials> MakeListenerCredentials(
    const SecurityOptions& security, std::string_view listen,
    std::shared_ptr<grpc::AuthMetadataProcessor> authenticator) {
  if (auto s = CheckSecurityOptions(security, listen); !s.ok()) return s;
  ListenerCredentials credentials;
  const bool tokens = authenticator != nullptr;
  std::string tcp_description;
  if (security.tls()) {
    auto identity = CheckIdentity(security);
    if (!identity.ok()) return identity.status();
    auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        security.tls_key_file, security.tls_cert_file, security.tls_client_ca_file,
        ReloadSeconds(security));
    grpc::experimental::TlsServerCredentialsOptions options(provider);
    options.watch_identity_key_cert_pairs();
    if (!security.tls_client_ca_file.empty()) {
      options.watch_root_certs();
      options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    } else {
      options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    }
    credentials.tcp = grpc::experimental::TlsServerCredentials(options);
    // gRPC rereads the files by itself but says nothing: this says what it
    // will serve next, or why it will keep the old certificate.
    credentials.rotation_logger = std::make_unique<PolledFileWatcher>(
        std::vector<std::string>{security.tls_cert_file, security.tls_key_file,
                                 security.tls_client_ca_file},
        absl::Seconds(ReloadSeconds(security)), [security] {
          auto rotated = CheckIdentity(security);
          if (rotated.ok() && !security.tls_client_ca_file.empty()) {
            if (auto s = CheckClientCa(security.tls_client_ca_file); !s.ok()) rotated = s;
          }
          if (rotated.ok()) {
            spdlog::info("tls: certificate files changed; new connections get {}", *rotated);
          } else {
            // gRPC 1.51 takes the files anyway, and its TLS handshakes then
            // fail until they are fixed: say so where the operator looks.
            spdlog::error("tls: certificate files changed but cannot be used ({}); new TLS "
                          "connections fail until they are fixed (replace certificate and key "
                          "together, e.g. by a directory or symlink swap)",
                          std::string(rotated.status().message()));
          }
        });
    tcp_description = absl::StrCat(
        "TLS (", *identity, ", reloaded every ", ReloadSeconds(security), "s)",
        security.tls_client_ca_file.empty() ? "" : ", client certificates required (mTLS)");
  } else if (tokens) {
    credentials.tcp = grpc::experimental::LocalServerCredentials(LOCAL_TCP);
    tcp_description = "plaintext, loopback clients only";
  } else {
    credentials.tcp = grpc::InsecureServerCredentials();
    tcp_description = "plaintext";
  }
  credentials.unix_socket = tokens ? grpc::experimental::LocalServerCredentials(UDS)
                                   : grpc::InsecureServerCredentials();
  if (tokens) {
    credentials.tcp->SetAuthMetadataProcessor(authenticator);
    credentials.unix_socket->SetAuthMetadataProcessor(authenticator);
  }
  credentials.description = absl::StrCat(
      "TCP: ", tcp_description, "; unix socket: plaintext; ",
      tokens ? "bearer token required on every RPC but health"
             : "no authentication (--auth-token-file to require tokens)");
  return credentials;
}

}  // namespace tblog::daemon
