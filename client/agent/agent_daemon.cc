#include "client/agent/agent_daemon.h"

#include <signal.h>

#include <iostream>
#include <thread>

#include "absl/time/clock.h"
#include "client/agent/evaluator_factory.h"
#include "client/net/connection.h"
#include "common/shutdown_signals.h"
#include "common/status_macros.h"

namespace wxp::agent {

absl::StatusOr<AgentSummary> RunAgentDaemon(AgentSetup setup) {
  WXP_ASSIGN_OR_RETURN(std::shared_ptr<client::Connection> conn,
                       client::Connection::Open(setup.connection, absl::Now()));
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<CandidateEvaluator> evaluator,
                       MakeCandidateEvaluator(setup.config, setup.config.work_dir()));
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
  return agent->Run();
}

}  // namespace wxp::agent
