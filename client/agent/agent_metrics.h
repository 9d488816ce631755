// wxp-agent's Prometheus metrics (SPEC 11; listed in deploy/README.md): evaluations and their
// seconds, blob bytes up and down, retries by call and code, reports acknowledged. The
// daemon serves registry() with common/metrics_http when the agent's metrics_address is set.
//
// Thread-safety: everything is thread-safe.
#ifndef WXP_CLIENT_AGENT_AGENT_METRICS_H_
#define WXP_CLIENT_AGENT_AGENT_METRICS_H_

#include "client/agent/agent_observer.h"
#include "common/metrics.h"

namespace wxp::agent {

class AgentMetrics final : public AgentObserver {
 public:
  AgentMetrics();
  AgentMetrics(const AgentMetrics&) = delete;
  AgentMetrics& operator=(const AgentMetrics&) = delete;

  metrics::Registry& registry() { return registry_; }

  void EvaluationDone(double seconds, bool failed) override;
  void BytesUploaded(uint64_t bytes) override;
  void BytesDownloaded(uint64_t bytes) override;
  void Retrying(absl::string_view call, const absl::Status& error) override;
  void ReportAcknowledged() override;

 private:
  metrics::Registry registry_;
  metrics::Family<metrics::Counter>& evaluations_;
  metrics::Histogram& evaluation_seconds_;
  metrics::Counter& uploaded_;
  metrics::Counter& downloaded_;
  metrics::Family<metrics::Counter>& retries_;
  metrics::Counter& reports_;
};

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_AGENT_METRICS_H_
