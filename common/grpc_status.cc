#include "common/grpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "proto/wxp.pb.h"

namespace wxp {
namespace {

// absl::StatusCode and grpc::StatusCode both number the canonical codes 0..16.
constexpr int kLastCanonicalCode = 16;

bool IsCanonical(int code) { return code >= 0 && code <= kLastCanonicalCode; }

// A status's payloads as the "grpc-status-details-bin" trailer (empty without payloads).
std::string DetailsOf(const absl::Status& status, int code) {
  wxp::v1::ErrorDetails details;
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& value) {
    google::protobuf::Any* any = details.add_details();
    any->set_type_url(std::string(type_url));
    any->set_value(std::string(value));
  });
  if (details.details_size() == 0) return "";
  details.set_code(code);
  details.set_message(std::string(status.message()));
  return details.SerializeAsString();
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const int code = static_cast<int>(status.code());
  if (!IsCanonical(code)) {
    return grpc::Status(grpc::StatusCode::UNKNOWN,
                        absl::StrCat("status code ", code, ": ", status.message()));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(code), std::string(status.message()),
                      DetailsOf(status, code));
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  const int code = static_cast<int>(status.error_code());
  if (!IsCanonical(code)) {
    return absl::UnknownError(absl::StrCat("status code ", code, ": ", status.error_message()));
  }
  absl::Status out(static_cast<absl::StatusCode>(code), status.error_message());
  wxp::v1::ErrorDetails details;
  // Details that do not parse are dropped: the code and message still say what happened.
  if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
    for (const google::protobuf::Any& any : details.details()) {
      out.SetPayload(any.type_url(), absl::Cord(any.value()));
    }
  }
  return out;
}

}  // namespace wxp
