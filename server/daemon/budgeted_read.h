// The budgeted read of a raw Write stream: what the daemon's Write stream
// (tblog_service.cc) and a forwarded one (forward_stream.h) share.
//
// The in-flight budget (byte_budget.h) bounds the daemon's memory only if a
// message is read once the budget has room for it, because gRPC holds a
// message whole before the reactor sees it. So every read goes through four
// steps, which this base class does:
//   1. reserve room for the next message (RequestReadLocked); when the budget
//      is spent the stream is parked, no thread blocked, and the read starts
//      once the reservation is granted (FIFO with the other streams and the
//      parked WriteBatch calls);
//   2. read it (a raw grpc::ByteBuffer);
//   3. parse it here rather than in gRPC, so that a message that does not
//      parse is an error (INVALID_ARGUMENT naming its position,
//      malformed_requests.h) and not the end of the stream;
//   4. commit the charge: what the message holds from now on (the stream's
//      ChargeFn: the message, plus its conversion estimate where it is
//      converted here) takes the reservation's place.
// The derived reactor decides what a message is for (OnMessage), when the
// stream still reads (ReadsLocked) and how it ends (Progress); it releases
// the charge once the message is no longer held.
//
// Threads: gRPC's callback threads and the budget's grants (on the thread
// that made room) run the reactions, possibly at once. mu_ guards the
// reactor's shared state, the derived class's included; no gRPC operation
// and no ByteBudget call that may run callbacks (everything but Reserve) is
// made with mu_ held. The read side (the buffer, request_, the message
// count) is touched only while no read is in flight: from OnReadDone until
// the derived class starts the next read. Each derived reactor owns itself
// and calls ReleaseReservation() from its OnDone before deleting itself.
#ifndef TBLOG_DAEMON_BUDGETED_READ_H_
#define TBLOG_DAEMON_BUDGETED_READ_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "base/sync.h"
#include "daemon/byte_budget.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {

class BudgetedReadStream : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // What a parsed request holds in the budget (byte_budget.h, "charges"),
  // given its serialized size (what was received).
  using ChargeFn = size_t (*)(const v1::WriteRequest& request, size_t received);

  // A message read and charged: request_ holds it when `parsed` is OK.
  struct Message {
    absl::Status parsed;  // INVALID_ARGUMENT naming the message when it does not parse
    size_t bytes = 0;     // its serialized size: what was received
    size_t charge = 0;    // what it holds in the budget now (`bytes` when it does not parse)
    // The next message of the stream is probably like this one, and while
    // gRPC parses it, it holds both its received bytes and the parsed
    // message: what to reserve for it.
    size_t next_reservation() const { return charge + bytes; }
  };

  BudgetedReadStream(const BudgetedReadStream&) = delete;
  BudgetedReadStream& operator=(const BudgetedReadStream&) = delete;

  // Steps 3 and 4, then OnMessage; a read that ends the stream (the client
  // half-closed, or is gone) gives its reservation back, calls
  // ReadsOverLocked and then Progress.
  void OnReadDone(bool ok) final;

 protected:
  // `budget` is borrowed and outlives the stream. `charge` names what a
  // parsed message holds; `stream` names the stream in parse errors
  // ("message 3 of the <stream>").
  BudgetedReadStream(ByteBudget* budget, ChargeFn charge, const char* stream)
      : budget_(budget), charge_(charge), stream_(stream) {}
  ~BudgetedReadStream() override = default;

  // Step 1: reserves next_reservation_ for the next message. True when
  // granted: the caller starts the read (StartBudgetedRead) once it has
  // dropped mu_. Otherwise the stream waits, and once granted the read
  // starts by itself if ReadsLocked() still holds (the reservation is given
  // back and Progress runs if not). Reserve runs no callback, hence mu_.
  bool RequestReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Step 2, after a granted RequestReadLocked; without mu_ (a gRPC call).
  void StartBudgetedRead() ABSL_LOCKS_EXCLUDED(mu_) { StartRead(&read_buffer_); }
  // Once the stream stops reading: takes back a reservation still waiting.
  // One whose grant is already on its way is given back by the grant.
  void StopWaiting() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether a reservation waits for budget room: the stream must not finish
  // while it does (its grant would call back into a deleted reactor).
  bool WaitingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return waiting_ != 0; }
  // From OnDone: gives back the reservation of a read Finish cancelled.
  void ReleaseReservation() ABSL_LOCKS_EXCLUDED(mu_);

  // How many messages the stream has read (the one OnMessage gets included);
  // read side only.
  uint64_t messages_read() const { return messages_read_; }

  // Whether the stream still reads: a grant that comes later is given back.
  virtual bool ReadsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // The client half-closed, or is gone: no more reads.
  virtual void ReadsOverLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // A message was read and charged (its charge is the derived class's to
  // release); without mu_. It decides whether to read on.
  virtual void OnMessage(Message message) ABSL_LOCKS_EXCLUDED(mu_) = 0;
  // Decides under mu_ what the stream does next, and does it after.
  virtual void Progress() ABSL_LOCKS_EXCLUDED(mu_) = 0;

  ByteBudget* const budget_;
  // The message just read, once parsed; the read side (see above).
  v1::WriteRequest request_;

  Mutex mu_;
  // What the next RequestReadLocked reserves.
  size_t next_reservation_ ABSL_GUARDED_BY(mu_) = 0;

 private:
  // The budget granted the reservation the stream waited for.
  void OnGranted() ABSL_LOCKS_EXCLUDED(mu_);

  const ChargeFn charge_;
  const char* const stream_;
  grpc::ByteBuffer read_buffer_;
  uint64_t messages_read_ = 0;  // names a message that does not parse
  // The granted reservation of the read in flight, and the one waited for.
  ByteBudget::Ticket reservation_ ABSL_GUARDED_BY(mu_) = 0;
  ByteBudget::Ticket waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_BUDGETED_READ_H_
