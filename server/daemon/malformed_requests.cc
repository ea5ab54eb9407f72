#include "daemon/malformed_requests.h"

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/grpc_status.h"
#include "grpcpp/impl/codegen/proto_utils.h"

namespace tblog::daemon {
namespace {

using grpc::experimental::InterceptionHookPoints;

// One call's interceptor: notes that its request did not parse, then
// replaces the status gRPC sends for it.
class UnparsableRequestInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit UnparsableRequestInterceptor(const char* method) : method_(method) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      // A unary or server-streaming call always carries its one request:
      // no message after the receive means it did not parse.
      unparsable_.store(true, std::memory_order_relaxed);
    }
    if (unparsable_.load(std::memory_order_relaxed) &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      methods->ModifySendStatus(ToGrpc(UnparsableRequestError(method_)));
    }
    methods->Proceed();
  }

 private:
  const std::string method_;  // "/tblog.v1.TBLog/OpenRun"
  // Set by the receive's hook, read by the send-status hook, which gRPC runs
  // after the handler, so after the receive. An atomic all the same: gRPC may
  // run the hooks of one call's concurrent batches (the completion op's
  // receive-close) on different threads.
  std::atomic<bool> unparsable_{false};
};

class UnparsableRequestInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    using Type = grpc::experimental::ServerRpcInfo::Type;
    if (info->type() != Type::UNARY && info->type() != Type::SERVER_STREAMING) return nullptr;
    return new UnparsableRequestInterceptor(info->method());
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
UnparsableRequestInterceptors() {
  return std::make_unique<UnparsableRequestInterceptorFactory>();
}

absl::Status UnparsableRequestError(std::string_view method) {
  return absl::InvalidArgumentError(
      absl::StrCat(Sv(method), ": the request is not a valid protobuf message of the ",
                   "method's request type (check the client's copy of the .proto)"));
}

absl::Status ParseMessage(grpc::ByteBuffer& buffer, google::protobuf::MessageLite& message,
                          uint64_t position, std::string_view stream) {
  const size_t size = buffer.Length();
  const grpc::Status parsed =
      grpc::SerializationTraits<google::protobuf::MessageLite>::Deserialize(&buffer, &message);
  if (parsed.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "message ", position, " of the ", Sv(stream), " (", size, " bytes) is not a valid ", message.GetTypeName(),
      " (check the client's copy of the .proto)"));
}

grpc::ByteBuffer SerializeMessage(const google::protobuf::MessageLite& message) {
  grpc::ByteBuffer buffer;
  bool own_buffer = false;
  // Cannot fail for a valid message; a failure would leave `buffer` empty,
  // which the client reads as an empty (default) response.
  (void)grpc::SerializationTraits<google::protobuf::MessageLite>::Serialize(message, &buffer,
                                                                           &own_buffer);
  return buffer;
}

}  // namespace tblog::daemon
