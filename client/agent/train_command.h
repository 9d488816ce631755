// Local training (SPEC 4.4) by a site's own program, AgentConfig.train_command
// (proto/agent_config.proto): the agent's evaluator, whatever it is, wrapped so that Train
// runs the command instead. The moved position goes to the command as a PEFT directory IN,
// written as the external evaluator writes candidates; the command writes a PEFT directory
// OUT of the same schema; the run is client/agent/external_command.h's RunCommand.
#ifndef WXP_CLIENT_AGENT_TRAIN_COMMAND_H_
#define WXP_CLIENT_AGENT_TRAIN_COMMAND_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/agent/candidate_evaluator.h"

namespace wxp::agent {

// Environment variables the command gets (besides IN and OUT as its last two arguments).
inline constexpr char kTrainInputEnv[] = "WXP_TRAIN_INPUT";
inline constexpr char kTrainOutputEnv[] = "WXP_TRAIN_OUTPUT";
inline constexpr char kTrainStepsEnv[] = "WXP_TRAIN_STEPS";
inline constexpr char kTrainLearningRateEnv[] = "WXP_TRAIN_LEARNING_RATE";  // %.17g: exact
inline constexpr char kTrainBatchEnv[] = "WXP_TRAIN_BATCH";
inline constexpr char kTrainSeedEnv[] = "WXP_TRAIN_SEED";  // decimal uint64
inline constexpr char kTrainParticleEnv[] = "WXP_TRAIN_PARTICLE";
inline constexpr char kTrainIterationEnv[] = "WXP_TRAIN_ITERATION";
// Only when the swarm's local training is private (LocalTraining.dp_epsilon > 0; else
// unset): the command must then train with DP-SGD within this budget, as `wxpctl legal
// train` does; the agent cannot check what another program does with it.
inline constexpr char kTrainDpEpsilonEnv[] = "WXP_TRAIN_DP_EPSILON";  // %.17g
inline constexpr char kTrainDpDeltaEnv[] = "WXP_TRAIN_DP_DELTA";      // %.17g
inline constexpr char kTrainDpClipEnv[] = "WXP_TRAIN_DP_CLIP";        // %.17g
// The most steps all of this site's local training may take in the swarm: the budget
// covers them all.
inline constexpr char kTrainDpMaxStepsEnv[] = "WXP_TRAIN_DP_MAX_STEPS";

struct TrainCommandOptions {
  std::vector<std::string> argv;  // program and leading arguments, no shell
  absl::Duration timeout = absl::Minutes(10);
  std::map<std::string, std::string> env;  // added to the agent's; WXP_TRAIN_* win
  std::string scratch_dir;                 // where IN and OUT are made (and removed after)
  std::string adapter_config_json;  // IN's adapter_config.json; empty: inferred from the schema
  absl::Duration kill_grace = absl::Seconds(5);
};

// `evaluator` with Train replaced by the command (CanTrain() true); Evaluate is
// `evaluator`'s. Train's errors, each a failed training step for the agent: RunCommand's
// (DeadlineExceeded, Internal for a non-zero exit, NotFound), NotFound if OUT holds no
// adapter_model.safetensors, InvalidArgument naming the first difference if its schema is
// not IN's (tensor count, names in order, dtypes, shapes) or naming the first non-finite
// value. InvalidArgument from here for an empty argv, a bad environment key or a timeout
// that is not > 0.
absl::StatusOr<std::unique_ptr<CandidateEvaluator>> WithTrainCommand(
    std::unique_ptr<CandidateEvaluator> evaluator, TrainCommandOptions options);

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_TRAIN_COMMAND_H_
