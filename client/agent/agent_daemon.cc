#include "client/agent/agent_daemon.h"

#include <signal.h>

#include <iostream>
#include <thread>

#include "absl/time/clock.h"
#include "client/agent/agent_metrics.h"
#include "client/agent/auditor.h"
#include "client/agent/evaluator_factory.h"
#include "client/net/connection.h"
#include "common/metrics_http.h"
#include "common/shutdown_signals.h"
#include "common/status_macros.h"

namespace wxp::agent {

namespace {

// SPEC 12: the same daemon, auditing instead of hosting particles.
absl::StatusOr<AgentSummary> RunAuditorDaemon(AgentSetup setup,
                                              std::shared_ptr<client::Connection> conn,
                                              std::unique_ptr<CandidateEvaluator> evaluator) {
  sigset_t signals = BlockShutdownSignals();
  AuditorOptions o;
  o.swarm = setup.agent.swarm;
  o.work_dir = setup.agent.work_dir;
  o.backoff_initial = setup.agent.backoff_initial;
  o.backoff_max = setup.agent.backoff_max;
  WXP_ASSIGN_OR_RETURN(std::shared_ptr<Auditor> auditor,
                       Auditor::Create(std::move(o), conn.get(), std::move(evaluator)));
  std::thread([signals, auditor, conn]() mutable {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGTERM || sig == SIGINT) {
      std::cerr << "wxp-agent: auditor stopping on " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
                << std::endl;
      auditor->Stop();
    }
  }).detach();
  WXP_ASSIGN_OR_RETURN(AuditorSummary audited, auditor->Run());
  AgentSummary summary;
  summary.swarm_done = audited.swarm_done;
  return summary;
}

}  // namespace

absl::StatusOr<AgentSummary> RunAgentDaemon(AgentSetup setup) {
  WXP_ASSIGN_OR_RETURN(std::shared_ptr<client::Connection> conn,
                       client::Connection::Open(setup.connection, absl::Now()));
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<CandidateEvaluator> evaluator,
                       MakeCandidateEvaluator(setup.config, setup.config.work_dir()));
  if (setup.role == Role::kAuditor) {
    return RunAuditorDaemon(std::move(setup), std::move(conn), std::move(evaluator));
  }
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
