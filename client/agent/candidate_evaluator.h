// How wxp-agent scores a candidate position (SPEC 7): one interface over the customer's own
// harness (an external command), the built-in evaluators that run in-process (synthetic,
// legal text), and whatever comes next. A failed evaluation is an error status, never a
// crash: the agent reports it to the server as evaluation_failed and the particle keeps
// its previous state.
#ifndef WXP_CLIENT_AGENT_CANDIDATE_EVALUATOR_H_
#define WXP_CLIENT_AGENT_CANDIDATE_EVALUATOR_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/evaluator.h"
#include "common/local_trainer.h"
#include "common/schema.h"
#include "common/token_combination.h"
#include "common/utility.h"

namespace wxp::agent {

// One position to score: its safetensors file (the blob) and where it stands in the swarm.
struct Candidate {
  int particle = 0;
  int iteration = 0;
  std::string position_path;
  const Schema* schema = nullptr;  // the position's layout
  // The candidate's own adapter_config.json when it has one (a decoded coefficient-space
  // position: its rank is not the experts'); empty: the evaluator's configured one.
  std::string adapter_config_json;
};

// A token swarm's expert (SPEC 4.5) as the agent holds it, blobs in its cache: the adapter's
// safetensors file and adapter_config.json, and its base model's safetensors file.
struct TokenExpertFiles {
  std::string adapter_path;
  std::string adapter_config_json;
  std::string base_model_path;
};

class CandidateEvaluator {
 public:
  virtual ~CandidateEvaluator() = default;
  // Component scores (raw, by name). Called from one thread at a time.
  virtual absl::StatusOr<Scores> Evaluate(const Candidate& candidate) = 0;

  // Local training (SPEC 4.4). Whether Train can work at all: an agent whose evaluator
  // cannot train refuses to run the particles of a swarm that asks for local training
  // (client/agent/agent.h). False by default.
  virtual bool CanTrain() const { return false; }
  // The trained position, as long as `request.params` (the moved position, also stored at
  // `position.position_path` and laid out as `*position.schema`), following
  // common/local_trainer.h's LocalTrainer::Train contract: the same request gives the same
  // bytes on the same machine; a failure is an error status, never a crash (the agent then
  // keeps the moved position). Called from one thread at a time. Unimplemented by default.
  virtual absl::StatusOr<std::vector<float>> Train(const TrainingRequest& request,
                                                   const Candidate& position);

  // Token swarms (SPEC 4.5). Loads the swarm's experts (in pool order) once, to score alpha
  // over them combined per token by `combination`. Unimplemented by default: an evaluator
  // that scores adapters cannot combine whole models, and the agent then refuses the
  // swarm's particles. A failure is the experts' fault (unloadable, not of this corpus),
  // named in the status.
  virtual absl::Status PrepareTokenMixture(const std::vector<TokenExpertFiles>& experts,
                                           TokenCombination combination);
  // Component scores of alpha (one coefficient per expert), as Evaluate's.
  // FailedPrecondition before a successful PrepareTokenMixture.
  virtual absl::StatusOr<Scores> EvaluateTokenMixture(int particle, int iteration,
                                                      absl::Span<const float> alpha);
};

// Adapts an in-process wxp::Evaluator (common/evaluator.h): loads the position as fp32.
std::unique_ptr<CandidateEvaluator> InProcessEvaluator(std::unique_ptr<Evaluator> evaluator);

struct ExternalCommandOptions {
  std::vector<std::string> argv;  // program and leading arguments, no shell
  absl::Duration timeout = absl::Minutes(10);
  std::map<std::string, std::string> env;        // added to the agent's environment
  std::string scratch_dir;                       // where candidate PEFT directories are written
  std::string adapter_config_json;               // adapter_config.json of every candidate
  absl::Duration kill_grace = absl::Seconds(5);  // SIGTERM to SIGKILL on timeout
};

// Runs the customer's harness: writes the candidate as a PEFT directory under scratch_dir,
// runs argv + [that directory] (client/agent/external_command.h's RunCommand: its errors,
// time-out and process-group handling), and parses {"scores": {"name": number, ...}} from
// stdout (the whole output, or else its last non-empty line, so harnesses may log to stdout
// before the result). Its stderr is passed through to the agent's log. InvalidArgument,
// naming the command, for output that is not such an object or holds a non-finite or
// non-numeric score. InvalidArgument from the factory for an empty argv, a bad environment
// key or a timeout that is not > 0.
absl::StatusOr<std::unique_ptr<CandidateEvaluator>> ExternalCommandEvaluator(
    ExternalCommandOptions options);

// Parses a harness's stdout as above (exposed for tests and for `wxpctl`).
absl::StatusOr<Scores> ParseScoresOutput(const std::string& stdout_text);

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_CANDIDATE_EVALUATOR_H_
