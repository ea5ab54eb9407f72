#include "daemon/run_owner.h"

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/names.h"

namespace tblog::daemon {

std::string IdentifyCaller(const CallerIdentityFn& identify,
                           const grpc::ServerContextBase& context) {
  return identify ? identify(context) : std::string();
}

absl::Status CheckRunOwner(std::string_view owner, std::string_view caller,
                           std::string_view run_id, std::string_view action) {
  if (owner == caller) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("run ", EscapeForMessage(run_id), " was opened by another identity; only it ",
                   "may ", Sv(action), " the run"));
}

}  // namespace tblog::daemon
