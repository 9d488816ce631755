// The one place absl::Status and grpc::Status convert into each other, for the server's
// handlers and every client alike. The canonical codes share their numbering, so the code
// maps one to one and the message is kept; a code outside the canonical range (a peer
// speaking a newer or broken gRPC) becomes UNKNOWN naming the number, never a code with
// another meaning.
//
// Typed details travel too: an absl::Status payload (type URL -> serialized message, e.g.
// a wxp.v1.LeaderRedirect; common/leader_redirect.h) becomes one google.protobuf.Any of the
// gRPC status's error details (wxp.v1.ErrorDetails, wire-compatible with google.rpc.Status),
// and back. Details that do not parse are dropped, never guessed at.
#ifndef WXP_COMMON_GRPC_STATUS_H_
#define WXP_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace wxp {

grpc::Status ToGrpc(const absl::Status& status);
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace wxp

#endif  // WXP_COMMON_GRPC_STATUS_H_
