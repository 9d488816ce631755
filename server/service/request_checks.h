// The checks of a request that need no state (SPEC 5.4), as proto/wxp.proto documents
// them: byte limits of free-form fields, formats and character sets, non-empty lists. The
// services run them before the coordinator sees the request, so a refused request changes
// nothing. Each refusal is InvalidArgument naming the field, the rule and the value's size.
// Checks that need the swarm (ownership, iterations, schemas) stay with the coordinator.
#ifndef WXP_SERVER_SERVICE_REQUEST_CHECKS_H_
#define WXP_SERVER_SERVICE_REQUEST_CHECKS_H_

#include "absl/status/status.h"
#include "proto/wxp.pb.h"

namespace wxp::server {

// total_size > 0 (the blob id's form and the size limit are the blob store's).
absl::Status CheckUploadHeader(const wxp::v1::UploadHeader& header);
// agent_version at most 256 bytes.
absl::Status CheckJoinRequest(const wxp::v1::JoinRequest& request);
// failure_reason at most 1024 bytes and empty unless evaluation_failed; the same for
// training_failure_reason and training_failed, which iteration 0 cannot carry;
// idempotency_key printable ASCII, at most 128 bytes.
absl::Status CheckReportRequest(const wxp::v1::ReportRequest& request);
// The spec's free-form text limits (CheckSwarmSpecLimits).
absl::Status CheckCreateSwarmRequest(const wxp::v1::CreateSwarmRequest& request);
// At least one weight.
absl::Status CheckSetUtilityWeightsRequest(const wxp::v1::SetUtilityWeightsRequest& request);
// reason at most 1024 bytes.
absl::Status CheckSwarmControlRequest(const wxp::v1::SwarmControlRequest& request);

}  // namespace wxp::server

#endif  // WXP_SERVER_SERVICE_REQUEST_CHECKS_H_
