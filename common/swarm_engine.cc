#include "common/swarm_engine.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/rng.h"

namespace wxp {
namespace {

bool NonNegativeFinite(double x) { return std::isfinite(x) && x >= 0; }

}  // namespace

absl::Status SwarmParams::Validate() const {
  const struct {
    const char* name;
    double value;
  } weights[] = {
      {"inertia", inertia}, {"cognitive", cognitive}, {"social", social}, {"repel", repel}};
  for (const auto& w : weights) {
    if (!NonNegativeFinite(w.value)) {
      return absl::InvalidArgumentError(
          absl::StrCat(w.name, " must be a finite number >= 0, got ", w.value));
    }
  }
  if (inertia + cognitive + social + (repel_enabled ? repel : 0) <= 0) {
    return absl::InvalidArgumentError(
        "inertia, cognitive, social and repel are all zero: particles could never move");
  }
  if (!(std::isfinite(step_length) && step_length > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("step_length must be finite and > 0, got ", step_length));
  }
  if (!(std::isfinite(step_decay) && step_decay > 0 && step_decay <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("step_decay must be in (0, 1], got ", step_decay));
  }
  if (!NonNegativeFinite(min_step_length) || min_step_length > step_length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "min_step_length must be in [0, step_length=", step_length, "], got ", min_step_length));
  }
  if (patience < 1) {
    return absl::InvalidArgumentError(absl::StrCat("patience must be >= 1, got ", patience));
  }
  if (max_iterations < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_iterations must be >= 1, got ", max_iterations));
  }
  if (restart_patience < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("restart_patience must be >= 1, got ", restart_patience));
  }
  if (restart_cooldown < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("restart_cooldown must be >= 0, got ", restart_cooldown));
  }
  if (pool_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("pool_size must be >= 0 (0 means twice the experts), got ", pool_size));
  }
  return absl::OkStatus();
}

int SwarmParams::ResolvedPoolSize(int num_experts) const {
  return pool_size == 0 ? 2 * num_experts : std::max(pool_size, num_experts);
}

std::vector<int> PoolOrder(const std::vector<std::string>& expert_ids) {
  std::vector<int> order(expert_ids.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return expert_ids[a] < expert_ids[b]; });
  return order;
}

absl::StatusOr<std::vector<Crossover>> PlanPool(int num_experts, int pool_size, uint64_t seed,
                                                int groups) {
  if (groups < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("crossover needs at least one coordinate group, got ", groups));
  }
  if (num_experts < 1) {
    return absl::InvalidArgumentError("a swarm needs at least one expert");
  }
  if (pool_size < num_experts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool_size ", pool_size, " is smaller than the number of experts ", num_experts));
  }
  if (pool_size > num_experts && num_experts < 2) {
    return absl::InvalidArgumentError(
        "growing the pool by crossover needs at least two distinct experts");
  }
  std::vector<Crossover> plan;
  plan.reserve(pool_size - num_experts);
  for (int child = num_experts; child < pool_size; ++child) {
    // Parents are drawn from the pool as it stands, so children can breed.
    const uint64_t m = child;
    Crossover c;
    c.child = child;
    c.parent_a = static_cast<int>(DrawIndex(seed, RngStream::kPool, m, child, 0));
    int b = static_cast<int>(DrawIndex(seed, RngStream::kPool, m - 1, child, 1));
    if (b >= c.parent_a) ++b;
    c.parent_b = b;
    c.w = 2.0 * DrawUniform(seed, RngStream::kPool, child, 2);
    if (groups > 1) {
      // Group 0 keeps w, so the third coordinate of the draw only adds new weights.
      c.group_w.push_back(c.w);
      for (int g = 1; g < groups; ++g) {
        c.group_w.push_back(2.0 * DrawUniform(seed, RngStream::kPool, child, 2, g));
      }
    }
    plan.push_back(std::move(c));
  }
  return plan;
}

bool LocalTrainingDue(int every_k, int iteration) {
  return every_k > 0 && iteration >= 1 && iteration % every_k == 0;
}

