// The one place absl::Status and grpc::Status convert into each other, for the server's
// handlers and every client alike. The canonical codes share their numbering, so the code
// maps one to one and the message is kept; a code outside the canonical range (a peer
// speaking a newer or broken gRPC) becomes UNKNOWN naming the number, never a code with
// another meaning.
#ifndef WXP_COMMON_GRPC_STATUS_H_
#define WXP_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace wxp {

grpc::Status ToGrpc(const absl::Status& status);
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace wxp

#endif  // WXP_COMMON_GRPC_STATUS_H_
