// A request message as it arrived on the wire, parsed by the service rather than by gRPC.
//
// gRPC's own deserialization refuses a message that protobuf cannot parse (for example a
// proto3 string field holding bytes that are not UTF-8) with INTERNAL and an empty message,
// before any handler runs. SPEC 5.4 wants every bad request refused with INVALID_ARGUMENT
// and a message a person can act on, so the services register their methods with
// Parsed<Request> (see parsing_service.h): deserialization always succeeds at the gRPC
// level and records in `error` why the bytes are not a valid request, naming the field;
// the handler refuses the call with it before touching anything.
#ifndef WXP_SERVER_SERVICE_PARSED_REQUEST_H_
#define WXP_SERVER_SERVICE_PARSED_REQUEST_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/impl/serialization_traits.h"
#include "grpcpp/support/byte_buffer.h"

namespace wxp::server {

template <class M>
struct Parsed {
  M message;
  // OK, or InvalidArgument "request is not a valid <type>: <why>" (then `message` is
  // unusable).
  absl::Status error;
};

// Parses `buffer` (consumed; may be null: no message) into `out`. InvalidArgument naming the
// request type and, when that is the reason, the string field that is not valid UTF-8.
absl::Status ParseRequest(grpc::ByteBuffer* buffer, google::protobuf::Message* out);

// Why `bytes` do not parse as a `type`: InvalidArgument naming the first string field
// (path like "spec.utility[1].name", repeated fields indexed by occurrence) whose bytes are
// not valid UTF-8, or saying the bytes are not that message at all. For bytes that do
// parse, OK.
absl::Status ExplainUnparsable(const google::protobuf::Descriptor& type, absl::string_view bytes);

}  // namespace wxp::server

namespace grpc {

// Deserialization of a Parsed<M> never fails: the verdict goes into Parsed::error.
template <class M>
class SerializationTraits<wxp::server::Parsed<M>, void> {
 public:
  static Status Serialize(const wxp::server::Parsed<M>& msg, ByteBuffer* bb, bool* own_buffer) {
    return SerializationTraits<M>::Serialize(msg.message, bb, own_buffer);
  }
  static Status Deserialize(ByteBuffer* buffer, wxp::server::Parsed<M>* msg) {
    msg->error = wxp::server::ParseRequest(buffer, &msg->message);
    return Status::OK;
  }
};

}  // namespace grpc

#endif  // WXP_SERVER_SERVICE_PARSED_REQUEST_H_