uint64_t LocalTrainingSeed(uint64_t swarm_seed, int particle, int iteration) {
  return DrawBits(swarm_seed, RngStream::kLocalTraining, static_cast<uint64_t>(iteration),
                  static_cast<uint64_t>(particle));
}

std::string TerminationName(Termination t) {
  switch (t) {
    case Termination::kRunning:
      return "running";
    case Termination::kPatience:
      return "patience";
    case Termination::kMaxIterations:
      return "max_iterations";
    case Termination::kStopped:
      return "stopped";
  }
  return "unknown";
}

SwarmEngine::SwarmEngine(const SwarmParams& params, int num_particles)
    : params_(params), particles_(num_particles) {}

absl::StatusOr<SwarmEngine> SwarmEngine::Create(const SwarmParams& params, int num_particles) {
  if (absl::Status s = params.Validate(); !s.ok()) return s;
  if (num_particles < 1) {
    return absl::InvalidArgumentError("a swarm needs at least one particle");
  }
  return SwarmEngine(params, num_particles);
}

absl::StatusOr<SwarmEngine> SwarmEngine::Restore(const SwarmParams& params,
                                                 SwarmEngineState state) {
  absl::StatusOr<SwarmEngine> engine = Create(params, static_cast<int>(state.particles.size()));
  if (!engine.ok()) return engine.status();
  const int n = static_cast<int>(state.particles.size());
  auto valid_ref = [n](const PositionRef& r) {
    return !r.valid() || (r.particle < n && r.iteration >= 0);
  };
  if (!valid_ref(state.global_best) || !valid_ref(state.global_worst) ||
      state.closed_iterations < 0 || state.last_global_improvement < 0) {
    return absl::InvalidArgumentError("saved swarm engine state is inconsistent");
  }
  for (const ParticleRecord& p : state.particles) {
    if (!valid_ref(p.personal_best) || p.stale_iterations < 0 || p.cooldown < 0 || p.restarts < 0 ||
        p.started_iteration < 0) {
      return absl::InvalidArgumentError("saved particle state is inconsistent");
    }
  }
  engine->particles_ = std::move(state.particles);
  engine->global_best_ = state.global_best;
  engine->global_worst_ = state.global_worst;
  engine->global_best_utility_ = state.global_best_utility;
  engine->global_worst_utility_ = state.global_worst_utility;
  engine->closed_iterations_ = state.closed_iterations;
  engine->last_global_improvement_ = state.last_global_improvement;
  engine->since_improvement_ = std::max(0, state.closed_iterations - state.last_global_improvement);
  engine->stopped_ = state.stopped;
  return engine;
}

SwarmEngineState SwarmEngine::state() const {
  SwarmEngineState s;
  s.particles = particles_;
  s.global_best = global_best_;
  s.global_worst = global_worst_;
  s.global_best_utility = global_best_utility_;
  s.global_worst_utility = global_worst_utility_;
  s.closed_iterations = closed_iterations_;
  s.last_global_improvement = last_global_improvement_;
  s.stopped = stopped_;
  return s;
}

absl::Status SwarmEngine::CheckParticle(int particle) const {
  if (particle < 0 || particle >= num_particles()) {
    return absl::NotFoundError(absl::StrCat("particle ", particle, " does not exist (swarm has ",
                                            num_particles(), " particles)"));
  }
  return absl::OkStatus();
}

int SwarmEngine::InitialVelocityPartner(int particle) const {
  const int n = num_particles();
  if (params_.initial_velocity != InitialVelocityMode::kRandomPeer || n < 2 || particle < 0 ||
      particle >= n) {
    return -1;
  }
  int j = static_cast<int>(DrawIndex(params_.seed, RngStream::kInitialVelocity, n - 1, particle));
  return j >= particle ? j + 1 : j;
}

