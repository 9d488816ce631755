// The decision-making half of Model Swarms (SPEC 4): everything that needs utilities but
// never touches weights. It decides crossover recipes, initial-velocity partners, the
// per-particle coefficients and step length of each iteration, restart flags, personal /
// global best / global worst bookkeeping and termination.
//
// The server owns one SwarmEngine per swarm; the in-process runner owns one too, so both
// take identical decisions for the same seed. The tensor half (the move itself) is in
// common/swarm_move.h and runs wherever the weights are (the agent, or the runner).
//
// Positions are never stored here: an evaluated position is named by a PositionRef
// (particle, iteration), which the owner maps to bytes (a blob id, a buffer).
//
// Thread-safety: none; callers serialise access (the server holds a per-swarm mutex).
#ifndef WXP_COMMON_SWARM_ENGINE_H_
#define WXP_COMMON_SWARM_ENGINE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wxp {

enum class InitialVelocityMode {
  kRandomPeer,  // v_i = x_j - x_i for a uniformly chosen j != i (the paper's default)
  kZero,        // v_i = 0
  kTowardBest,  // v_i = g - x_i, after the initial evaluation
};

// Resolved hyperparameters of SPEC 4, defaults as documented there. pool_size 0 means 2n.
struct SwarmParams {
  int pool_size = 0;
  double inertia = 0.2;
  double cognitive = 0.3;
  double social = 0.4;
  double repel = 0.05;
  bool repel_enabled = true;
  double step_length = 0.5;
  double step_decay = 0.95;
  double min_step_length = 0.1;
  int patience = 5;
  int restart_patience = 3;
  int restart_cooldown = 3;
  int max_iterations = 50;
  bool weight_randomness = true;
  uint64_t seed = 0;
  InitialVelocityMode initial_velocity = InitialVelocityMode::kRandomPeer;

  // InvalidArgument naming the first offending field: non-finite or negative weights,
  // all four weights zero, step_decay outside (0, 1], min_step_length > step_length,
  // non-positive patience / max_iterations, negative counts.
  absl::Status Validate() const;
  // pool_size resolved against the number of experts (>= num_experts).
  int ResolvedPoolSize(int num_experts) const;
};

// Pool expansion step: particle `child` = w * x[parent_a] + (1 - w) * x[parent_b].
struct Crossover {
  int child = 0;
  int parent_a = 0;
  int parent_b = 0;
  double w = 0;  // drawn from U(0, 2): half interpolation, half extrapolation
  // Planned with groups > 1: one weight per coordinate group, each from U(0, 2), with
  // group_w[0] == w (see GrowPool). Empty with one group.
  std::vector<double> group_w;
};

// SPEC 4 step 1's stable order of the experts in the pool: ascending by blob id (the
// SHA-256 of the expert's bytes), so the pool, and with it every decision seeded from it,
// depends only on which experts there are, never on the order they arrived in. Returns the
// indices into `expert_ids` in pool order: expert PoolOrder(ids)[i] becomes particle i.
// Equal ids keep their input order.
std::vector<int> PoolOrder(const std::vector<std::string>& expert_ids);

// The crossovers that grow `num_experts` experts to `pool_size` particles, in order
// (children may be parents of later children). Experts are particles 0..n-1. With
// `groups` > 1 each child also draws a weight per coordinate group (Crossover::group_w);
// the parents and w are the same draws as with one group.
// InvalidArgument if num_experts < 1, pool_size < num_experts, groups < 1, or growth is
// needed from a single expert (two distinct parents are required).
absl::StatusOr<std::vector<Crossover>> PlanPool(int num_experts, int pool_size, uint64_t seed,
                                                int groups = 1);

