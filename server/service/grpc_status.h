// The one place absl::Status and grpc::Status convert into each other. The canonical codes
// share their numbering, so the code maps one to one and the message is kept.
#ifndef WXP_SERVER_SERVICE_GRPC_STATUS_H_
#define WXP_SERVER_SERVICE_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace wxp::server {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

inline absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace wxp::server

#endif  // WXP_SERVER_SERVICE_GRPC_STATUS_H_
