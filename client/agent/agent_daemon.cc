#include "client/agent/agent_daemon.h"

#include <signal.h>

#include <iostream>
#include <thread>

#include "absl/time/clock.h"
#include "client/agent/agent_metrics.h"
#include "client/agent/evaluator_factory.h"
#include "client/net/connection.h"
#include "common/metrics_http.h"
#include "common/shutdown_signals.h"
#include "common/status_macros.h"

namespace wxp::agent {

absl::StatusOr<AgentSummary> RunAgentDaemon(AgentSetup setup) {
  WXP_ASSIGN_OR_RETURN(std::shared_ptr<client::Connection> conn,
                       client::Connection::Open(setup.connection, absl::Now()));
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<CandidateEvaluator> evaluator,
                       MakeCandidateEvaluator(setup.config, setup.config.work_dir()));
  // Metrics live until Run() returns; the agent uses them only within Run().
  std::unique_ptr<AgentMetrics> agent_metrics;
  std::unique_ptr<metrics::MetricsHttpServer> metrics_http;
  if (!setup.config.metrics_address().empty()) {
    agent_metrics = std::make_unique<AgentMetrics>();
    WXP_ASSIGN_OR_RETURN(metrics_http,
                         metrics::MetricsHttpServer::Start({setup.config.metrics_address(),
                                                            setup.config.metrics_allow_remote(),
                                                            &agent_metrics->registry()}));
    std::cerr << "event=metrics_started address=" << setup.config.metrics_address()
              << " port=" << metrics_http->port() << std::endl;
    setup.agent.observer = agent_metrics.get();
  }
  sigset_t signals = BlockShutdownSignals();
  WXP_ASSIGN_OR_RETURN(std::shared_ptr<Agent> agent,
                       Agent::Create(std::move(setup.agent), conn.get(), std::move(evaluator)));
  // The signal thread may outlive this call (sigwait cannot be interrupted portably), so it
  // shares ownership of the agent and of the connection the agent uses.
  std::thread([signals, agent, conn]() mutable {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGTERM || sig == SIGINT) {
      std::cerr << "wxp-agent: stopping on " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
                << " (state is kept; start again to resume)" << std::endl;
      agent->Stop();
    }
  }).detach();
  absl::StatusOr<AgentSummary> summary = agent->Run();
  if (metrics_http) metrics_http->Stop();
  return summary;
}

}  // namespace wxp::agent
