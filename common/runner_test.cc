#include "common/runner.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "common/synthetic.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

UtilityFunction SyntheticUtility() {
  return *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}});
}

struct Problem {
  std::vector<std::vector<float>> experts;
  std::vector<float> optimum;
};

Problem MakeProblem(int n, int64_t dim, uint64_t seed) {
  Problem p;
  p.experts = MakeRandomExperts(n, dim, seed);
  p.optimum = *MakeHiddenOptimum(p.experts, seed, 0.0005);
  return p;
}

RunnerOptions Options(uint64_t seed) {
  RunnerOptions o;
  o.params.seed = seed;
  o.params.max_iterations = 40;
  o.params.patience = 10;
  return o;
}

TEST(RunnerTest, SameSeedGivesIdenticalTrajectoryAndBytes) {
  Problem p = MakeProblem(4, 3000, 1);
  SyntheticEvaluator e1(p.optimum, 0.0001, 1), e2(p.optimum, 0.0001, 1);
  auto a = RunSwarm(p.experts, SyntheticUtility(), e1, Options(7));
  auto b = RunSwarm(p.experts, SyntheticUtility(), e2, Options(7));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->history.size(), b->history.size());
  for (size_t k = 0; k < a->history.size(); ++k) {
    EXPECT_EQ(a->history[k].global_best_utility, b->history[k].global_best_utility);
    EXPECT_EQ(a->history[k].mean_utility, b->history[k].mean_utility);
  }
  ASSERT_EQ(a->best.size(), b->best.size());
  EXPECT_EQ(std::memcmp(a->best.data(), b->best.data(), a->best.size() * sizeof(float)), 0);

  SyntheticEvaluator e3(p.optimum, 0.0001, 1);
  auto c = RunSwarm(p.experts, SyntheticUtility(), e3, Options(8));
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->best, c->best);
}

TEST(RunnerTest, ExpertIdsFixThePoolOrderWhateverTheOrderGiven) {
  Problem p = MakeProblem(3, 500, 3);
  const std::vector<std::string> ids = {"b", "c", "a"};
  RunnerOptions o = Options(9);
  o.expert_ids = ids;
  SyntheticEvaluator e1(p.optimum), e2(p.optimum);
  auto given = RunSwarm(p.experts, SyntheticUtility(), e1, o);
  // The same experts, handed over in another order with their ids.
  o.expert_ids = {ids[2], ids[0], ids[1]};
  auto shuffled = RunSwarm({p.experts[2], p.experts[0], p.experts[1]}, SyntheticUtility(), e2, o);
  ASSERT_TRUE(given.ok() && shuffled.ok());
  EXPECT_EQ(given->best, shuffled->best);
  EXPECT_EQ(given->initial_utilities, shuffled->initial_utilities);
  ASSERT_EQ(given->history.size(), shuffled->history.size());
  for (size_t k = 0; k < given->history.size(); ++k) {
    EXPECT_EQ(given->history[k].global_best_utility, shuffled->history[k].global_best_utility);
  }
  // Pool order is by id: particle 0 is expert "a".
  SyntheticEvaluator e3(p.optimum);
  EXPECT_EQ(given->initial_utilities[0],
            *SyntheticUtility().Combine(*e3.Evaluate({0, 0, p.experts[2]})));
}

TEST(RunnerTest, SearchBeatsEveryExpertAndApproachesTheReachableOptimum) {
  Problem p = MakeProblem(5, 4000, 2);
  SyntheticEvaluator eval(p.optimum);
  RunnerOptions o = Options(3);
  o.params.max_iterations = 60;
  o.params.patience = 15;
  auto r = RunSwarm(p.experts, SyntheticUtility(), eval, o);
  ASSERT_TRUE(r.ok()) << r.status();
  double best_expert = -1e9;
  for (const auto& x : p.experts)
    best_expert = std::max(best_expert, NegativeRmsDistance(x, p.optimum));
  const double reachable = *ReachableUtility(p.experts, p.optimum);
  // The swarm closes at least half of the gap between the best expert and the reachable
  // optimum (on this task it typically closes 65-95%).
  EXPECT_GT(r->best_utility, best_expert);
  EXPECT_GT(r->best_utility - best_expert, 0.5 * (reachable - best_expert))
      << "best " << r->best_utility << " expert " << best_expert << " reachable " << reachable;
  // g is all-time: never decreases along the history; and r->best really scores best_utility.
  for (size_t k = 1; k < r->history.size(); ++k) {
    EXPECT_GE(r->history[k].global_best_utility, r->history[k - 1].global_best_utility);
  }
  EXPECT_DOUBLE_EQ(NegativeRmsDistance(r->best, p.optimum), r->best_utility);
  EXPECT_EQ(r->num_particles, 10);
}

class ConstantEvaluator : public Evaluator {
 public:
  absl::StatusOr<Scores> Evaluate(const EvaluationRequest&) override {
    return Scores{{kSyntheticComponent, 1.0}};
  }
};