absl::Status SwarmEngine::Rerank(const std::vector<Rescored>& evaluations) {
  for (const Rescored& e : evaluations) {
    if (absl::Status s = CheckParticle(e.position.particle); !s.ok()) {
      return absl::InvalidArgumentError(s.message());
    }
    if (e.position.iteration < 0 || !std::isfinite(e.utility)) {
      return absl::InvalidArgumentError(absl::StrCat("re-ranked evaluation of particle ",
                                                     e.position.particle, " iteration ",
                                                     e.position.iteration, " is invalid"));
    }
  }
  std::vector<const Rescored*> order;
  for (const Rescored& e : evaluations) order.push_back(&e);
  std::stable_sort(order.begin(), order.end(), [](const Rescored* a, const Rescored* b) {
    return std::make_pair(a->position.iteration, a->position.particle) <
           std::make_pair(b->position.iteration, b->position.particle);
  });
  global_best_ = global_worst_ = PositionRef{};
  for (ParticleRecord& p : particles_) p.personal_best = PositionRef{};
  bool any_may_lead = false;
  for (const Rescored& e : evaluations) any_may_lead |= e.eligible && e.may_lead;
  for (const Rescored* e : order) {
    const PositionRef& ref = e->position;
    const double value = e->utility;
    ParticleRecord& p = particles_[ref.particle];
    if (p.utility_iteration == ref.iteration) p.utility = value;
    if (!e->eligible) continue;
    if (!p.personal_best.valid() || value > p.best_utility) {
      p.personal_best = ref;
      p.best_utility = value;
    }
    if ((e->may_lead || !any_may_lead) && (!global_best_.valid() || value > global_best_utility_)) {
      global_best_ = ref;
      global_best_utility_ = value;
    }
    if (!global_worst_.valid() || value < global_worst_utility_) {
      global_worst_ = ref;
      global_worst_utility_ = value;
    }
  }
  return absl::OkStatus();
}

RecordOutcome SwarmEngine::UpdateBests(int particle, int iteration, double utility) {
  RecordOutcome out;
  ParticleRecord& p = particles_[particle];
  p.utility = utility;
  p.utility_iteration = iteration;
  if (!p.personal_best.valid() || utility > p.best_utility) {
    p.best_utility = utility;
    p.personal_best = {particle, iteration};
    out.new_personal_best = true;
  }
  p.evaluated = true;
  // An exact tie goes to the position first in (iteration, particle) order, as the
  // in-process runner (which records in that order) and Rerank choose: what a round
  // decides must not depend on the order its reports arrive in.
  auto precedes = [&](const PositionRef& other) {
    return std::make_pair(iteration, particle) < std::make_pair(other.iteration, other.particle);
  };
  const bool better = !global_best_.valid() || utility > global_best_utility_;
  if (better || (utility == global_best_utility_ && precedes(global_best_))) {
    global_best_ = {particle, iteration};
    global_best_utility_ = utility;
    if (better) last_global_improvement_ = iteration;
    out.new_global_best = true;
  }
  if (!global_worst_.valid() || utility < global_worst_utility_ ||
      (utility == global_worst_utility_ && precedes(global_worst_))) {
    global_worst_ = {particle, iteration};
    global_worst_utility_ = utility;
    out.new_global_worst = true;
  }
  return out;
}

absl::StatusOr<RecordOutcome> SwarmEngine::RecordInitial(int particle, double utility) {
  if (absl::Status s = CheckParticle(particle); !s.ok()) return s;
  if (!std::isfinite(utility)) {
    return absl::InvalidArgumentError(
        absl::StrCat("utility of particle ", particle, " is not finite"));
  }
  if (particles_[particle].evaluated) {
    return absl::FailedPreconditionError(
        absl::StrCat("particle ", particle, " already has its initial evaluation"));
  }
  return UpdateBests(particle, 0, utility);
}

bool SwarmEngine::initial_complete() const {
  return std::all_of(particles_.begin(), particles_.end(),
                     [](const ParticleRecord& p) { return p.evaluated; });
}

double SwarmEngine::StepLength(int iteration) const {
  // Equivalent to decaying once per iteration with the floor applied each time, because
  // decay <= 1 makes max(max(x*d, m)*d, m) == max(x*d*d, m).
  const double decayed = params_.step_length * std::pow(params_.step_decay, iteration - 1);
  return std::max(decayed, params_.min_step_length);
}

