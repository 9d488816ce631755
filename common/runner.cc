#include "common/runner.h"

#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/rerank.h"
#include "common/rng.h"
#include "common/status_macros.h"
#include "common/swarm_move.h"
#include "common/swarm_pool.h"

namespace wxp {
namespace {

// The positions the runner keeps: x, v, p per particle, and copies of g and g_w (the
// particles that produced them move on).
struct Buffers {
  std::vector<std::vector<float>> x, v, p;
  std::vector<float> g, gw;
};

absl::Status CheckOptions(const std::vector<std::vector<float>>& experts,
                          const RunnerOptions& options) {
  if (experts.empty()) return absl::InvalidArgumentError("no experts given");
  for (size_t i = 1; i < experts.size(); ++i) {
    if (experts[i].size() != experts[0].size()) {
      return absl::InvalidArgumentError(absl::StrCat("expert ", i, " has ", experts[i].size(),
                                                     " parameters, expert 0 has ",
                                                     experts[0].size()));
    }
  }
  if (!options.expert_ids.empty() && options.expert_ids.size() != experts.size()) {
    return absl::InvalidArgumentError(absl::StrCat("got ", options.expert_ids.size(),
                                                   " expert ids for ", experts.size(), " experts"));
  }
  for (double p : {options.drop_iteration, options.drop_particle}) {
    if (!(p >= 0 && p <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("dropout probabilities must be in [0, 1], got ", p));
    }
  }
  int last_change = 0;
  for (const UtilityChange& c : options.utility_changes) {
    if (c.iteration <= last_change) {
      return absl::InvalidArgumentError(
          absl::StrCat("utility changes must be at increasing iterations >= 1, got ", c.iteration,
                       " after ", last_change));
    }
    last_change = c.iteration;
  }
  WXP_RETURN_IF_ERROR(options.local_training.Validate(options.space));
  if (options.local_training.enabled() && options.trainer == nullptr) {
    return absl::InvalidArgumentError("local training is on but no trainer was given");
  }
  return options.params.Validate();
}

// Trains particle i's moved position x (velocity v) in iteration k. False, with x and v
// untouched, when the trainer fails or returns a position of the wrong length or with a
// non-finite value.
bool TrainParticle(const RunnerOptions& options, int pool_size, int i, int k, float step,
                   std::vector<float>& x, std::vector<float>& v) {
  const TrainingRequest request =
      MakeTrainingRequest(options.local_training, options.params.seed,
                          options.params.max_iterations, pool_size, i, k, x);
  absl::StatusOr<std::vector<float>> trained = options.trainer->Train(request);
  if (!trained.ok() || trained->size() != x.size()) return false;
  for (float f : *trained) {
    if (!std::isfinite(f)) return false;
  }
  FollowTrainedPosition(trained->data(), step, x.data(), v.data(), static_cast<int64_t>(x.size()));
  return true;
}

// The utility versions a run goes through: `utility`, then one per change.
absl::StatusOr<std::vector<UtilityFunction>> UtilityVersions(const UtilityFunction& utility,
                                                             const RunnerOptions& options) {
  std::vector<UtilityFunction> versions = {utility};
  for (const UtilityChange& c : options.utility_changes) {
    absl::StatusOr<UtilityFunction> next = versions.back().WithWeights(c.weights);
    if (!next.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("utility change at iteration ", c.iteration, ": ", next.status().message()));
    }
    versions.push_back(*std::move(next));
  }
  return versions;
}

// Every evaluation of a run with utility changes ahead, bytes included: a re-rank may
// choose any of them as p_i, g or g_w.
struct EvaluationLog {
  std::vector<StoredEvaluation> evaluations;
  std::map<std::pair<int, int>, std::vector<float>> positions;
  const std::vector<float>& at(const PositionRef& r) const {
    return positions.at({r.particle, r.iteration});
  }
};

double MeanUtility(const SwarmEngine& engine) {
  double sum = 0;
  for (int i = 0; i < engine.num_particles(); ++i) sum += engine.particle(i).utility;
  return sum / engine.num_particles();
}

}  // namespace

