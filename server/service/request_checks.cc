#include "server/service/request_checks.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/spec/swarm_spec.h"

namespace wxp::server {
namespace {

absl::Status AtMost(absl::string_view field, const std::string& value, size_t max_bytes) {
  if (value.size() <= max_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " is ", value.size(), " bytes; at most ", max_bytes, " are allowed"));
}

}  // namespace

absl::Status CheckUploadHeader(const wxp::v1::UploadHeader& header) {
  if (header.total_size() == 0) {
    return absl::InvalidArgumentError(
        "header.total_size must be > 0: the size of the whole blob in bytes");
  }
  return absl::OkStatus();
}

absl::Status CheckJoinRequest(const wxp::v1::JoinRequest& request) {
  return AtMost("agent_version", request.agent_version(), 256);
}

absl::Status CheckReportRequest(const wxp::v1::ReportRequest& request) {
  if (absl::Status s = AtMost("failure_reason", request.failure_reason(), 1024); !s.ok()) {
    return s;
  }
  if (!request.evaluation_failed() && !request.failure_reason().empty()) {
    return absl::InvalidArgumentError(
        "failure_reason is set but evaluation_failed is false: a reason only goes with a "
        "failed evaluation");
  }
  if (absl::Status s = AtMost("training_failure_reason", request.training_failure_reason(), 1024);
      !s.ok()) {
    return s;
  }
  if (!request.training_failed() && !request.training_failure_reason().empty()) {
    return absl::InvalidArgumentError(
        "training_failure_reason is set but training_failed is false: a reason only goes "
        "with a failed training");
  }
  if (request.training_failed() && request.iteration() == 0) {
    return absl::InvalidArgumentError(
        "training_failed in the report of iteration 0: the initial position is never trained");
  }
  const std::string& key = request.idempotency_key();
  if (absl::Status s = AtMost("idempotency_key", key, 128); !s.ok()) return s;
  for (size_t i = 0; i < key.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat("idempotency_key must be printable ASCII; byte ", i, " is 0x",
                       absl::Hex(c, absl::kZeroPad2)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckCreateSwarmRequest(const wxp::v1::CreateSwarmRequest& request) {
  return CheckSwarmSpecLimits(request.spec());
}

absl::Status CheckSetUtilityWeightsRequest(const wxp::v1::SetUtilityWeightsRequest& request) {
  if (request.weights().empty()) {
    return absl::InvalidArgumentError(
        "weights is empty: name at least one utility component and its new weight");
  }
  return absl::OkStatus();
}

absl::Status CheckSwarmControlRequest(const wxp::v1::SwarmControlRequest& request) {
  return AtMost("reason", request.reason(), 1024);
}

}  // namespace wxp::server
