#include "daemon/auth.h"

#include <grpc/grpc_security_constants.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/status_util.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/server_context.h"
#include "spdlog/spdlog.h"

namespace tblog::daemon {
namespace {

// Logged refusals per second; see TokenAuthenticator::refusals_logged_.
constexpr int kRefusalLogBurst = 5;
// Calls that need no token: health, so probes and load balancers need no secret.
constexpr std::string_view kHealthMethodPrefix = "/grpc.health.v1.Health/";
constexpr size_t kMinTokenLength = 16;
constexpr size_t kMaxTokenLength = 4096;
constexpr size_t kMaxNameLength = 64;

std::string Sha256(absl::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

// RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool IsB64Token(absl::string_view token) {
  size_t i = 0;
  while (i < token.size() && (absl::ascii_isalnum(static_cast<unsigned char>(token[i])) ||
                              absl::string_view("-._~+/").find(token[i]) != absl::string_view::npos)) {
    ++i;
  }
  if (i == 0) return false;
  while (i < token.size() && token[i] == '=') ++i;
  return i == token.size();
}

bool IsTokenName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

std::string_view View(const grpc::string_ref& ref) { return {ref.data(), ref.size()}; }

std::string FirstValue(const grpc::AuthMetadataProcessor::InputMetadata& metadata,
                       std::string_view key) {
  auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  return it == metadata.end() ? std::string() : std::string(View(it->second));
}

std::string FirstProperty(const grpc::AuthContext& context, const char* name) {
  std::vector<grpc::string_ref> values = context.FindPropertyValues(name);
  return values.empty() ? std::string() : std::string(View(values.front()));
}

}  // namespace

std::string CallerIdentity(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return "";
  if (std::string token = FirstProperty(*auth, kCallerIdentityProperty); !token.empty()) {
    return token;
  }
  // Only a certificate the server verified is in the AuthContext: with
  // --tls-client-ca, gRPC ends the handshake of an unverified one.
  if (std::string common_name = FirstProperty(*auth, GRPC_X509_CN_PROPERTY_NAME);
      !common_name.empty()) {
    return absl::StrCat("x509:", common_name);
  }
  return "";
}

absl::StatusOr<TokenSet> TokenSet::Parse(std::string_view text) {
  TokenSet set;
  absl::flat_hash_set<std::string> digests;
  absl::flat_hash_set<std::string> names;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(Sv(text), '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    auto error = [line_number](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", what));
    };
    absl::string_view name;
    absl::string_view token = line;
    if (const size_t colon = line.find(':'); colon != absl::string_view::npos) {
      name = absl::StripAsciiWhitespace(line.substr(0, colon));
      token = absl::StripAsciiWhitespace(line.substr(colon + 1));
      if (!IsTokenName(name)) {
        return error("a token's name is 1 to 64 of A-Z a-z 0-9 . _ - (\"name:token\")");
      }
    }
    if (token.size() < kMinTokenLength || token.size() > kMaxTokenLength || !IsB64Token(token)) {
      // The line itself is not quoted: it may hold a real token.
      return error(
          "a token is 16 to 4096 characters of A-Z a-z 0-9 - . _ ~ + / (then '=' padding); "
          "e.g. `openssl rand -base64 32`");
    }
    Entry entry{Sha256(token), ""};
    if (!digests.insert(entry.digest).second) return error("the same token is listed twice");
    if (!name.empty()) {
      if (!names.insert(std::string(name)).second) return error("the same name is used twice");
      entry.identity = std::string(name);
    } else {
      entry.identity = absl::StrCat("sha256:", absl::BytesToHexString(entry.digest).substr(0, 16));
    }
    set.entries_.push_back(std::move(entry));
  }
  if (set.entries_.empty()) return absl::InvalidArgumentError("no token in the file");
  return set;
}

std::string TokenSet::Find(std::string_view presented) const {
  const std::string digest = Sha256(Sv(presented));
  const Entry* found = nullptr;
  for (const Entry& entry : entries_) {
    // CRYPTO_memcmp takes the same time whatever the bytes; every entry is compared.
    if (CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0) found = &entry;
  }
  return found != nullptr ? found->identity : std::string();
}

namespace {

absl::StatusOr<TokenSet> ReadTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the token file ", path));
  }
  auto tokens = TokenSet::Parse(text.str());
  if (!tokens.ok()) return Annotate(tokens.status(), absl::StrCat("token file ", path));
  return tokens;
}

}  // namespace