TEST(RunnerTest, StopsAfterPatienceWhenNothingImproves) {
  Problem p = MakeProblem(3, 10, 4);
  ConstantEvaluator eval;
  RunnerOptions o = Options(1);
  o.params.patience = 3;
  auto r = RunSwarm(p.experts, SyntheticUtility(), eval, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->termination, Termination::kPatience);
  EXPECT_EQ(r->history.size(), 4u);  // initial + 3 iterations without improvement
  EXPECT_EQ(r->best, p.experts[0]);  // the first of equals stays the best
}

class FailingEvaluator : public Evaluator {
 public:
  explicit FailingEvaluator(Evaluator* inner, bool fail_initial)
      : inner_(inner), fail_initial_(fail_initial) {}
  absl::StatusOr<Scores> Evaluate(const EvaluationRequest& r) override {
    if (r.particle == 1 && (r.iteration > 0 || fail_initial_)) {
      return absl::UnavailableError("evaluator crashed");
    }
    return inner_->Evaluate(r);
  }

 private:
  Evaluator* inner_;
  bool fail_initial_;
};

TEST(RunnerTest, FailedEvaluationsKeepTheParticleStale) {
  Problem p = MakeProblem(3, 100, 5);
  SyntheticEvaluator inner(p.optimum);
  FailingEvaluator eval(&inner, false);
  RunnerOptions o = Options(2);
  o.params.max_iterations = 5;
  o.params.patience = 100;
  auto r = RunSwarm(p.experts, SyntheticUtility(), eval, o);
  ASSERT_TRUE(r.ok());
  for (size_t k = 1; k < r->history.size(); ++k) {
    EXPECT_EQ(r->history[k].failed, 1);
    EXPECT_EQ(r->history[k].evaluated, 5);
  }
  FailingEvaluator initial_fails(&inner, true);
  auto bad = RunSwarm(p.experts, SyntheticUtility(), initial_fails, o);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(bad.status().message().find("particle 1"), std::string::npos);
}