absl::StatusOr<MoveTargets> SwarmEngine::StartIteration(int particle, int iteration) {
  if (absl::Status s = CheckParticle(particle); !s.ok()) return s;
  if (!initial_complete()) {
    return absl::FailedPreconditionError(
        "the initial evaluation is incomplete: every particle must be scored first");
  }
  ParticleRecord& p = particles_[particle];
  if (iteration != p.started_iteration && Finished() != Termination::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat("the swarm has finished (", TerminationName(Finished()), ")"));
  }
  if (iteration > p.started_iteration) {
    // Iterations the particle started but never reported count as not improving p.
    if (p.stale_through < iteration - 1) {
      p.stale_iterations += (iteration - 1) - p.stale_through;
      p.stale_through = iteration - 1;
    }
    p.started_iteration = iteration;
    p.recorded_started = false;
    p.restart_at_started = p.stale_iterations >= params_.restart_patience && p.cooldown == 0;
    if (p.restart_at_started) {
      p.cooldown = params_.restart_cooldown;
      ++p.restarts;
    } else {
      p.cooldown = std::max(0, p.cooldown - 1);
    }
  } else if (iteration != p.started_iteration || iteration < 1) {
    return absl::FailedPreconditionError(absl::StrCat("particle ", particle, " is at iteration ",
                                                      p.started_iteration, "; iteration ",
                                                      iteration, " is out of sequence"));
  }

  MoveTargets t;
  t.iteration = iteration;
  double r[4] = {1, 1, 1, 1};
  if (params_.weight_randomness) {
    for (int j = 0; j < 4; ++j) {
      r[j] = DrawUniform(params_.seed, RngStream::kCoefficients, iteration, particle, j);
    }
  }
  double a = r[0] * params_.inertia, b = r[1] * params_.cognitive, c = r[2] * params_.social,
         d = params_.repel_enabled ? r[3] * params_.repel : 0.0;
  double sum = a + b + c + d;
  if (sum <= 0) {
    // Every draw hit exactly zero (probability ~2^-200): keep the old velocity.
    a = 1, b = c = d = 0, sum = 1;
  }
  t.a = a / sum;
  t.b = b / sum;
  t.c = c / sum;
  t.d = d / sum;
  t.step = StepLength(iteration);
  t.restart = p.restart_at_started;
  t.personal_best = p.personal_best;
  t.global_best = global_best_;
  t.global_worst = global_worst_;
  return t;
}

absl::StatusOr<RecordOutcome> SwarmEngine::Record(int particle, int iteration, double utility) {
  if (absl::Status s = CheckParticle(particle); !s.ok()) return s;
  if (!std::isfinite(utility)) {
    return absl::InvalidArgumentError(
        absl::StrCat("utility of particle ", particle, " is not finite"));
  }
  ParticleRecord& p = particles_[particle];
  if (iteration != p.started_iteration || iteration < 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "particle ", particle, " was given iteration ", p.started_iteration, ", not ", iteration));
  }
  if (p.recorded_started) {
    return absl::AlreadyExistsError(
        absl::StrCat("particle ", particle, " already reported ", "iteration ", iteration));
  }
  p.recorded_started = true;
  RecordOutcome out = UpdateBests(particle, iteration, utility);
  p.stale_iterations = out.new_personal_best ? 0 : p.stale_iterations + 1;
  p.stale_through = iteration;
  return out;
}

absl::Status SwarmEngine::CloseIteration(int iteration) {
  if (iteration != closed_iterations_ + 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "iteration ", iteration, " cannot close: the last closed is ", closed_iterations_));
  }
  closed_iterations_ = iteration;
  since_improvement_ = std::max(0, iteration - last_global_improvement_);
  return absl::OkStatus();
}

Termination SwarmEngine::Finished() const {
  if (stopped_) return Termination::kStopped;
  if (closed_iterations_ >= params_.max_iterations) return Termination::kMaxIterations;
  if (since_improvement_ >= params_.patience) return Termination::kPatience;
  return Termination::kRunning;
}

}  // namespace wxp
