// Bearer-token authentication of tblogd's RPCs (--auth-token-file).
//
// TokenSet parses the token file; TokenAuthenticator holds the current set,
// rereads the file when it changes, and is the gRPC AuthMetadataProcessor
// that every listener's credentials carry: a call but grpc.health.v1.Health
// without `authorization: Bearer <a token of the file>` ends with
// UNAUTHENTICATED before any handler runs, and the daemon logs the method and
// what it knows of the peer (never the token). A call that passes carries the
// token's identity in its AuthContext, which handlers read with
// CallerIdentity().
//
// Reflection needs a token too: it describes the API only, but "every RPC but
// health" is the simpler rule to state and to audit.
#ifndef TBLOG_DAEMON_AUTH_H_
#define TBLOG_DAEMON_AUTH_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "daemon/tls_file_watcher.h"
#include "grpcpp/security/auth_metadata_processor.h"

namespace grpc {
class ServerContextBase;
}

namespace tblog::daemon {

// The AuthContext property that holds an authenticated caller's identity.
inline constexpr char kCallerIdentityProperty[] = "tblog_caller";

// Who made the call, for binding runs and writers to their owner:
//   - "<name>" of the token that authenticated the call, when the token file
//     names it ("name:token"); "sha256:<16 hex digits>" (a prefix of the
//     token's SHA-256) for an unnamed token;
//   - else "x509:<common name>" of a verified client certificate (mTLS);
//   - else "" (no authentication configured: every caller is the same).
// With --auth-token-file every call that reaches a handler has a token
// identity. Stable across daemon restarts and token-file reloads (the same
// token keeps its identity). Call from the handler, not concurrently with
// other calls on the same context (gRPC builds the AuthContext lazily).
std::string CallerIdentity(const grpc::ServerContextBase& context);

// The tokens of one token file. Format, one per line: "token" or
// "name:token"; blank lines and lines starting with '#' are skipped; leading
// and trailing whitespace is ignored. A token is 16 to 4096 characters of
// RFC 6750's b64token set (A-Z a-z 0-9 - . _ ~ + / and trailing '='); a name
// is 1 to 64 of A-Z a-z 0-9 . _ -.
class TokenSet {
 public:
  // INVALID_ARGUMENT naming the line: a malformed line, a duplicate token or
  // name, or no token at all (a daemon nobody can call is a mistake).
  static absl::StatusOr<TokenSet> Parse(std::string_view text);

  // The identity of `presented` (see CallerIdentity), or "" if it is not in
  // the set. Compares SHA-256 digests of every token without early exit, so
  // the time taken does not tell how much of a guess was right.
  std::string Find(std::string_view presented) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string digest;  // SHA-256 of the token, 32 bytes
    std::string identity;
  };
  std::vector<Entry> entries_;
};

// Thread-safe. Owns a thread that checks the token file every
// `reload_interval` and swaps in the new set; a file that no longer parses is
// logged and the previous tokens stay in force.
class TokenAuthenticator final : public grpc::AuthMetadataProcessor {
 public:
  // Reads `path` (errors name it and the line) and starts watching it.
  static absl::StatusOr<std::shared_ptr<TokenAuthenticator>> Start(const std::string& path,
                                                                   absl::Duration reload_interval);
  ~TokenAuthenticator() override = default;

  // Runs on gRPC's thread for each call's metadata; quick and never blocks.
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

  size_t token_count() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  TokenAuthenticator(std::string path, std::shared_ptr<const TokenSet> tokens)
      : path_(std::move(path)), tokens_(std::move(tokens)) {}
  void Reload() ABSL_LOCKS_EXCLUDED(mu_);
  void LogRefusal(std::string_view method, std::string_view reason, const grpc::AuthContext& context,
                  const InputMetadata& metadata) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string path_;
  mutable Mutex mu_;
  std::shared_ptr<const TokenSet> tokens_ ABSL_GUARDED_BY(mu_);
  // Refusals are logged at most kRefusalLogBurst per second, so a client
  // looping on a bad token cannot flood the log; the rest are counted.
  absl::Time refusal_window_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int refusals_logged_ ABSL_GUARDED_BY(mu_) = 0;
  int refusals_unlogged_ ABSL_GUARDED_BY(mu_) = 0;
  // Last: stopped (joined) first when the authenticator goes.
  std::unique_ptr<PolledFileWatcher> watcher_;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_AUTH_H_