TEST(RunnerTest, DropoutSkipsEvaluationsButStillConverges) {
  Problem p = MakeProblem(4, 2000, 6);
  SyntheticEvaluator eval(p.optimum);
  RunnerOptions o = Options(4);
  o.params.max_iterations = 30;
  o.params.patience = 30;
  o.drop_iteration = 0.2;
  o.drop_particle = 0.3;
  auto r = RunSwarm(p.experts, SyntheticUtility(), eval, o);
  ASSERT_TRUE(r.ok());
  int dropped = 0, evaluated = 0;
  for (size_t k = 1; k < r->history.size(); ++k) {
    dropped += r->history[k].dropped;
    evaluated += r->history[k].evaluated;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(evaluated, 8 * 30);
  EXPECT_GT(r->best_utility, r->history[0].global_best_utility);
}

TEST(RunnerTest, RejectsBadInputs) {
  {
    Problem p = MakeProblem(2, 10, 1);
    RunnerOptions o = Options(1);
    o.expert_ids = {"only-one"};
    SyntheticEvaluator e(p.optimum);
    EXPECT_EQ(RunSwarm(p.experts, SyntheticUtility(), e, o).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  ConstantEvaluator eval;
  RunnerOptions o = Options(1);
  EXPECT_EQ(RunSwarm({}, SyntheticUtility(), eval, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunSwarm({{1, 2}, {1}}, SyntheticUtility(), eval, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.drop_particle = 1.5;
  EXPECT_EQ(RunSwarm({{1}, {2}}, SyntheticUtility(), eval, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.drop_particle = 0;
  o.params.step_decay = 0;
  EXPECT_EQ(RunSwarm({{1}, {2}}, SyntheticUtility(), eval, o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Two objectives over the same positions, as an evaluation harness would report them:
// closeness to optimum a and to optimum b. Keeps every evaluation's scores.
class TwoOptimaEvaluator : public Evaluator {
 public:
  TwoOptimaEvaluator(std::vector<float> a, std::vector<float> b)
      : a_(std::move(a)), b_(std::move(b)) {}
  absl::StatusOr<Scores> Evaluate(const EvaluationRequest& r) override {
    Scores s{{"near_a", NegativeRmsDistance(r.params, a_)},
             {"near_b", NegativeRmsDistance(r.params, b_)}};
    seen.push_back({r.iteration, s});
    return s;
  }
  std::vector<std::pair<int, Scores>> seen;  // (iteration, scores) in evaluation order

 private:
  std::vector<float> a_, b_;
};

UtilityFunction TwoObjectives(double weight_a, double weight_b) {
  return *UtilityFunction::Create({{"near_a", true, weight_a}, {"near_b", true, weight_b}});
}

struct TwoOptima {
  Problem p;
  std::vector<float> b;
};

TwoOptima MakeTwoOptima() {
  TwoOptima t{MakeProblem(4, 500, 5), {}};
  t.b = *MakeHiddenOptimum(t.p.experts, 99, 0.0005);
  return t;
}

RunnerOptions ChangeAt(int iteration, std::map<std::string, double> weights) {
  RunnerOptions o = Options(11);
  o.params.max_iterations = 12;
  o.params.patience = 12;
  o.utility_changes = {{iteration, std::move(weights)}};
  return o;
}

TEST(RunnerTest, UtilityChangeReranksEverythingAndTheRunFollowsTheNewWeights) {
  TwoOptima t = MakeTwoOptima();
  TwoOptimaEvaluator eval(t.p.optimum, t.b);
  const RunnerOptions o = ChangeAt(5, {{"near_a", 0}, {"near_b", 1}});
  auto r = RunSwarm(t.p.experts, TwoObjectives(1, 0), eval, o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->history.size(), 13u);
  for (const IterationSummary& s : r->history) {
    EXPECT_EQ(s.utility_version, s.iteration < 5 ? 1 : 2) << s.iteration;
  }
  EXPECT_EQ(r->utility_version, 2);
  ASSERT_EQ(r->utility_changes.size(), 1u);
  const AppliedUtilityChange& c = r->utility_changes[0];
  EXPECT_EQ(c.iteration, 5);
  EXPECT_EQ(c.version, 2);
  // Re-ranked, not re-evaluated: g and g_w are the best and worst of everything evaluated
  // before iteration 5, read under the new weights.
  double best = -1e300, worst = 1e300;
  size_t before = 0;
  for (const auto& [iteration, scores] : eval.seen) {
    if (iteration >= 5) break;
    best = std::max(best, scores.at("near_b"));
    worst = std::min(worst, scores.at("near_b"));
    ++before;
  }
  EXPECT_EQ(before, 5u * 8);  // pool 8, iterations 0..4
  EXPECT_EQ(c.global_best_utility, best);
  EXPECT_EQ(c.global_worst_utility, worst);
  // From then on g competes under b only and never falls; the final g is b's best.
  double last = c.global_best_utility;
  for (size_t k = 5; k < r->history.size(); ++k) {
    EXPECT_GE(r->history[k].global_best_utility, last) << k;
    last = r->history[k].global_best_utility;
  }
  EXPECT_EQ(r->best_utility, NegativeRmsDistance(r->best, t.b));
  EXPECT_GT(r->best_utility, c.global_best_utility) << "the search improved objective b";

  // Deterministic, as every run of the runner.
  TwoOptimaEvaluator again(t.p.optimum, t.b);
  auto r2 = RunSwarm(t.p.experts, TwoObjectives(1, 0), again, o);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->best, r->best);
  EXPECT_EQ(r2->history.back().global_best_utility, r->history.back().global_best_utility);
}

// A change to the weights already in force re-chooses p_i, g and g_w as the run had
// chosen them (ties to the earliest, as Record's strict improvement does): nothing else
// moves, only the version.
TEST(RunnerTest, ReweightingToTheSameWeightsChangesNothingButTheVersion) {
  TwoOptima t = MakeTwoOptima();
  TwoOptimaEvaluator e1(t.p.optimum, t.b), e2(t.p.optimum, t.b);
  RunnerOptions plain = ChangeAt(4, {});
  plain.utility_changes.clear();
  auto a = RunSwarm(t.p.experts, TwoObjectives(1, 0.5), e1, plain);
  auto b = RunSwarm(t.p.experts, TwoObjectives(1, 0.5), e2, ChangeAt(4, {{"near_a", 1}}));
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  ASSERT_EQ(a->history.size(), b->history.size());
  for (size_t k = 0; k < a->history.size(); ++k) {
    EXPECT_EQ(a->history[k].global_best_utility, b->history[k].global_best_utility) << k;
    EXPECT_EQ(a->history[k].mean_utility, b->history[k].mean_utility) << k;
  }
  EXPECT_EQ(a->best, b->best);
  EXPECT_EQ(a->utility_version, 1);
  EXPECT_EQ(b->utility_version, 2);
}

TEST(RunnerTest, UtilityChangesAreCheckedAndOnesAfterTheEndNeverHappen) {
  TwoOptima t = MakeTwoOptima();
  TwoOptimaEvaluator eval(t.p.optimum, t.b);
  auto refused = [&](RunnerOptions o) {
    return RunSwarm(t.p.experts, TwoObjectives(1, 0), eval, o).status().code();
  };
  EXPECT_EQ(refused(ChangeAt(3, {{"nope", 1}})), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused(ChangeAt(3, {{"near_a", 0}})), absl::StatusCode::kInvalidArgument)
      << "all weights zero";
  EXPECT_EQ(refused(ChangeAt(0, {{"near_b", 1}})), absl::StatusCode::kInvalidArgument);
  RunnerOptions twice = ChangeAt(3, {{"near_b", 1}});
  twice.utility_changes.push_back({3, {{"near_a", 0}}});
  EXPECT_EQ(refused(twice), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(eval.seen.empty()) << "refused before anything is evaluated";

  auto late = RunSwarm(t.p.experts, TwoObjectives(1, 0), eval, ChangeAt(13, {{"near_b", 1}}));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_TRUE(late->utility_changes.empty());
  EXPECT_EQ(late->utility_version, 1);
  EXPECT_EQ(late->history.back().utility_version, 1);
}

}  // namespace
}  // namespace wxp
