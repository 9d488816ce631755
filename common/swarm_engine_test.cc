#include "common/swarm_engine.h"

#include <cmath>
#include <set>
#include <tuple>

#include "gtest/gtest.h"

namespace wxp {
namespace {

SwarmParams Deterministic() {
  SwarmParams p;
  p.weight_randomness = false;
  p.seed = 42;
  return p;
}

SwarmEngine MakeEngine(const SwarmParams& params, int n, std::vector<double> initial) {
  absl::StatusOr<SwarmEngine> e = SwarmEngine::Create(params, n);
  EXPECT_TRUE(e.ok()) << e.status();
  for (int i = 0; i < n; ++i) EXPECT_TRUE(e->RecordInitial(i, initial[i]).ok());
  return *std::move(e);
}

TEST(SwarmParamsTest, RejectsEachInvalidField) {
  struct Case {
    void (*mutate)(SwarmParams&);
    const char* field;
  } cases[] = {
      {[](SwarmParams& p) { p.inertia = -0.1; }, "inertia"},
      {[](SwarmParams& p) { p.social = std::nan(""); }, "social"},
      {[](SwarmParams& p) { p.inertia = p.cognitive = p.social = p.repel = 0; }, "all zero"},
      {[](SwarmParams& p) { p.step_length = 0; }, "step_length"},
      {[](SwarmParams& p) { p.step_decay = 1.5; }, "step_decay"},
      {[](SwarmParams& p) { p.min_step_length = 0.9; }, "min_step_length"},
      {[](SwarmParams& p) { p.patience = 0; }, "patience"},
      {[](SwarmParams& p) { p.max_iterations = 0; }, "max_iterations"},
      {[](SwarmParams& p) { p.restart_cooldown = -1; }, "restart_cooldown"},
      {[](SwarmParams& p) { p.pool_size = -3; }, "pool_size"},
  };
  for (const Case& c : cases) {
    SwarmParams p;
    c.mutate(p);
    absl::Status s = p.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(s.message().find(c.field), std::string::npos) << s.message();
  }
  EXPECT_TRUE(SwarmParams().Validate().ok());
}

TEST(SwarmParamsTest, PoolSizeDefaultsToTwiceTheExperts) {
  SwarmParams p;
  EXPECT_EQ(p.ResolvedPoolSize(10), 20);
  p.pool_size = 4;
  EXPECT_EQ(p.ResolvedPoolSize(10), 10);  // never below the experts
  p.pool_size = 15;
  EXPECT_EQ(p.ResolvedPoolSize(10), 15);
}

TEST(PoolOrderTest, SortsByBlobIdWhateverTheArrivalOrder) {
  EXPECT_EQ(PoolOrder({"cc", "aa", "bb"}), (std::vector<int>{1, 2, 0}));
  EXPECT_EQ(PoolOrder({"bb", "cc", "aa"}), (std::vector<int>{2, 0, 1}));
  EXPECT_EQ(PoolOrder({"aa", "aa", "0"}), (std::vector<int>{2, 0, 1}));  // ties keep input order
  EXPECT_TRUE(PoolOrder({}).empty());
}

TEST(PlanPoolTest, GrowsToPoolSizeWithDistinctEarlierParents) {
  absl::StatusOr<std::vector<Crossover>> plan = PlanPool(3, 12, 7);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->size(), 9u);
  bool child_as_parent = false, extrapolates = false, interpolates = false;
  for (size_t k = 0; k < plan->size(); ++k) {
    const Crossover& c = (*plan)[k];
    EXPECT_EQ(c.child, 3 + static_cast<int>(k));
    EXPECT_NE(c.parent_a, c.parent_b);
    EXPECT_LT(c.parent_a, c.child);
    EXPECT_LT(c.parent_b, c.child);
    EXPECT_GE(c.w, 0.0);
    EXPECT_LT(c.w, 2.0);
    child_as_parent |= c.parent_a >= 3 || c.parent_b >= 3;
    extrapolates |= c.w > 1;
    interpolates |= c.w < 1;
  }
  EXPECT_TRUE(child_as_parent);
  EXPECT_TRUE(extrapolates);
  EXPECT_TRUE(interpolates);
}

TEST(PlanPoolTest, IsDeterministicPerSeed) {
  auto a = PlanPool(4, 10, 1), b = PlanPool(4, 10, 1), c = PlanPool(4, 10, 2);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  bool differs = false;
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].parent_a, (*b)[i].parent_a);
    EXPECT_EQ((*a)[i].parent_b, (*b)[i].parent_b);
    EXPECT_EQ((*a)[i].w, (*b)[i].w);
    differs |= (*a)[i].w != (*c)[i].w;
  }
  EXPECT_TRUE(differs);
}