// Local training (SPEC 4.4; settings in common/local_trainer.h). In an iteration k where
// LocalTrainingDue(every_k, k), each particle, after its move (and restart), is trained
// from its moved position x' to x'' by a LocalTrainer seeded with
// LocalTrainingSeed(seed, particle, k), and then evaluated at x''. How the particle follows
// x'' (FollowTrainedPosition in common/swarm_move.h, step = this iteration's lambda):
//
//   x <- x'',   v <- v' + (x'' - x') / lambda
//
// so the invariant of every move, x_k = x_{k-1} + lambda_k * v_k, still holds: v is the
// displacement the particle really took in iteration k (move and training together), in
// velocity units. Why this rule:
//  * momentum carries what training found: the next move's inertia term a * v repeats a
//    fraction of the training displacement, as it repeats any other displacement;
//  * the swarm's own part of v (v') is kept exactly. The alternative v <- x'' - x_{k-1}
//    would mix units and scale v' by lambda in every training iteration, starving the
//    swarm's momentum; leaving v <- v' would make training invisible to momentum;
//  * with lambda == 0 (possible only with min_step_length 0 after extreme decay) no
//    displacement can be expressed in velocity units, and v stays v'.
// Personal best, g and g_w need no rule of their own: the evaluation is of x'', so p_i, g
// and g_w see the trained position's utility through Record, and a restart returns to a
// trained p_i. A failed training (error, wrong length, non-finite value) leaves x', v'.
// Training is part of the move: it runs for every particle that moves in a due
// iteration, whether or not Dropout then skips its evaluation.
//
// True when iteration k >= 1 trains: every_k > 0 and k % every_k == 0.
bool LocalTrainingDue(int every_k, int iteration);
// The seed of particle i's training in iteration k: a pure function of (swarm seed, i, k)
// on its own RngStream, like every other draw, so any site derives the same one.
uint64_t LocalTrainingSeed(uint64_t swarm_seed, int particle, int iteration);

// An evaluated position: particle `particle`'s position after iteration `iteration`
// (iteration 0 is the initial pool).
struct PositionRef {
  int particle = -1;
  int iteration = -1;
  bool valid() const { return particle >= 0; }
  friend bool operator==(const PositionRef& a, const PositionRef& b) {
    return a.particle == b.particle && a.iteration == b.iteration;
  }
};

// What one particle needs for one iteration's move (SPEC 4 steps 5-6).
struct MoveTargets {
  int iteration = 0;  // k >= 1
  // Normalised coefficients: a + b + c + d == 1 (d == 0 when repel is off).
  double a = 0, b = 0, c = 0, d = 0;
  double step = 0;       // lambda_k, the same for every particle of iteration k
  bool restart = false;  // x <- p, v <- 0 before the move
  PositionRef personal_best;
  PositionRef global_best;
  PositionRef global_worst;
};

// What a recorded evaluation changed.
struct RecordOutcome {
  bool new_personal_best = false;
  bool new_global_best = false;
  bool new_global_worst = false;
};

enum class Termination { kRunning, kPatience, kMaxIterations, kStopped };
std::string TerminationName(Termination t);

// Per-particle bookkeeping, readable for status displays and persistence.
struct ParticleRecord {
  bool evaluated = false;  // has at least one utility
  double utility = 0;      // latest utility (stale if the particle was skipped)
  int utility_iteration = -1;
  double best_utility = 0;
  PositionRef personal_best;
  // Iterations since p last improved; a skipped iteration (no report) counts as one
  // without improvement. Accounted through iteration `stale_through`.
  int stale_iterations = 0;
  int stale_through = 0;
  int cooldown = 0;
  int restarts = 0;
  int started_iteration = 0;  // the last iteration k whose targets were issued
  bool restart_at_started = false;
  bool recorded_started = false;  // a utility was recorded for started_iteration

  friend bool operator==(const ParticleRecord& a, const ParticleRecord& b) {
    return std::tie(a.evaluated, a.utility, a.utility_iteration, a.best_utility, a.personal_best,
                    a.stale_iterations, a.stale_through, a.cooldown, a.restarts,
                    a.started_iteration, a.restart_at_started, a.recorded_started) ==
           std::tie(b.evaluated, b.utility, b.utility_iteration, b.best_utility, b.personal_best,
                    b.stale_iterations, b.stale_through, b.cooldown, b.restarts,
                    b.started_iteration, b.restart_at_started, b.recorded_started);
  }
};

// Everything a SwarmEngine knows beyond its params: what the server persists after each
// state change and restores after a restart.
struct SwarmEngineState {
  std::vector<ParticleRecord> particles;
  PositionRef global_best;
  PositionRef global_worst;
  double global_best_utility = 0;
  double global_worst_utility = 0;
  int closed_iterations = 0;
  int last_global_improvement = 0;
  bool stopped = false;
};

class SwarmEngine {
 public:
  // InvalidArgument if params are invalid or num_particles < 1.
  static absl::StatusOr<SwarmEngine> Create(const SwarmParams& params, int num_particles);
  // An engine continuing from a saved state: it takes exactly the decisions the engine that
  // produced `state` would have taken next. InvalidArgument if params are invalid, there
  // are no particles, or the state is inconsistent (references to unknown particles,
  // negative counters).
  static absl::StatusOr<SwarmEngine> Restore(const SwarmParams& params, SwarmEngineState state);
  SwarmEngineState state() const;

