// How tblogd serves WriteBatch: a unary method for its clients, a streamed
// one on the server, so that its request is read only when the in-flight
// budget has room (write_batch_call.h).
//
// gRPC's server reads the request of a method registered as unary (or server
// streaming) together with the call, before any handler runs
// (GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER): a unary request is in memory
// whole before the daemon can hold it back. A method registered as streaming
// gets no payload with the call; the handler reads its messages when it
// wants. On the wire the two are the same (HTTP/2 HEADERS, DATA frames,
// trailers), so a client's unary call to a method the server registers as
// streaming is served as gRPC's own "streamed unary" services are
// (grpc::Service::MarkMethodStreamed): the request is the first message,
// the response is sent with the OK status, and no message with another.
//
// Side effects of the registration, handled by the reactor: gRPC's own
// answer to a request that does not parse (UNIMPLEMENTED, rewritten by
// malformed_requests.h's interceptor for unary methods) does not apply; the
// reactor parses the request and answers INVALID_ARGUMENT naming the method,
// as the interceptor does for the others.
#ifndef TBLOG_DAEMON_WRITE_BATCH_METHOD_H_
#define TBLOG_DAEMON_WRITE_BATCH_METHOD_H_

#include <cstdlib>

#include "grpcpp/impl/codegen/server_callback_handlers.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"

// As tblog_service.h: the generated service hides the overloads it replaces.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverloaded-virtual"
#include "tblog/v1/tblog.grpc.pb.h"

namespace tblog::daemon {

// WriteBatch's index among TBLog's methods: its position in tblog.proto's
// service (OpenRun, Write, WriteBatch, ...), as the generated
// WithRawCallbackMethod_WriteBatch numbers it. New RPCs go after the others.
inline constexpr int kWriteBatchMethodIndex = 2;

// A generated-style service mixin (like TBLog::WithRawCallbackMethod_...):
// WriteBatch registered as a raw callback method of the streaming type. The
// server's reactor reads the request (a serialized WriteRequest) itself and
// writes the response (a serialized WriteResponse) into `response` before it
// finishes with OK.
template <class BaseClass>
class WithStreamedRawCallbackMethod_WriteBatch : public BaseClass {
 public:
  WithStreamedRawCallbackMethod_WriteBatch() {
    // MarkMethodStreamed sets the method's type (streaming: no payload read
    // with the call) and MarkMethodRawCallback its API (callback, raw); each
    // installs a handler and deletes the one before, so each gets its own.
    grpc::Service::MarkMethodStreamed(kWriteBatchMethodIndex, NewHandler());
    grpc::Service::MarkMethodRawCallback(kWriteBatchMethodIndex, NewHandler());
  }

  // The synchronous version is never called (the method is a callback one).
  grpc::Status WriteBatch(grpc::ServerContext* /*context*/,
                          const v1::WriteRequest* /*request*/,
                          v1::WriteResponse* /*response*/) final {
    std::abort();
  }
  // One WriteBatch call: the reactor that reads its request.
  virtual grpc::ServerReadReactor<grpc::ByteBuffer>* WriteBatch(
      grpc::CallbackServerContext* context, grpc::ByteBuffer* response) = 0;

 private:
  grpc::internal::MethodHandler* NewHandler() {
    return new grpc::internal::CallbackClientStreamingHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
        [this](grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
          return this->WriteBatch(context, response);
        });
  }
};

}  // namespace tblog::daemon

#pragma GCC diagnostic pop

#endif  // TBLOG_DAEMON_WRITE_BATCH_METHOD_H_
