// The unary WriteBatch call under the ByteBudget (byte_budget.h).
//
// The budget bounds the daemon's memory only if a message is read once the
// budget has room for it, so WriteBatch is served as gRPC serves a streamed
// unary method (write_batch_method.h): its request is not read with the call
// but by this reactor, once the budget grants a reservation for it (FIFO, in
// line with the Write streams waiting to read). Until then the call is
// parked, no thread blocked, and HTTP/2 flow control keeps all but one stream
// window (kParkedCallBytes) of its message in the client. The reservation is
// --max-message-size (clamped to the budget) for a caller not seen yet, else
// what its previous call held (WriteBatchReadSizes); once the message is in,
// its charge (message + conversion estimate) takes the reservation's place.
//
// A call that is still parked after kMaxUnaryWait (or its deadline, or its
// cancellation) ends with RESOURCE_EXHAUSTED (DEADLINE_EXCEEDED, CANCELLED)
// and nothing written; a call that would bring what the parked calls hold
// past a quarter of the budget is refused at once with RESOURCE_EXHAUSTED
// (one call may always wait). Both are transient: clients retry with backoff
// (tblog.proto, "Retries"). The request is then validated (run, writer,
// ownership) as before, and the call finishes when its batch is written.
#ifndef TBLOG_DAEMON_WRITE_BATCH_CALL_H_
#define TBLOG_DAEMON_WRITE_BATCH_CALL_H_

#include <cstddef>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "daemon/byte_budget.h"
#include "daemon/rejection_log.h"
#include "daemon/run.h"
#include "daemon/run_registry.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

// WriteBatch answers a batch with rejected records with the first error's
// status; since gRPC then sends no response message, the serialized
// WriteResponse (every RecordError) is in this binary trailing metadata key.
inline constexpr char kWriteResponseTrailer[] = "tblog-write-response-bin";

// How long a parked WriteBatch call waits for budget room at most (the budget
// expires it at the daemon's next flush tick after that).
inline constexpr absl::Duration kMaxUnaryWait = absl::Seconds(30);

// What a parked call holds of its message, not read yet: the HTTP/2 stream
// window its client may send ahead (gRPC's 64 KiB default; tblogd turns off
// the window's growth, memory_bound.h). Parked calls are capped at a quarter
// of the budget counted so.
inline constexpr size_t kParkedCallBytes = size_t{64} << 10;

// How much to reserve for a WriteBatch call's message before reading it.
// gRPC names a call's peer by its connection ("ipv4:10.0.0.5:41234"), so a
// peer is one client channel. A peer's learnt size (its previous message's
// charge plus its bytes, as gRPC holds both while parsing: a Write stream's
// rule) serves one of its calls at a time; its other calls, and the calls of
// a peer not seen, reserve `unknown` (--max-message-size; the budget clamps
// it). So an under-reservation, should a caller's next message be larger than
// its last, is at most one message per connection, as for a stream.
// Thread-safe; remembers at most kMaxPeers peers (then forgets the idle ones).
class WriteBatchReadSizes {
 public:
  static constexpr size_t kMaxPeers = 4096;

  explicit WriteBatchReadSizes(size_t unknown) : unknown_(unknown) {}

  // The reservation for a new call of `peer`; `*learnt` tells whether it is
  // the peer's learnt size, now claimed until Learn or Unclaim.
  size_t Claim(const std::string& peer, bool* learnt) ABSL_LOCKS_EXCLUDED(mu_);
  // The call's message held `next` at its peak: the peer's next reservation.
  // `learnt`: the call had claimed the peer's learnt size (Claim's answer).
  void Learn(const std::string& peer, size_t next, bool learnt) ABSL_LOCKS_EXCLUDED(mu_);
  // A call that claimed the learnt size ends without a message.
  void Unclaim(const std::string& peer) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Learnt {
    size_t bytes = 0;
    bool claimed = false;
  };
  const size_t unknown_;
  Mutex mu_;
  absl::flat_hash_map<std::string, Learnt> peers_ ABSL_GUARDED_BY(mu_);
};

