// Builds the evaluator an AgentConfig names (SPEC 7): the customer's external command, the
// built-in legal-text model, or the synthetic utility; with train_command, wrapped so that
// local training (SPEC 4.4) runs that command (client/agent/train_command.h).
#ifndef WXP_CLIENT_AGENT_EVALUATOR_FACTORY_H_
#define WXP_CLIENT_AGENT_EVALUATOR_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/agent/candidate_evaluator.h"
#include "proto/agent_config.pb.h"

namespace wxp::agent {

// InvalidArgument naming the field when none or an invalid one is configured (evaluator or
// train_command). Paths in the
// config must already be resolved. `work_dir` holds the evaluator's scratch files.
absl::StatusOr<std::unique_ptr<CandidateEvaluator>> MakeCandidateEvaluator(
    const wxp::v1::AgentConfig& config, const std::string& work_dir);

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_EVALUATOR_FACTORY_H_
