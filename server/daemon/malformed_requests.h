// Requests that do not parse reach the client as INVALID_ARGUMENT with a
// message, not as gRPC's bare UNIMPLEMENTED.
//
// What gRPC 1.51 does on its own when a request's bytes are not a valid
// message of the method's type:
//   - Unary and server-streaming methods (callback API): the handler never
//     runs and the call ends with UNIMPLEMENTED and an empty message
//     (CallbackUnaryHandler::RunHandler's UnimplementedUnaryReactor; the
//     sync API ends it with INTERNAL). The daemon never sees the call, but a
//     server interceptor does: it sees no request message after the receive
//     (POST_RECV_MESSAGE with a null message) and may rewrite the status
//     about to be sent (PRE_SEND_STATUS). UnparsableRequestInterceptors()
//     turns that status into INVALID_ARGUMENT naming the method.
//   - Streaming reads (the Write stream): a message that does not parse ends
//     the read with ok=false, exactly as the client's half-close does, so a
//     typed reactor cannot tell a bad message from the end of the stream,
//     and an interceptor sees the same null message in both cases. So the
//     Write stream is served raw (grpc::ByteBuffer, the generated
//     WithRawCallbackMethod_Write) and parses each message itself
//     (ParseMessage): a bad one ends the stream with INVALID_ARGUMENT naming
//     its position in the stream.
//   - WriteBatch, unary for clients, is served as a streamed method
//     (write_batch_method.h) and reads its request raw too: one that does
//     not parse is UnparsableRequestError, as the interceptor answers.
// Not reachable: a message over --max-message-size is refused by gRPC's
// transport (RESOURCE_EXHAUSTED, its own message) before anything of the
// daemon runs; a frame that is not gRPC at all (not HTTP/2, bad
// compression) ends the connection or the call in the transport.
#ifndef TBLOG_DAEMON_MALFORMED_REQUESTS_H_
#define TBLOG_DAEMON_MALFORMED_REQUESTS_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/message_lite.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_interceptor.h"

namespace tblog::daemon {

// The interceptor factory for grpc::ServerBuilder::experimental()
// .SetInterceptorCreators. It intercepts only unary and server-streaming
// calls (the ones with a single request the daemon never sees when it does
// not parse); it returns no interceptor for the others, which then pay
// nothing.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
UnparsableRequestInterceptors();

// Parses `buffer` (consumed) into `message`. INVALID_ARGUMENT naming the
// message ("message 3 of the Write stream": `position` of `stream`), its
// type and its size otherwise. Allocates nothing when it parses.
absl::Status ParseMessage(grpc::ByteBuffer& buffer, google::protobuf::MessageLite& message,
                          uint64_t position, std::string_view stream);

// The status of a unary call whose request does not parse, naming `method`
// ("/tblog.v1.TBLog/WriteBatch"): the interceptor's, and WriteBatch's, which
// reads its request itself (write_batch_call.h).
absl::Status UnparsableRequestError(std::string_view method);

// `message` serialized for a raw method's write. Never fails for a message
// the daemon built (protobuf's serialization of a valid message).
grpc::ByteBuffer SerializeMessage(const google::protobuf::MessageLite& message);

}  // namespace tblog::daemon

#endif  // TBLOG_DAEMON_MALFORMED_REQUESTS_H_
