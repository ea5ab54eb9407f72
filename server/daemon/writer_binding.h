// Which stream holds each writer id of one run. A writer id is bound to the
// first live stream (Write stream or WriteBatch call) that uses it, and to
// the identity of its caller (run_owner.h); while that stream lives, another
// stream naming the same writer id is refused, so two streams never
// interleave one writer's sequence numbers (a second stream could otherwise
// send the owner's writer id with a high sequence and have the owner's later
// batches acknowledged as duplicates and never written). Once the holder is
// gone (a reconnect: the client's old stream ended), a stream of the same
// identity takes the writer id over; another identity never does.
#ifndef TBLOG_DAEMON_WRITER_BINDING_H_
#define TBLOG_DAEMON_WRITER_BINDING_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/sync.h"

namespace tblog::daemon {

// Thread-safe. One per run (the registry keeps it beside the run, so
// bindings outlive a close and a resume of the run in this process).
class WriterBindings {
 public:
  // A stream's key: unique for the life of the daemon (NewHolder), never
  // reused, unlike a reactor's address.
  using Holder = uint64_t;
  static Holder NewHolder();

  WriterBindings() = default;
  WriterBindings(const WriterBindings&) = delete;
  WriterBindings& operator=(const WriterBindings&) = delete;

  // Binds `writer_id` to `holder`, calling as `identity` ("" without tokens).
  // OK when it is free or already `holder`'s. PERMISSION_DENIED when another
  // identity bound it (final: the writer id is someone else's), and
  // FAILED_PRECONDITION when another live holder has it (transient: retried,
  // it succeeds once that stream ends). Messages name the writer and run.
  absl::Status Bind(std::string_view run_id, std::string_view writer_id, Holder holder,
                    std::string_view identity) ABSL_LOCKS_EXCLUDED(mu_);

  // `holder` is gone (or stops sending): `writer_id` becomes free for a
  // stream of the same identity. No-op unless `holder` holds it.
  void Release(std::string_view writer_id, Holder holder) ABSL_LOCKS_EXCLUDED(mu_);

  // Writer ids currently held by a live stream (for tests and GetRun-like
  // reports).
  int HeldCount() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Binding {
    std::string identity;  // whose writer id this is, for good
    Holder holder = 0;     // 0 = no live stream holds it
  };
  mutable Mutex mu_;
  std::map<std::string, Binding, std::less<>> bindings_ ABSL_GUARDED_BY(mu_);
};

// One stream's hold on a writer id: Bind on Acquire, Release when destroyed
// (a Write stream drops it when it stops reading; a WriteBatch call's ack
// sink holds it until the run has acknowledged the batch). Move-only.
class WriterClaim {
 public:
  // Binds `writer_id` of `run_id` to a new holder (WriterBindings::Bind's
  // errors).
  static absl::StatusOr<WriterClaim> Acquire(std::shared_ptr<WriterBindings> bindings,
                                             std::string_view run_id, std::string writer_id,
                                             std::string_view identity);
  WriterClaim(WriterClaim&& other) noexcept;
  WriterClaim& operator=(WriterClaim&& other) noexcept;
  ~WriterClaim();

 private:
  WriterClaim(std::shared_ptr<WriterBindings> bindings, std::string writer_id,
              WriterBindings::Holder holder);
  void Release();

  std::shared_ptr<WriterBindings> bindings_;  // null once released or moved from
  std::string writer_id_;
  WriterBindings::Holder holder_ = 0;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_WRITER_BINDING_H_