absl::StatusOr<RunResult> RunSwarm(const std::vector<std::vector<float>>& experts,
                                   const UtilityFunction& utility, Evaluator& evaluator,
                                   const RunnerOptions& options) {
  WXP_RETURN_IF_ERROR(CheckOptions(experts, options));
  const SwarmParams& params = options.params;
  const int n_experts = static_cast<int>(experts.size());
  const int pool = params.ResolvedPoolSize(n_experts);
  const int64_t dim = static_cast<int64_t>(experts[0].size());
  WXP_ASSIGN_OR_RETURN(SwarmEngine engine, SwarmEngine::Create(params, pool));

  Buffers buf;
  std::vector<std::vector<float>> ordered;
  if (options.expert_ids.empty()) {
    ordered = experts;
  } else {
    for (int i : PoolOrder(options.expert_ids)) ordered.push_back(experts[i]);
  }
  WXP_ASSIGN_OR_RETURN(buf.x,
                       GrowPool(std::move(ordered), pool, params.seed, options.crossover_groups));
  buf.p = buf.x;
  buf.v.assign(pool, std::vector<float>(dim, 0.0f));

  WXP_ASSIGN_OR_RETURN(const std::vector<UtilityFunction> versions,
                       UtilityVersions(utility, options));
  size_t version = 0;  // index into versions: the weights in force
  size_t next_change = 0;
  EvaluationLog log;
  auto evaluate = [&](int i, int k) -> absl::StatusOr<double> {
    WXP_ASSIGN_OR_RETURN(Scores scores, evaluator.Evaluate({i, k, buf.x[i]}));
    WXP_ASSIGN_OR_RETURN(double u, versions[version].Combine(scores));
    if (next_change < options.utility_changes.size()) {
      log.evaluations.push_back({PositionRef{i, k}, std::move(scores), true});
      log.positions[{i, k}] = buf.x[i];
    }
    return u;
  };

  RunResult result;
  result.num_particles = pool;
  IterationSummary initial;
  initial.utility_version = versions[version].version();
  for (int i = 0; i < pool; ++i) {
    absl::StatusOr<double> u = evaluate(i, 0);
    if (!u.ok()) {
      return absl::Status(u.status().code(), absl::StrCat("initial evaluation of particle ", i,
                                                          ": ", u.status().message()));
    }
    WXP_ASSIGN_OR_RETURN(RecordOutcome out, engine.RecordInitial(i, *u));
    if (out.new_global_best) buf.g = buf.x[i];
    if (out.new_global_worst) buf.gw = buf.x[i];
    result.initial_utilities.push_back(*u);
    ++initial.evaluated;
  }
  // Initial velocities need the whole evaluated pool only for kTowardBest; drawing them
  // here keeps one code path for every mode.
  for (int i = 0; i < pool; ++i) {
    if (params.initial_velocity == InitialVelocityMode::kTowardBest) {
      Difference(buf.g.data(), buf.x[i].data(), buf.v[i].data(), dim);
    } else if (int j = engine.InitialVelocityPartner(i); j >= 0) {
      Difference(buf.x[j].data(), buf.x[i].data(), buf.v[i].data(), dim);
    }
  }
  initial.global_best_utility = engine.global_best_utility();
  initial.global_worst_utility = engine.global_worst_utility();
  initial.mean_utility = MeanUtility(engine);
  initial.new_global_best = true;
  result.history.push_back(initial);
  if (options.on_iteration) options.on_iteration(initial);

  for (int k = 1; engine.Finished() == Termination::kRunning; ++k) {
    if (next_change < options.utility_changes.size() &&
        options.utility_changes[next_change].iteration == k) {
      // As SetUtilityWeights on a server between rounds k - 1 and k.
      ++version;
      ++next_change;
      WXP_RETURN_IF_ERROR(RerankUnderWeights(versions[version], log.evaluations, &engine).status());
      buf.g = log.at(engine.global_best());
      buf.gw = log.at(engine.global_worst());
      for (int i = 0; i < pool; ++i) {
        if (const PositionRef p = engine.particle(i).personal_best; p.valid()) buf.p[i] = log.at(p);
      }
      result.utility_changes.push_back({k, versions[version].version(),
                                        engine.global_best_utility(), engine.global_worst_utility(),
                                        engine.global_best()});
      if (next_change == options.utility_changes.size()) log = EvaluationLog();
    }
    IterationSummary summary;
    summary.iteration = k;
    summary.utility_version = versions[version].version();
    // Every target of iteration k is taken before any report of k, as in a sync round.
    for (int i = 0; i < pool; ++i) {
      WXP_ASSIGN_OR_RETURN(MoveTargets t, engine.StartIteration(i, k));
      if (t.restart) {
        RestartParticle(buf.x[i].data(), buf.v[i].data(), buf.p[i].data(), dim);
        ++summary.restarts;
      }
      const MoveCoefficients mc{static_cast<float>(t.a), static_cast<float>(t.b),
                                static_cast<float>(t.c), static_cast<float>(t.d),
                                static_cast<float>(t.step)};
      MoveParticle(mc, buf.x[i].data(), buf.v[i].data(), buf.p[i].data(), buf.g.data(),
                   buf.gw.data(), dim);
      summary.step = t.step;
      if (LocalTrainingDue(options.local_training.every_k, k)) {
        if (TrainParticle(options, pool, i, k, mc.step, buf.x[i], buf.v[i])) {
          ++summary.trained;
        } else {
          ++summary.training_failed;
        }
      }
    }
    summary.dropped = options.drop_iteration > 0 &&
                      DrawUniform(params.seed, RngStream::kDropout, k, 0) < options.drop_iteration;
    for (int i = 0; i < pool && !summary.dropped; ++i) {
      if (options.drop_particle > 0 &&
          DrawUniform(params.seed, RngStream::kDropout, k, 1 + i) < options.drop_particle) {
        continue;
      }
      absl::StatusOr<double> u = evaluate(i, k);
      if (!u.ok()) {
        ++summary.failed;
        continue;
      }
      WXP_ASSIGN_OR_RETURN(RecordOutcome out, engine.Record(i, k, *u));
      if (out.new_personal_best) buf.p[i] = buf.x[i];
      if (out.new_global_best) buf.g = buf.x[i];
      if (out.new_global_worst) buf.gw = buf.x[i];
      summary.new_global_best |= out.new_global_best;
      ++summary.evaluated;
    }
    WXP_RETURN_IF_ERROR(engine.CloseIteration(k));
    summary.global_best_utility = engine.global_best_utility();
    summary.global_worst_utility = engine.global_worst_utility();
    summary.mean_utility = MeanUtility(engine);
    result.history.push_back(summary);
    if (options.on_iteration) options.on_iteration(summary);
  }
  result.termination = engine.Finished();
  result.best = std::move(buf.g);
  result.best_utility = engine.global_best_utility();
  result.best_ref = engine.global_best();
  result.utility_version = versions[version].version();
  return result;
}

}  // namespace wxp
