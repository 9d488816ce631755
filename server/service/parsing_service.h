// A grpc::Service whose handlers receive Parsed<Request> (parsed_request.h), so that a
// request gRPC would fail to deserialize (INTERNAL, empty message) is refused by the
// service with INVALID_ARGUMENT naming the problem instead. It replaces the generated
// wxp::v1::*Service::Service base: a subclass registers each RPC of the service's
// descriptor once, with a handler of the generated signature (unary and server-streaming
// handlers are unchanged; a client-streaming handler reads Parsed<Request> messages and
// checks each one's error).
//
// A unary RPC may instead be served on gRPC's callback API (AddCallbackUnary): its handler
// answers through a Responder, later and from any thread, so a call that waits (for a
// commit) holds no thread meanwhile.
//
// Registration happens in the subclass's constructor; the service is then registered with
// a grpc::ServerBuilder like any other.
#ifndef WXP_SERVER_SERVICE_PARSING_SERVICE_H_
#define WXP_SERVER_SERVICE_PARSING_SERVICE_H_

#include <cstdlib>
#include <deque>
#include <iostream>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "common/grpc_status.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/impl/codegen/server_callback_handlers.h"
#include "grpcpp/impl/rpc_service_method.h"
#include "grpcpp/impl/service_type.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/method_handler.h"
#include "grpcpp/support/sync_stream.h"
#include "server/service/parsed_request.h"

namespace wxp::server {

class ParsingService : public grpc::Service {
 public:
  // "/package.Service/Method" of every registered RPC, in registration order.
  const std::vector<std::string>& method_paths() const { return paths_view_; }

 protected:
  // `service_full_name` as in the generated code, e.g. wxp::v1::AgentService::
  // service_full_name(); its descriptor must be linked in.
  explicit ParsingService(const char* service_full_name)
      : service_(google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            service_full_name)) {
    if (service_ == nullptr) {
      std::cerr << "ParsingService: no descriptor for service " << service_full_name << std::endl;
      std::abort();
    }
  }

  template <class Impl, class Req, class Resp>
  void AddUnary(const char* method, Impl* impl,
                grpc::Status (Impl::*handler)(grpc::ServerContext*, const Req*, Resp*)) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        Path(method), grpc::internal::RpcMethod::NORMAL_RPC,
        new grpc::internal::RpcMethodHandler<Impl, Parsed<Req>, Resp>(
            [handler](Impl* self, grpc::ServerContext* ctx, const Parsed<Req>* req, Resp* resp) {
              if (!req->error.ok()) return ToGrpc(req->error);
              return (self->*handler)(ctx, &req->message, resp);
            },
            impl)));
  }

  // Finishes a callback-API call with its status (the response, if OK, filled in before).
  // Called exactly once.
  using Responder = absl::AnyInvocable<void(grpc::Status) &&>;

  template <class Impl, class Req, class Resp>
  void AddCallbackUnary(const char* method, Impl* impl,
                        void (Impl::*handler)(grpc::CallbackServerContext*, const Req*, Resp*,
                                              Responder)) {
    auto* m = new grpc::internal::RpcServiceMethod(
        Path(method), grpc::internal::RpcMethod::NORMAL_RPC,
        new grpc::internal::CallbackUnaryHandler<Parsed<Req>, Resp>(
            [impl, handler](grpc::CallbackServerContext* ctx, const Parsed<Req>* req,
                            Resp* resp) -> grpc::ServerUnaryReactor* {
              grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
              if (!req->error.ok()) {
                reactor->Finish(ToGrpc(req->error));
              } else {
                (impl->*handler)(ctx, &req->message, resp,
                                 [reactor](grpc::Status s) { reactor->Finish(std::move(s)); });
              }
              return reactor;
            }));
    m->SetServerApiType(grpc::internal::RpcServiceMethod::ApiType::CALL_BACK);
    AddMethod(m);
  }

  template <class Impl, class Req, class Resp>
  void AddServerStreaming(const char* method, Impl* impl,
                          grpc::Status (Impl::*handler)(grpc::ServerContext*, const Req*,
                                                        grpc::ServerWriter<Resp>*)) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        Path(method), grpc::internal::RpcMethod::SERVER_STREAMING,
        new grpc::internal::ServerStreamingHandler<Impl, Parsed<Req>, Resp>(
            [handler](Impl* self, grpc::ServerContext* ctx, const Parsed<Req>* req,
                      grpc::ServerWriter<Resp>* writer) {
              if (!req->error.ok()) return ToGrpc(req->error);
              return (self->*handler)(ctx, &req->message, writer);
            },
            impl)));
  }

  // The handler sees every message, Parsed, and must refuse one whose error is set.
  template <class Impl, class Req, class Resp>
  void AddClientStreaming(const char* method, Impl* impl,
                          grpc::Status (Impl::*handler)(grpc::ServerContext*,
                                                        grpc::ServerReader<Parsed<Req>>*, Resp*)) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        Path(method), grpc::internal::RpcMethod::CLIENT_STREAMING,
        new grpc::internal::ClientStreamingHandler<Impl, Parsed<Req>, Resp>(
            [handler](Impl* self, grpc::ServerContext* ctx, grpc::ServerReader<Parsed<Req>>* reader,
                      Resp* resp) { return (self->*handler)(ctx, reader, resp); },
            impl)));
  }

 private:
  // A stable C string for the method (RpcServiceMethod keeps the pointer). A method the
  // descriptor does not have is a programming error: abort at start-up, not at call time.
  const char* Path(const char* method) {
    if (service_->FindMethodByName(method) == nullptr) {
      std::cerr << "ParsingService: " << service_->full_name() << " has no method " << method
                << std::endl;
      std::abort();
    }
    paths_.push_back("/" + service_->full_name() + "/" + method);
    paths_view_.push_back(paths_.back());
    return paths_.back().c_str();
  }

  const google::protobuf::ServiceDescriptor* service_;
  std::deque<std::string> paths_;  // a deque: pointers to its elements stay valid
  std::vector<std::string> paths_view_;
};

}  // namespace wxp::server

#endif  // WXP_SERVER_SERVICE_PARSING_SERVICE_H_