  const SwarmParams& params() const { return params_; }
  int num_particles() const { return static_cast<int>(particles_.size()); }

  // Initial-velocity partner j for particle i under kRandomPeer (v_i = x_j - x_i), or -1
  // when there is no other particle or the mode is not kRandomPeer.
  int InitialVelocityPartner(int particle) const;

  // Records the utility of particle i's initial position (iteration 0). Every particle must
  // be recorded once before iteration 1 starts. InvalidArgument for a non-finite utility,
  // FailedPrecondition if already recorded or iterations have begun.
  absl::StatusOr<RecordOutcome> RecordInitial(int particle, double utility);
  bool initial_complete() const;

  // The step length of iteration k >= 1: max(step_length * decay^(k-1), min_step_length).
  double StepLength(int iteration) const;

  // Starts iteration k for particle i and returns its targets. Applies the restart rule
  // (SPEC 4 step 5) exactly once per (particle, iteration); calling it again for the same k
  // returns the same targets. k must exceed the particle's last started iteration: a
  // particle that missed rounds (a straggler in sync mode) rejoins at the current one, and
  // the iterations it missed count as iterations without improvement.
  // FailedPrecondition if the initial evaluation is incomplete, the swarm is finished, or k
  // is out of sequence.
  absl::StatusOr<MoveTargets> StartIteration(int particle, int iteration);

  // Records the utility of particle i's position after iteration k (which must be the
  // particle's started iteration). p_i updates on strict improvement; g / g_w are all-time.
  absl::StatusOr<RecordOutcome> Record(int particle, int iteration, double utility);

  // Closes iteration k (in sync mode: the round closed; in async mode: every live particle
  // has moved past k): advances the patience counter. Iterations close in order.
  absl::Status CloseIteration(int iteration);

  // Dynamic utility (SPEC 4.2): the swarm's evaluations re-weighted under new utility
  // weights, nothing re-evaluated. `evaluations` holds every successful evaluation so far,
  // each with its utility under the new weights and whether its position may be a target
  // (`eligible`: the owner holds its bytes, so p_i, g and g_w can point at it). Each
  // particle's latest utility takes its new value; p_i, g and g_w are re-chosen among the
  // eligible positions, ties going to the earliest (iteration, particle); a particle with
  // no eligible position keeps no p_i. g is chosen among the eligible positions that may
  // lead (`may_lead`: false for a claim no auditor has confirmed, SPEC 12), or among all
  // eligible ones when none may. Counters (patience, restarts, started iterations) are
  // untouched. InvalidArgument for an unknown particle, a negative iteration or a
  // non-finite utility; nothing changes then.
  struct Rescored {
    PositionRef position;
    double utility = 0;
    bool eligible = false;
    bool may_lead = true;
  };
  absl::Status Rerank(const std::vector<Rescored>& evaluations);

  // Marks the swarm stopped by an operator; Finished() then reports kStopped.
  void Stop() { stopped_ = true; }

  // Step 4: kPatience when g has not improved for `patience` closed iterations,
  // kMaxIterations after max_iterations closed iterations.
  Termination Finished() const;

  int closed_iterations() const { return closed_iterations_; }
  int iterations_since_improvement() const { return since_improvement_; }
  PositionRef global_best() const { return global_best_; }
  PositionRef global_worst() const { return global_worst_; }
  double global_best_utility() const { return global_best_utility_; }
  double global_worst_utility() const { return global_worst_utility_; }
  const ParticleRecord& particle(int i) const { return particles_[i]; }

 private:
  SwarmEngine(const SwarmParams& params, int num_particles);
  absl::Status CheckParticle(int particle) const;
  RecordOutcome UpdateBests(int particle, int iteration, double utility);

  SwarmParams params_;
  std::vector<ParticleRecord> particles_;
  PositionRef global_best_;
  PositionRef global_worst_;
  double global_best_utility_ = 0;
  double global_worst_utility_ = 0;
  int closed_iterations_ = 0;
  int since_improvement_ = 0;
  int last_global_improvement_ = 0;  // iteration whose report last raised g
  bool stopped_ = false;
};

}  // namespace wxp

#endif  // WXP_COMMON_SWARM_ENGINE_H_
