// wxp-agent as a process: connects to the server, builds the configured evaluator, and runs
// the agent until its particles are done or SIGTERM / SIGINT asks it to stop at the next
// step boundary (its state stays resumable). wxp-agent's main() only gathers flags.
#ifndef WXP_CLIENT_AGENT_AGENT_DAEMON_H_
#define WXP_CLIENT_AGENT_AGENT_DAEMON_H_

#include "absl/status/statusor.h"
#include "client/agent/agent.h"
#include "client/agent/agent_config.h"

namespace wxp::agent {

// Blocks SIGTERM and SIGINT in the calling process (they are taken by a thread of its own)
// and runs. Errors: unusable credentials or evaluator, a locked work directory, and the
// permanent errors of Agent::Run.
absl::StatusOr<AgentSummary> RunAgentDaemon(AgentSetup setup);

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_AGENT_DAEMON_H_
