#include "server/app/server_metrics.h"

#include <string>

#include "gtest/gtest.h"
#include "server/store/update_pipeline.h"

namespace wxp::server {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

TEST(ServerMetricsTest, RpcsCountByKnownMethodAndCode) {
  ServerMetrics m;
  m.RpcInterceptorFactory({"/wxp.v1.AgentService/Report", "/wxp.v1.AdminService/ListSwarms"});
  m.RecordRpc("/wxp.v1.AgentService/Report", 0, 0.003);
  m.RecordRpc("/wxp.v1.AgentService/Report", 0, 0.2);
  m.RecordRpc("/wxp.v1.AgentService/Report", 9, 0.001);
  // Whatever path a client makes up is one "unknown" series, not a series of its own.
  m.RecordRpc("/evil.Service/Probe1", 12, 0.001);
  m.RecordRpc("/evil.Service/Probe2", 12, 0.001);
  m.RecordRpc("garbage", 99, 0.001);
  const std::string text = m.registry().Render();
  EXPECT_TRUE(
      Has(text, "wxp_rpcs_total{service=\"wxp.v1.AgentService\",method=\"Report\",code=\"OK\"} 2"))
      << text;
  EXPECT_TRUE(Has(text,
                  "wxp_rpcs_total{service=\"wxp.v1.AgentService\",method=\"Report\",code="
                  "\"FAILED_PRECONDITION\"} 1"))
      << text;
  EXPECT_TRUE(
      Has(text, "wxp_rpcs_total{service=\"unknown\",method=\"unknown\",code=\"UNIMPLEMENTED\"} 2"))
      << text;
  EXPECT_TRUE(
      Has(text, "wxp_rpcs_total{service=\"unknown\",method=\"unknown\",code=\"UNKNOWN\"} 1"))
      << text;
  EXPECT_TRUE(Has(text,
                  "wxp_rpc_duration_seconds_bucket{service=\"wxp.v1.AgentService\",method="
                  "\"Report\",le=\"0.005\"} 2"))
      << text;
  EXPECT_TRUE(Has(text,
                  "wxp_rpc_duration_seconds_count{service=\"wxp.v1.AgentService\",method="
                  "\"Report\"} 3"))
      << text;
  EXPECT_EQ(text.find("Probe"), std::string::npos);
}

TEST(ServerMetricsTest, ReportsByOutcomeAndBlobBytes) {
  ServerMetrics m;
  wxp::v1::ReportResponse accepted, duplicate;
  accepted.set_accepted(true);
  duplicate.set_accepted(true);
  duplicate.set_duplicate(true);
  wxp::v1::ReportRequest plain, untrained;
  untrained.set_swarm("legal");
  untrained.set_training_failed(true);
  untrained.set_training_failure_reason("trainer exited with status 1");
  m.ReportAnswered(plain, grpc::Status::OK, accepted);
  m.ReportAnswered(untrained, grpc::Status::OK, accepted);
  // A retry of the same report, and a refused one, are not a second failure.
  m.ReportAnswered(untrained, grpc::Status::OK, duplicate);
  m.ReportAnswered(untrained, grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "not yours"), {});
  m.BlobBytesIn(100);
  m.BlobBytesIn(23);
  m.BlobBytesOut(7);
  const std::string text = m.registry().Render();
  EXPECT_TRUE(Has(text, "wxp_reports_accepted_total 2")) << text;
  EXPECT_TRUE(Has(text, "wxp_reports_duplicate_total 1")) << text;
  EXPECT_TRUE(Has(text, "wxp_reports_refused_total{reason=\"permission_denied\"} 1")) << text;
  EXPECT_TRUE(Has(text, "wxp_local_training_failures_total{swarm=\"legal\"} 1")) << text;
  EXPECT_TRUE(Has(text, "wxp_blob_received_bytes_total 123")) << text;
  EXPECT_TRUE(Has(text, "wxp_blob_sent_bytes_total 7")) << text;
}

TEST(ServerMetricsTest, RoundDurationsBySwarm) {
  ServerMetrics m;
  m.RoundClosed("legal", 0.3);
  m.RoundClosed("legal", 42);
  const std::string text = m.registry().Render();
  EXPECT_TRUE(Has(text, "wxp_round_duration_seconds_bucket{swarm=\"legal\",le=\"0.5\"} 1")) << text;
  EXPECT_TRUE(Has(text, "wxp_round_duration_seconds_bucket{swarm=\"legal\",le=\"60\"} 2")) << text;
  EXPECT_TRUE(Has(text, "wxp_round_duration_seconds_sum{swarm=\"legal\"} 42.3")) << text;
}

TEST(ServerMetricsTest, StoreCommitsWhileAlive) {
  store::UpdatePipeline pipeline([](const std::vector<const store::SwarmUpdate*>&,
                                    std::vector<absl::Status>&) { return absl::OkStatus(); });
  {
    ServerMetrics m;
    pipeline.Enqueue({});
    pipeline.Enqueue({});
    ASSERT_TRUE(pipeline.WaitDurable(pipeline.Enqueue({})).ok());
    const std::string text = m.registry().Render();
    EXPECT_TRUE(Has(text, "wxp_store_commit_batch_size_bucket{le=\"2\"} 0")) << text;
    EXPECT_TRUE(Has(text, "wxp_store_commit_batch_size_bucket{le=\"4\"} 1")) << text;
    EXPECT_TRUE(Has(text, "wxp_store_commit_batch_size_sum 3")) << text;
    EXPECT_TRUE(Has(text, "wxp_store_commit_duration_seconds_count 1")) << text;
    EXPECT_TRUE(Has(text, "wxp_store_commit_failures_total 0")) << text;
  }
  // Gone with its metrics: commits after it go unobserved, and nothing dangles.
  EXPECT_TRUE(pipeline.WaitDurable(pipeline.Enqueue({})).ok());
}

}  // namespace
}  // namespace wxp::server
