#include "server/service/request_checks.h"

#include <string>

#include "gtest/gtest.h"

namespace wxp::server {
namespace {

void ExpectInvalid(const absl::Status& s, const std::string& names) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(names), std::string::npos) << s;
}

TEST(RequestChecksTest, UploadHeaderNeedsASize) {
  wxp::v1::UploadHeader h;
  ExpectInvalid(CheckUploadHeader(h), "total_size");
  h.set_total_size(1);
  EXPECT_TRUE(CheckUploadHeader(h).ok());
}

TEST(RequestChecksTest, AgentVersionIsAtMost256Bytes) {
  wxp::v1::JoinRequest r;
  r.set_agent_version(std::string(256, 'v'));
  EXPECT_TRUE(CheckJoinRequest(r).ok());
  r.set_agent_version(std::string(257, 'v'));
  ExpectInvalid(CheckJoinRequest(r), "agent_version is 257 bytes; at most 256");
}

TEST(RequestChecksTest, FailureReasonOnlyWithAFailureAndAtMost1024Bytes) {
  wxp::v1::ReportRequest r;
  r.set_failure_reason("timeout");
  ExpectInvalid(CheckReportRequest(r), "evaluation_failed is false");
  r.set_evaluation_failed(true);
  EXPECT_TRUE(CheckReportRequest(r).ok());
  r.set_failure_reason(std::string(1025, 'x'));
  ExpectInvalid(CheckReportRequest(r), "failure_reason is 1025 bytes");
}

TEST(RequestChecksTest, TrainingFailureReasonOnlyWithAFailedTrainingAfterIterationZero) {
  wxp::v1::ReportRequest r;
  r.set_iteration(3);
  r.set_training_failure_reason("trainer timed out");
  ExpectInvalid(CheckReportRequest(r), "training_failed is false");
  r.set_training_failed(true);
  EXPECT_TRUE(CheckReportRequest(r).ok());
  r.clear_training_failure_reason();
  EXPECT_TRUE(CheckReportRequest(r).ok());  // the reason is optional
  r.set_training_failure_reason(std::string(1025, 'x'));
  ExpectInvalid(CheckReportRequest(r), "training_failure_reason is 1025 bytes");
  r.set_training_failure_reason("x");
  r.set_iteration(0);
  ExpectInvalid(CheckReportRequest(r), "never trained");
}

TEST(RequestChecksTest, IdempotencyKeyIsPrintableAsciiOfAtMost128Bytes) {
  wxp::v1::ReportRequest r;
  r.set_idempotency_key("3:7:" + std::string(64, 'a'));
  EXPECT_TRUE(CheckReportRequest(r).ok());
  r.set_idempotency_key(std::string(128, '~'));
  EXPECT_TRUE(CheckReportRequest(r).ok());
  r.set_idempotency_key(std::string(129, 'k'));
  ExpectInvalid(CheckReportRequest(r), "idempotency_key is 129 bytes");
  r.set_idempotency_key("a\tb");
  ExpectInvalid(CheckReportRequest(r), "idempotency_key must be printable ASCII; byte 1 is 0x09");
  r.set_idempotency_key("caf\xc3\xa9");
  ExpectInvalid(CheckReportRequest(r), "byte 3 is 0xc3");
}

TEST(RequestChecksTest, WeightsAreNonEmpty) {
  wxp::v1::SetUtilityWeightsRequest r;
  ExpectInvalid(CheckSetUtilityWeightsRequest(r), "weights is empty");
  (*r.mutable_weights())["acc"] = 1;
  EXPECT_TRUE(CheckSetUtilityWeightsRequest(r).ok());
}

TEST(RequestChecksTest, ControlReasonIsAtMost1024Bytes) {
  wxp::v1::SwarmControlRequest r;
  r.set_reason(std::string(1024, 'r'));
  EXPECT_TRUE(CheckSwarmControlRequest(r).ok());
  r.set_reason(std::string(1025, 'r'));
  ExpectInvalid(CheckSwarmControlRequest(r), "reason is 1025 bytes");
}

TEST(RequestChecksTest, CreateSwarmChecksTheSpecsTextLimits) {
  wxp::v1::CreateSwarmRequest r;
  r.mutable_spec()->set_description(std::string(1025, 'd'));
  ExpectInvalid(CheckCreateSwarmRequest(r), "description");
}

}  // namespace
}  // namespace wxp::server
