#include "client/agent/agent_metrics.h"

#include "gtest/gtest.h"

namespace wxp::agent {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

TEST(AgentMetricsTest, CountsWhatTheAgentDid) {
  AgentMetrics m;
  m.EvaluationDone(0.02, false);
  m.EvaluationDone(2, false);
  m.EvaluationDone(0.5, true);
  m.BytesUploaded(1000);
  m.BytesDownloaded(250);
  m.BytesDownloaded(250);
  m.Retrying("Report", absl::UnavailableError("server restarting"));
  m.Retrying("Report", absl::UnavailableError("server restarting"));
  m.ReportAcknowledged();
  const std::string text = m.registry().Render();
  EXPECT_TRUE(Has(text, "wxp_agent_evaluations_total{result=\"failed\"} 1")) << text;
  EXPECT_TRUE(Has(text, "wxp_agent_evaluations_total{result=\"ok\"} 2")) << text;
  EXPECT_TRUE(Has(text, "wxp_agent_evaluation_duration_seconds_bucket{le=\"0.05\"} 1")) << text;
  EXPECT_TRUE(Has(text, "wxp_agent_evaluation_duration_seconds_bucket{le=\"1\"} 2")) << text;
  EXPECT_TRUE(Has(text, "wxp_agent_evaluation_duration_seconds_count 3")) << text;
  EXPECT_TRUE(Has(text, "wxp_agent_evaluation_duration_seconds_sum 2.52")) << text;
  EXPECT_TRUE(Has(text, "wxp_agent_uploaded_bytes_total 1000")) << text;
  EXPECT_TRUE(Has(text, "wxp_agent_downloaded_bytes_total 500")) << text;
  EXPECT_TRUE(Has(text, "wxp_agent_retries_total{call=\"Report\",code=\"UNAVAILABLE\"} 2")) << text;
  EXPECT_TRUE(Has(text, "wxp_agent_reports_acknowledged_total 1")) << text;
}

}  // namespace
}  // namespace wxp::agent
