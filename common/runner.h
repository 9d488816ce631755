// The in-process Model Swarms runner: the whole algorithm of SPEC 4 over a set of expert
// parameter vectors, with a pluggable evaluator and no network.
//
// It is the oracle the federated system is checked against (same seed and experts must
// give the same global-best trajectory and bytes), and the engine of `wxpctl simulate` and
// of the quality benchmark. Decisions come from SwarmEngine, arithmetic from swarm_move, so
// nothing here is a second copy of the algorithm: it only sequences the two like a `sync`
// round does (targets for k from the state after k-1; all moves; all evaluations).
#ifndef WXP_COMMON_RUNNER_H_
#define WXP_COMMON_RUNNER_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/evaluator.h"
#include "common/local_trainer.h"
#include "common/space_kind.h"
#include "common/swarm_engine.h"
#include "common/utility.h"

namespace wxp {

// One line of history: the state after iteration `iteration` (0 = initial pool).
struct IterationSummary {
  int iteration = 0;
  double global_best_utility = 0;
  double global_worst_utility = 0;
  double mean_utility = 0;  // mean of every particle's latest (possibly stale) utility
  double step = 0;          // lambda used by this iteration's move (0 for iteration 0)
  int restarts = 0;         // particles restarted in this iteration
  int evaluated = 0;        // evaluations that succeeded in this iteration
  int failed = 0;           // evaluations that returned an error (particle kept stale)
  int trained = 0;          // local trainings applied in this iteration (SPEC 4.4)
  int training_failed = 0;  // local trainings that failed (particle kept its moved position)
  bool dropped = false;     // Dropout-K skipped the whole iteration's evaluations
  bool new_global_best = false;
  int utility_version = 1;  // the utility weights this iteration's utilities are under
};

// A change of the utility weights (dynamic utility, SPEC 4.2), as `wxpctl weights set`
// makes it on a server: the weights of some components replaced (UtilityFunction::
// WithWeights, version + 1) at the start of iteration `iteration`, after iteration - 1 has
// closed and before any particle moves.
struct UtilityChange {
  int iteration = 1;
  std::map<std::string, double> weights;
};

// What a change did: g and g_w re-chosen under the new version, before the iteration moves.
struct AppliedUtilityChange {
  int iteration = 0;
  int version = 0;
  double global_best_utility = 0;
  double global_worst_utility = 0;
  PositionRef global_best;
};

struct RunnerOptions {
  SwarmParams params;
  // The experts' blob ids, one per expert, or empty. When given, the experts enter the pool
  // in PoolOrder(expert_ids), as the server orders them, so a run here and a federated run
  // over the same experts number their particles alike; when empty, in the order given.
  std::vector<std::string> expert_ids;
  // Coordinate groups of the crossover (GrowPool): a ParticleSpace's CrossoverGroups(), so
  // a run here grows the same pool as the server does for that space. 1 for flat vectors.
  int crossover_groups = 1;
  // The kind of space the positions live in (the ParticleSpace's kind); local training
  // needs kWeights.
  SpaceKind space = SpaceKind::kWeights;
  // Local training between iterations (SPEC 4.4): off by default, and then the run is the
  // same, byte for byte, as without these fields. When on, every particle moved in an
  // iteration LocalTrainingDue(every_k, k) is trained by `trainer` (which must then be set
  // and outlive the run) before its evaluation; common/swarm_engine.h says how velocity and
  // personal best follow the trained position.
  LocalTrainingParams local_training;
  LocalTrainer* trainer = nullptr;
  // Dropout-K: probability of skipping a whole iteration's evaluations; Dropout-N:
  // probability of skipping one particle's evaluation. Skipped particles still move and
  // keep their stale utility. Both in [0, 1].
  double drop_iteration = 0;
  double drop_particle = 0;
  // Dynamic utility: weight changes in increasing iteration order (>= 1). Each re-ranks
  // every evaluation so far from its stored scores with the same operation as the server
  // (RerankUnderWeights, common/rerank.h), as a server does that holds every position (the
  // ALWAYS upload policy, and every coefficient space): p_i, g and g_w may then be any
  // position evaluated so far, so the runner keeps them all while changes are pending.
  // Later evaluations compete under the new weights. A change due after the run has ended
  // never happens. Empty: the run is byte for byte the same as without this field.
  std::vector<UtilityChange> utility_changes;
  // Called after the initial evaluation and after every iteration (progress display).
  std::function<void(const IterationSummary&)> on_iteration;
};

struct RunResult {
  std::vector<float> best;  // g, the best position ever evaluated
  double best_utility = 0;
  PositionRef best_ref;
  std::vector<double> initial_utilities;  // per particle, iteration 0
  std::vector<IterationSummary> history;  // iteration 0 first
  Termination termination = Termination::kRunning;
  int num_particles = 0;
  std::vector<AppliedUtilityChange> utility_changes;  // the ones that happened, in order
  int utility_version = 1;                            // the weights g is ranked under
};

// Runs Model Swarms to termination. InvalidArgument for no experts, experts of different
// lengths, invalid params or dropout probabilities, utility changes out of order, before
// iteration 1 or that WithWeights refuses, local training that
// LocalTrainingParams::Validate refuses for `space` or that is on without a trainer; the
// evaluator's error if an initial evaluation fails (the pool cannot be ranked without it).
// Deterministic for a fixed seed and a deterministic evaluator.
absl::StatusOr<RunResult> RunSwarm(const std::vector<std::vector<float>>& experts,
                                   const UtilityFunction& utility, Evaluator& evaluator,
                                   const RunnerOptions& options);

}  // namespace wxp

#endif  // WXP_COMMON_RUNNER_H_
