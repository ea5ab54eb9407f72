#include "daemon/writer_binding.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/names.h"

namespace tblog::daemon {

WriterBindings::Holder WriterBindings::NewHolder() {
  static std::atomic<Holder> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

absl::Status WriterBindings::Bind(std::string_view run_id, std::string_view writer_id,
                                  Holder holder, std::string_view identity) {
  MutexLock lock(&mu_);
  auto it = bindings_.find(writer_id);
  if (it == bindings_.end()) {
    bindings_.emplace(std::string(writer_id), Binding{std::string(identity), holder});
    return absl::OkStatus();
  }
  Binding& binding = it->second;
  if (binding.identity != identity) {
    return absl::PermissionDeniedError(
        absl::StrCat("writer_id ", EscapeForMessage(writer_id), " of run ",
                     EscapeForMessage(run_id), " belongs to another identity"));
  }
  if (binding.holder != 0 && binding.holder != holder) {
    return absl::FailedPreconditionError(absl::StrCat(
        "writer_id ", EscapeForMessage(writer_id), " of run ", EscapeForMessage(run_id),
        " is in use by another live stream; a writer has one stream at a time (a reconnecting "
        "writer is let in once the daemon sees its old stream end)"));
  }
  binding.holder = holder;
  return absl::OkStatus();
}

void WriterBindings::Release(std::string_view writer_id, Holder holder) {
  MutexLock lock(&mu_);
  auto it = bindings_.find(writer_id);
  if (it != bindings_.end() && it->second.holder == holder) it->second.holder = 0;
}

int WriterBindings::HeldCount() const {
  MutexLock lock(&mu_);
  int held = 0;
  for (const auto& [id, binding] : bindings_) held += binding.holder != 0 ? 1 : 0;
  return held;
}

absl::StatusOr<WriterClaim> WriterClaim::Acquire(std::shared_ptr<WriterBindings> bindings,
                                                 std::string_view run_id, std::string writer_id,
                                                 std::string_view identity) {
  const WriterBindings::Holder holder = WriterBindings::NewHolder();
  TBLOG_RETURN_IF_ERROR(bindings->Bind(run_id, writer_id, holder, identity));
  return WriterClaim(std::move(bindings), std::move(writer_id), holder);
}

WriterClaim::WriterClaim(std::shared_ptr<WriterBindings> bindings, std::string writer_id,
                         WriterBindings::Holder holder)
    : bindings_(std::move(bindings)), writer_id_(std::move(writer_id)), holder_(holder) {}

WriterClaim::WriterClaim(WriterClaim&& other) noexcept
    : bindings_(std::move(other.bindings_)),
      writer_id_(std::move(other.writer_id_)),
      holder_(other.holder_) {
  other.bindings_.reset();
}

WriterClaim& WriterClaim::operator=(WriterClaim&& other) noexcept {
  if (this != &other) {
    Release();
    bindings_ = std::move(other.bindings_);
    other.bindings_.reset();
    writer_id_ = std::move(other.writer_id_);
    holder_ = other.holder_;
  }
  return *this;
}

WriterClaim::~WriterClaim() { Release(); }

void WriterClaim::Release() {
  if (bindings_) bindings_->Release(writer_id_, holder_);
  bindings_.reset();
}

}  // namespace tblog::daemon