// The budgeted read of one WriteBatch call, shared by the daemon's own call
// (StartWriteBatch) and the one a node daemon forwards upstream
// (forward_write_batch.h): the call is parked until the budget grants a
// reservation for its message (ReserveOrWait, with kParkedCallBytes held and
// a quarter of the budget for the parked calls; kMaxUnaryWait at most), then
// reads it, parses it (UnparsableRequestError when it does not), commits its
// charge (the ChargeFn) and learns its size for the peer's next call; the
// derived call then takes the request (OnRequest). A refusal, a cancellation
// or an expiry finishes the call as write_batch_call.h's header says.
//
// Threads: gRPC's reactions and the budget's grant run one after another
// for the read side (Start, then OnGranted or OnCancel, then OnReadDone,
// which hands request_ to OnRequest); mu_ guards what a cancellation may
// touch at the same time, the derived class's state included. The call owns
// itself and is deleted in OnDone.
class BudgetedWriteBatch : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  // What a parsed request holds in the budget once read, given its
  // serialized size (what was received).
  using ChargeFn = size_t (*)(const v1::WriteRequest& request, size_t received);

  BudgetedWriteBatch(const BudgetedWriteBatch&) = delete;
  BudgetedWriteBatch& operator=(const BudgetedWriteBatch&) = delete;

  // Starts the call: with an OK `refusal`, claims the peer's size and
  // reserves room for the message (or parks, or refuses), and the read
  // starts once granted; otherwise (the daemon is shutting down) finishes
  // the call with `refusal`, unread. Returns the call, gRPC's reactor.
  grpc::ServerReadReactor<grpc::ByteBuffer>* StartOrRefuse(grpc::Status refusal);

  void OnReadDone(bool ok) final;
  void OnCancel() final;
  void OnDone() final { delete this; }

 protected:
  // `context`, `response`: gRPC's, valid until the call is done; `budget`
  // and `read_sizes` are borrowed and outlive it.
  BudgetedWriteBatch(grpc::CallbackServerContext* context, grpc::ByteBuffer* response,
                     ByteBudget* budget, WriteBatchReadSizes* read_sizes, ChargeFn charge);
  ~BudgetedWriteBatch() override = default;

  // The request (request_) is read, parsed and charged `charge_`: the
  // derived call takes it. A non-OK status refuses it: the base releases
  // the charge and finishes with it. Once OK, the call owes the release of
  // charge_ and a FinishOnce.
  virtual absl::Status OnRequest() = 0;
  // Under mu_, once, just before Finish (e.g. to let a writer id go).
  virtual void FinishingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {}
  // Finishes the call with `status` unless it is finished already.
  void FinishOnce(grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_);

  grpc::CallbackServerContext* const context_;
  grpc::ByteBuffer* const response_;
  ByteBudget* const budget_;
  const std::string peer_;  // one client channel (WriteBatchReadSizes)
  v1::WriteRequest request_;
  size_t charge_ = 0;  // what request_ holds in the budget, once read
  Mutex mu_;

 private:
  void Start();
  grpc::Status CancelledStatus() const;
  // From the budget: the reservation is granted, or kMaxUnaryWait passed.
  void OnGranted(bool granted) ABSL_LOCKS_EXCLUDED(mu_);
  // A call that claimed its peer's learnt size and reads no message.
  void Unclaim();

  WriteBatchReadSizes* const read_sizes_;
  const ChargeFn charge_fn_;
  bool learnt_ = false;  // the reservation is the peer's learnt size (read side)
  grpc::ByteBuffer request_buffer_;
  ByteBudget::Ticket ticket_ ABSL_GUARDED_BY(mu_) = 0;       // parked for the budget
  ByteBudget::Ticket reservation_ ABSL_GUARDED_BY(mu_) = 0;  // granted, read in flight
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// What every WriteBatch call of a service uses; borrowed, outlives the calls.
struct WriteBatchShared {
  RunRegistry* registry = nullptr;
  RunContext run_context;
  RejectionLog* log = nullptr;
  WriteBatchReadSizes* read_sizes = nullptr;
};

// Starts a WriteBatch call and returns its reactor, which reads the request
// once the budget has room, validates it for `caller` (run_owner.h), and
// finishes the call once the batch is written (or refused). `context` and
// `response` are gRPC's, valid until the call is done. A non-OK `refusal`
// (the daemon is shutting down) finishes the call with it, unread.
grpc::ServerReadReactor<grpc::ByteBuffer>* StartWriteBatch(grpc::CallbackServerContext* context,
                                                           grpc::ByteBuffer* response,
                                                           const WriteBatchShared& shared,
                                                           std::string caller,
                                                           grpc::Status refusal);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_WRITE_BATCH_CALL_H_