TEST(PlanPoolTest, GroupsAddWeightsWithoutChangingTheOneGroupPlan) {
  auto one = PlanPool(4, 10, 3), three = PlanPool(4, 10, 3, 3);
  ASSERT_TRUE(one.ok() && three.ok());
  ASSERT_EQ(one->size(), three->size());
  for (size_t i = 0; i < one->size(); ++i) {
    const Crossover &a = (*one)[i], &b = (*three)[i];
    EXPECT_TRUE(a.group_w.empty());
    EXPECT_EQ(std::tie(a.child, a.parent_a, a.parent_b, a.w),
              std::tie(b.child, b.parent_a, b.parent_b, b.w));
    ASSERT_EQ(b.group_w.size(), 3u);
    EXPECT_EQ(b.group_w[0], b.w);
    for (double w : b.group_w) EXPECT_TRUE(w >= 0 && w < 2) << w;
    EXPECT_NE(b.group_w[1], b.group_w[2]);
  }
  EXPECT_EQ(PlanPool(4, 10, 3, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PlanPoolTest, RejectsImpossiblePools) {
  EXPECT_EQ(PlanPool(0, 4, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanPool(5, 4, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanPool(1, 4, 1).status().code(), absl::StatusCode::kInvalidArgument);
  auto same = PlanPool(1, 1, 1);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->empty());
}

TEST(SwarmEngineTest, InitialVelocityPartnerIsAnotherParticle) {
  auto e = SwarmEngine::Create(Deterministic(), 6);
  ASSERT_TRUE(e.ok());
  std::set<int> partners;
  for (int i = 0; i < 6; ++i) {
    const int j = e->InitialVelocityPartner(i);
    EXPECT_NE(j, i);
    EXPECT_GE(j, 0);
    EXPECT_LT(j, 6);
    partners.insert(j);
  }
  EXPECT_GT(partners.size(), 1u);
  auto single = SwarmEngine::Create(Deterministic(), 1);
  EXPECT_EQ(single->InitialVelocityPartner(0), -1);
  SwarmParams zero = Deterministic();
  zero.initial_velocity = InitialVelocityMode::kZero;
  EXPECT_EQ(SwarmEngine::Create(zero, 4)->InitialVelocityPartner(0), -1);
}

TEST(SwarmEngineTest, InitialEvaluationPicksBestAndWorst) {
  SwarmEngine e = MakeEngine(Deterministic(), 4, {0.5, 0.9, 0.1, 0.9});
  EXPECT_TRUE(e.initial_complete());
  EXPECT_EQ(e.global_best(), (PositionRef{1, 0}));  // first of the tie at 0.9 wins
  EXPECT_EQ(e.global_worst(), (PositionRef{2, 0}));
  EXPECT_EQ(e.global_best_utility(), 0.9);
  EXPECT_EQ(e.global_worst_utility(), 0.1);
  EXPECT_EQ(e.particle(0).personal_best, (PositionRef{0, 0}));
}

// A sync round's reports arrive in any order; exact ties must go the same way whatever the
// order: to the first position in (iteration, particle) order, as the runner records them.
TEST(SwarmEngineTest, ExactTiesGoToTheFirstPositionWhateverTheArrivalOrder) {
  auto e = SwarmEngine::Create(Deterministic(), 4);
  ASSERT_TRUE(e.ok()) << e.status();
  for (int i : {3, 1, 2, 0}) ASSERT_TRUE(e->RecordInitial(i, i % 2 ? 0.9 : 0.1).ok());
  EXPECT_EQ(e->global_best(), (PositionRef{1, 0}));
  EXPECT_EQ(e->global_worst(), (PositionRef{0, 0}));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(e->StartIteration(i, 1).ok());
  // Round 1 ties g at 0.9 (particles 2 and 3): the earlier iteration keeps it. A new best
  // at 1.0 reported by particle 3, then tied by particle 0, goes to particle 0.
  auto tie = e->Record(3, 1, 0.9);
  ASSERT_TRUE(tie.ok()) << tie.status();
  EXPECT_FALSE(tie->new_global_best);
  ASSERT_TRUE(e->Record(2, 1, 1.0).ok());
  auto earlier = e->Record(0, 1, 1.0);
  ASSERT_TRUE(earlier.ok()) << earlier.status();
  EXPECT_TRUE(earlier->new_global_best);
  EXPECT_EQ(e->global_best(), (PositionRef{0, 1}));
  ASSERT_TRUE(e->Record(1, 1, 0.5).ok());
  ASSERT_TRUE(e->CloseIteration(1).ok());
  EXPECT_EQ(e->global_worst(), (PositionRef{0, 0}));  // 0.1 at iteration 0 stays g_w
}

TEST(SwarmEngineTest, IterationNeedsCompleteInitialEvaluation) {
  auto e = SwarmEngine::Create(Deterministic(), 2);
  ASSERT_TRUE(e->RecordInitial(0, 1.0).ok());
  EXPECT_EQ(e->StartIteration(0, 1).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(e->RecordInitial(0, 2.0).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(e->RecordInitial(1, std::nan("")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->RecordInitial(7, 1.0).status().code(), absl::StatusCode::kNotFound);
}

TEST(SwarmEngineTest, CoefficientsWithoutRandomnessAreTheNormalisedWeights) {
  SwarmEngine e = MakeEngine(Deterministic(), 2, {1, 2});
  auto t = e.StartIteration(0, 1);
  ASSERT_TRUE(t.ok());
  // S = 0.2 + 0.3 + 0.4 + 0.05 = 0.95.
  EXPECT_DOUBLE_EQ(t->a, 0.2 / 0.95);
  EXPECT_DOUBLE_EQ(t->b, 0.3 / 0.95);
  EXPECT_DOUBLE_EQ(t->c, 0.4 / 0.95);
  EXPECT_DOUBLE_EQ(t->d, 0.05 / 0.95);
  EXPECT_DOUBLE_EQ(t->step, 0.5);
  EXPECT_FALSE(t->restart);
  EXPECT_EQ(t->global_best, (PositionRef{1, 0}));
  EXPECT_EQ(t->global_worst, (PositionRef{0, 0}));
  EXPECT_EQ(t->personal_best, (PositionRef{0, 0}));

  SwarmParams no_repel = Deterministic();
  no_repel.repel_enabled = false;
  SwarmEngine f = MakeEngine(no_repel, 2, {1, 2});
  auto u = f.StartIteration(1, 1);
  EXPECT_DOUBLE_EQ(u->d, 0.0);
  EXPECT_DOUBLE_EQ(u->c, 0.4 / 0.9);
}

TEST(SwarmEngineTest, RandomCoefficientsSumToOneAndRepeatForTheSameIteration) {
  SwarmParams p;
  p.seed = 9;
  SwarmEngine e = MakeEngine(p, 3, {1, 2, 3});
  auto t1 = e.StartIteration(2, 1);
  auto again = e.StartIteration(2, 1);
  ASSERT_TRUE(t1.ok() && again.ok());
  EXPECT_NEAR(t1->a + t1->b + t1->c + t1->d, 1.0, 1e-12);
  EXPECT_EQ(t1->a, again->a);
  auto other = e.StartIteration(1, 1);
  EXPECT_NE(t1->a, other->a);
  // A second engine with the same seed draws the same, whatever the call order.
  SwarmEngine f = MakeEngine(p, 3, {1, 2, 3});
  ASSERT_TRUE(f.StartIteration(1, 1).ok());
  EXPECT_EQ(f.StartIteration(2, 1)->b, t1->b);
}

TEST(SwarmEngineTest, StepDecaysOncePerIterationDownToTheFloor) {
  SwarmParams p = Deterministic();
  p.step_length = 0.5;
  p.step_decay = 0.5;
  p.min_step_length = 0.1;
  SwarmEngine e = MakeEngine(p, 1, {0});
  EXPECT_DOUBLE_EQ(e.StepLength(1), 0.5);
  EXPECT_DOUBLE_EQ(e.StepLength(2), 0.25);
  EXPECT_DOUBLE_EQ(e.StepLength(3), 0.125);
  EXPECT_DOUBLE_EQ(e.StepLength(4), 0.1);
  EXPECT_DOUBLE_EQ(e.StepLength(40), 0.1);
}

TEST(LocalTrainingTest, DueEveryKthIterationOnlyWhenOn) {
  for (int k = 0; k <= 6; ++k) {
    EXPECT_FALSE(LocalTrainingDue(0, k));
    EXPECT_EQ(LocalTrainingDue(1, k), k >= 1);
    EXPECT_EQ(LocalTrainingDue(3, k), k == 3 || k == 6);
  }
}

TEST(LocalTrainingTest, SeedsArePureFunctionsOfSwarmParticleAndIteration) {
  EXPECT_EQ(LocalTrainingSeed(7, 2, 3), LocalTrainingSeed(7, 2, 3));
  EXPECT_NE(LocalTrainingSeed(7, 2, 3), LocalTrainingSeed(8, 2, 3));
  EXPECT_NE(LocalTrainingSeed(7, 2, 3), LocalTrainingSeed(7, 3, 2));
  EXPECT_NE(LocalTrainingSeed(7, 2, 3), LocalTrainingSeed(7, 2, 4));
}

TEST(SwarmEngineTest, PersonalBestMovesOnStrictImprovementOnly) {
  SwarmEngine e = MakeEngine(Deterministic(), 2, {1, 5});
  ASSERT_TRUE(e.StartIteration(0, 1).ok());
  auto same = e.Record(0, 1, 1.0);
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same->new_personal_best);
  EXPECT_EQ(e.particle(0).personal_best, (PositionRef{0, 0}));
  EXPECT_EQ(e.particle(0).stale_iterations, 1);
  ASSERT_TRUE(e.StartIteration(0, 2).ok());
  auto better = e.Record(0, 2, 3.0);
  EXPECT_TRUE(better->new_personal_best);
  EXPECT_FALSE(better->new_global_best);
  EXPECT_EQ(e.particle(0).personal_best, (PositionRef{0, 2}));
  EXPECT_EQ(e.particle(0).stale_iterations, 0);
}

TEST(SwarmEngineTest, GlobalBestAndWorstAreAllTime) {
  SwarmEngine e = MakeEngine(Deterministic(), 2, {1, 5});
  ASSERT_TRUE(e.StartIteration(0, 1).ok());
  ASSERT_TRUE(e.StartIteration(1, 1).ok());
  auto worse = e.Record(1, 1, -2);  // particle 1 falls below everything ever seen
  EXPECT_TRUE(worse->new_global_worst);
  auto best = e.Record(0, 1, 7);
  EXPECT_TRUE(best->new_global_best);
  EXPECT_EQ(e.global_best(), (PositionRef{0, 1}));
  EXPECT_EQ(e.global_worst(), (PositionRef{1, 1}));
  ASSERT_TRUE(e.CloseIteration(1).ok());
  ASSERT_TRUE(e.StartIteration(0, 2).ok());
  ASSERT_TRUE(e.Record(0, 2, 6).ok());  // worse than g, better than g_w: neither moves
  EXPECT_EQ(e.global_best_utility(), 7);
  EXPECT_EQ(e.global_worst_utility(), -2);
}

TEST(SwarmEngineTest, RestartAfterPatienceThenCooldown) {
  SwarmParams p = Deterministic();
  p.restart_patience = 2;
  p.restart_cooldown = 2;
  p.patience = 100;
  p.max_iterations = 100;
  SwarmEngine e = MakeEngine(p, 2, {1, 10});
  // Particle 0 never improves on its initial 1.0. Hand-derived schedule:
  // k=1 stale 0 -> no; k=2 stale 1 -> no; k=3 stale 2, cooldown 0 -> restart (cd=2);
  // k=4 cd 2->1; k=5 cd 1->0; k=6 stale>=2, cd 0 -> restart.
  std::vector<int> restarted;
  for (int k = 1; k <= 7; ++k) {
    auto t0 = e.StartIteration(0, k);
    auto t1 = e.StartIteration(1, k);
    ASSERT_TRUE(t0.ok() && t1.ok());
    if (t0->restart) restarted.push_back(k);
    ASSERT_TRUE(e.Record(0, k, 0.5).ok());
    ASSERT_TRUE(e.Record(1, k, 10 + k).ok());  // particle 1 always improves
    EXPECT_FALSE(t1->restart);
    ASSERT_TRUE(e.CloseIteration(k).ok());
  }
  EXPECT_EQ(restarted, (std::vector<int>{3, 6}));
  EXPECT_EQ(e.particle(0).restarts, 2);
  EXPECT_EQ(e.particle(1).restarts, 0);
}

TEST(SwarmEngineTest, ImprovementResetsTheRestartClock) {
  SwarmParams p = Deterministic();
  p.restart_patience = 2;
  p.restart_cooldown = 0;
  p.patience = 100;
  SwarmEngine e = MakeEngine(p, 1, {1});
  const double utilities[] = {0, 2, 0, 0};  // improves at k=2
  std::vector<bool> flags;
  for (int k = 1; k <= 5; ++k) {
    auto t = e.StartIteration(0, k);
    flags.push_back(t->restart);
    if (k <= 4) {
      ASSERT_TRUE(e.Record(0, k, utilities[k - 1]).ok());
    }
    ASSERT_TRUE(e.CloseIteration(k).ok());
  }
  // stale before k: 0,1,0,1,2 -> only k=5 restarts.
  EXPECT_EQ(flags, (std::vector<bool>{false, false, false, false, true}));
}

TEST(SwarmEngineTest, SkippedIterationsCountAsStale) {
  SwarmParams p = Deterministic();
  p.restart_patience = 2;
  p.patience = 100;
  SwarmEngine e = MakeEngine(p, 1, {1});
  ASSERT_TRUE(e.StartIteration(0, 1).ok());  // straggler: never reports
  ASSERT_TRUE(e.CloseIteration(1).ok());
  ASSERT_TRUE(e.StartIteration(0, 2).ok());
  ASSERT_TRUE(e.CloseIteration(2).ok());
  auto t = e.StartIteration(0, 3);
  EXPECT_TRUE(t->restart);
}

TEST(SwarmEngineTest, AStragglerRejoinsAtTheCurrentIteration) {
  SwarmParams p = Deterministic();
  p.restart_patience = 3;
  p.patience = 100;
  SwarmEngine e = MakeEngine(p, 2, {5, 1});
  ASSERT_TRUE(e.StartIteration(0, 1).ok());  // particle 0 starts 1, then goes silent
  for (int k = 1; k <= 3; ++k) {
    ASSERT_TRUE(e.StartIteration(1, k).ok());
    ASSERT_TRUE(e.Record(1, k, 0).ok());
    ASSERT_TRUE(e.CloseIteration(k).ok());
  }
  // Back at iteration 4: iterations 1-3 count as stale, so it restarts now.
  auto t = e.StartIteration(0, 4);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->iteration, 4);
  EXPECT_TRUE(t->restart);
  EXPECT_EQ(e.particle(0).stale_iterations, 3);
  // Going back is still refused.
  EXPECT_EQ(e.StartIteration(0, 3).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SwarmEngineTest, TerminatesOnPatience) {
  SwarmParams p = Deterministic();
  p.patience = 2;
  SwarmEngine e = MakeEngine(p, 1, {1});
  const double utilities[] = {2, 1, 1.5};  // g improves at k=1, then not for k=2,3
  for (int k = 1; k <= 3; ++k) {
    ASSERT_EQ(e.Finished(), Termination::kRunning) << k;
    ASSERT_TRUE(e.StartIteration(0, k).ok());
    ASSERT_TRUE(e.Record(0, k, utilities[k - 1]).ok());
    ASSERT_TRUE(e.CloseIteration(k).ok());
  }
  EXPECT_EQ(e.Finished(), Termination::kPatience);
  EXPECT_EQ(e.StartIteration(0, 4).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SwarmEngineTest, TerminatesAtMaxIterations) {
  SwarmParams p = Deterministic();
  p.max_iterations = 3;
  SwarmEngine e = MakeEngine(p, 1, {0});
  for (int k = 1; k <= 3; ++k) {
    ASSERT_TRUE(e.StartIteration(0, k).ok());
    ASSERT_TRUE(e.Record(0, k, k).ok());  // always improving
    ASSERT_TRUE(e.CloseIteration(k).ok());
  }
  EXPECT_EQ(e.Finished(), Termination::kMaxIterations);
  e.Stop();
  EXPECT_EQ(e.Finished(), Termination::kStopped);
}

TEST(SwarmEngineTest, RejectsOutOfSequenceAndDuplicateReports) {
  SwarmEngine e = MakeEngine(Deterministic(), 2, {0, 1});
  EXPECT_EQ(e.StartIteration(0, 0).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(e.Record(0, 1, 1).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(e.StartIteration(0, 1).ok());
  EXPECT_EQ(e.Record(0, 2, 1).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(e.Record(0, 1, std::numeric_limits<double>::infinity()).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(e.Record(0, 1, 1).ok());
  EXPECT_EQ(e.Record(0, 1, 1).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(e.CloseIteration(2).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(e.StartIteration(-1, 1).status().code(), absl::StatusCode::kNotFound);
}

// Dynamic utility: new values for stored evaluations re-choose p_i, g and g_w among the
// eligible (held) positions, and each particle's latest utility follows.
TEST(SwarmEngineTest, RerankRechoosesBestsAmongEligiblePositions) {
  SwarmEngine e = MakeEngine(Deterministic(), 3, {0.1, 0.5, 0.9});
  ASSERT_TRUE(e.StartIteration(0, 1).ok());
  ASSERT_TRUE(e.Record(0, 1, 0.3).ok());
  const SwarmEngineState before = e.state();
  // Under the new weights the order flips: particle 0's initial position is now the best,
  // and its iteration-1 position (not held) would be better still.
  ASSERT_TRUE(
      e.Rerank(
           {{{0, 0}, 0.95, true}, {{1, 0}, 0.4, true}, {{2, 0}, 0.2, true}, {{0, 1}, 0.99, false}})
          .ok());
  EXPECT_EQ(e.global_best(), (PositionRef{0, 0}));
  EXPECT_EQ(e.global_best_utility(), 0.95);
  EXPECT_EQ(e.global_worst(), (PositionRef{2, 0}));
  EXPECT_EQ(e.global_worst_utility(), 0.2);
  EXPECT_EQ(e.particle(0).personal_best, (PositionRef{0, 0}));
  EXPECT_EQ(e.particle(0).best_utility, 0.95);
  EXPECT_EQ(e.particle(0).utility, 0.99);  // its latest evaluation, held or not
  EXPECT_EQ(e.particle(1).utility, 0.4);
  EXPECT_EQ(e.particle(2).personal_best, (PositionRef{2, 0}));
  // Counters are untouched.
  EXPECT_EQ(e.closed_iterations(), before.closed_iterations);
  EXPECT_EQ(e.particle(0).started_iteration, before.particles[0].started_iteration);
  EXPECT_EQ(e.particle(0).recorded_started, before.particles[0].recorded_started);
}

// Audited swarms (SPEC 12): a position no auditor confirmed may be p_i or g_w, never g;
// when none may lead, g is chosen among every eligible position (never left unset).
TEST(SwarmEngineTest, RerankChoosesGAmongPositionsThatMayLead) {
  SwarmEngine e = MakeEngine(Deterministic(), 3, {0.1, 0.5, 0.9});
  ASSERT_TRUE(e.Rerank({{{0, 0}, 0.9, true, /*may_lead=*/false},
                        {{1, 0}, 0.5, true, true},
                        {{2, 0}, 0.1, true, false}})
                  .ok());
  EXPECT_EQ(e.global_best(), (PositionRef{1, 0}));
  EXPECT_EQ(e.global_best_utility(), 0.5);
  EXPECT_EQ(e.global_worst(), (PositionRef{2, 0}));
  EXPECT_EQ(e.particle(0).personal_best, (PositionRef{0, 0}));
  ASSERT_TRUE(
      e.Rerank(
           {{{0, 0}, 0.9, true, false}, {{1, 0}, 0.5, true, false}, {{2, 0}, 0.95, false, true}})
          .ok());
  EXPECT_EQ(e.global_best(), (PositionRef{0, 0}));  // the one that may lead is not held
}

TEST(SwarmEngineTest, RerankTiesGoToTheEarliestAndUnheldParticlesKeepNoPersonalBest) {
  SwarmEngine e = MakeEngine(Deterministic(), 3, {0.1, 0.5, 0.9});
  ASSERT_TRUE(e.Rerank({{{2, 0}, 0.5, true}, {{1, 0}, 0.5, true}, {{0, 0}, 0.5, false}}).ok());
  EXPECT_EQ(e.global_best(), (PositionRef{1, 0}));  // (iteration, particle) order
  EXPECT_EQ(e.global_worst(), (PositionRef{1, 0}));
  EXPECT_FALSE(e.particle(0).personal_best.valid());
  // The re-ranked engine survives a save and restore.
  EXPECT_TRUE(SwarmEngine::Restore(Deterministic(), e.state()).ok());
}

TEST(SwarmEngineTest, RerankRejectsBadInputAndChangesNothing) {
  SwarmEngine e = MakeEngine(Deterministic(), 2, {0.1, 0.5});
  const SwarmEngineState before = e.state();
  EXPECT_EQ(e.Rerank({{{0, 0}, 0.2, true}, {{5, 0}, 0.2, true}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.Rerank({{{0, -1}, 0.2, true}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.Rerank({{{0, 0}, std::nan(""), true}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.global_best(), before.global_best);
  EXPECT_EQ(e.global_best_utility(), before.global_best_utility);
  EXPECT_EQ(e.particle(0).personal_best, before.particles[0].personal_best);
}

TEST(SwarmEngineTest, RestoredEngineTakesTheSameDecisions) {
  SwarmParams p;
  p.seed = 3;
  p.restart_patience = 2;
  p.restart_cooldown = 1;
  p.patience = 100;
  p.max_iterations = 100;
  auto utility = [](int i, int k) { return static_cast<double>((i * 7 + k * 3) % 5); };
  auto run = [&](SwarmEngine& e, int from, int to, std::vector<MoveTargets>* out) {
    for (int k = from; k <= to; ++k) {
      for (int i = 0; i < 3; ++i) out->push_back(*e.StartIteration(i, k));
      for (int i = 0; i < 3; ++i) ASSERT_TRUE(e.Record(i, k, utility(i, k)).ok());
      ASSERT_TRUE(e.CloseIteration(k).ok());
    }
  };
  SwarmEngine straight = MakeEngine(p, 3, {1, 2, 3});
  std::vector<MoveTargets> expected, got;
  run(straight, 1, 8, &expected);

  SwarmEngine first = MakeEngine(p, 3, {1, 2, 3});
  run(first, 1, 4, &got);
  auto restored = SwarmEngine::Restore(p, first.state());
  ASSERT_TRUE(restored.ok()) << restored.status();
  run(*restored, 5, 8, &got);
  ASSERT_EQ(got.size(), expected.size());
  int restarts = 0;
  for (size_t j = 0; j < got.size(); ++j) {
    EXPECT_EQ(got[j].a, expected[j].a);
    EXPECT_EQ(got[j].restart, expected[j].restart) << j;
    EXPECT_EQ(got[j].global_best, expected[j].global_best) << j;
    EXPECT_EQ(got[j].personal_best, expected[j].personal_best) << j;
    restarts += got[j].restart;
  }
  EXPECT_GT(restarts, 0);  // the restart bookkeeping was exercised across the restore
  EXPECT_EQ(restored->global_best_utility(), straight.global_best_utility());
}

TEST(SwarmEngineTest, RestoreRejectsInconsistentState) {
  SwarmEngine e = MakeEngine(Deterministic(), 2, {1, 2});
  SwarmEngineState s = e.state();
  s.global_best.particle = 5;
  EXPECT_EQ(SwarmEngine::Restore(Deterministic(), s).status().code(),
            absl::StatusCode::kInvalidArgument);
  SwarmEngineState t = e.state();
  t.particles[1].cooldown = -1;
  EXPECT_FALSE(SwarmEngine::Restore(Deterministic(), t).ok());
  EXPECT_FALSE(SwarmEngine::Restore(Deterministic(), SwarmEngineState{}).ok());
}

}  // namespace
}  // namespace wxp