absl::StatusOr<std::shared_ptr<TokenAuthenticator>> TokenAuthenticator::Start(
    const std::string& path, absl::Duration reload_interval) {
  auto tokens = ReadTokenFile(path);
  if (!tokens.ok()) return tokens.status();
  std::shared_ptr<TokenAuthenticator> authenticator(
      new TokenAuthenticator(path, std::make_shared<const TokenSet>(*std::move(tokens))));
  authenticator->watcher_ = std::make_unique<PolledFileWatcher>(
      std::vector<std::string>{path}, reload_interval,
      [raw = authenticator.get()] { raw->Reload(); });
  return authenticator;
}

size_t TokenAuthenticator::token_count() const {
  MutexLock lock(&mu_);
  return tokens_->size();
}

void TokenAuthenticator::Reload() {
  auto tokens = ReadTokenFile(path_);
  if (!tokens.ok()) {
    spdlog::error("auth: keeping the previous tokens: {}", std::string(tokens.status().message()));
    return;
  }
  const size_t count = tokens->size();
  {
    MutexLock lock(&mu_);
    tokens_ = std::make_shared<const TokenSet>(*std::move(tokens));
  }
  spdlog::info("auth: token file {} reloaded: {} token(s)", path_, count);
}

grpc::Status TokenAuthenticator::Process(const InputMetadata& auth_metadata,
                                         grpc::AuthContext* context,
                                         OutputMetadata* consumed_auth_metadata,
                                         OutputMetadata* /*response_metadata*/) {
  const std::string method = FirstValue(auth_metadata, ":path");
  if (absl::StartsWith(method, Sv(kHealthMethodPrefix))) return grpc::Status::OK;

  const std::string authorization = FirstValue(auth_metadata, "authorization");
  std::string reason;
  if (authorization.empty()) {
    reason = "no authorization metadata: send `authorization: Bearer <token>` (TBLOG_TOKEN)";
  } else if (authorization.size() <= 7 ||
             !absl::EqualsIgnoreCase(absl::string_view(authorization).substr(0, 7), "bearer ")) {
    reason = "the authorization metadata is not `Bearer <token>`";
  } else {
    std::shared_ptr<const TokenSet> tokens;
    {
      MutexLock lock(&mu_);
      tokens = tokens_;
    }
    const std::string identity =
        tokens->Find(std::string(absl::StripAsciiWhitespace(absl::string_view(authorization).substr(7))));
    if (!identity.empty()) {
      context->AddProperty(kCallerIdentityProperty, identity);
      // Consumed: handlers (and anything they log) never see the token.
      consumed_auth_metadata->insert({"authorization", authorization});
      return grpc::Status::OK;
    }
    reason = "the bearer token is not one of the daemon's (--auth-token-file)";
  }
  LogRefusal(method, reason, *context, auth_metadata);
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, reason);
}

void TokenAuthenticator::LogRefusal(std::string_view method, std::string_view reason,
                                    const grpc::AuthContext& context,
                                    const InputMetadata& metadata) {
  int unlogged = 0;
  {
    MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    if (now - refusal_window_ >= absl::Seconds(1)) {
      refusal_window_ = now;
      refusals_logged_ = 0;
      unlogged = std::exchange(refusals_unlogged_, 0);
    }
    if (refusals_logged_ >= kRefusalLogBurst) {
      ++refusals_unlogged_;
      return;
    }
    ++refusals_logged_;
  }
  // gRPC gives an AuthMetadataProcessor no peer address: what identifies the
  // caller is the transport, a verified client certificate and its headers.
  std::string peer = FirstProperty(context, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
  if (std::string cn = FirstProperty(context, GRPC_X509_CN_PROPERTY_NAME); !cn.empty()) {
    absl::StrAppend(&peer, " client-cert CN=", cn);
  }
  spdlog::warn("auth: UNAUTHENTICATED {} (transport {}, authority '{}', user-agent '{}'): {}{}",
               method, peer.empty() ? "insecure" : peer, FirstValue(metadata, ":authority"),
               FirstValue(metadata, "user-agent"), reason,
               unlogged > 0 ? absl::StrCat(" (", unlogged, " earlier refusals not logged)") : "");
}

}  // namespace tblog::daemon
