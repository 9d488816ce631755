// Local training in the in-process runner (SPEC 4.4): schedule, seeds, how velocity and
// personal best follow the trained position, failures and refusals. The trainers here add
// a known vector, so every expected position is computed by hand.
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "common/runner.h"
#include "common/swarm_engine.h"
#include "common/synthetic.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

using Key = std::pair<int, int>;  // (particle, iteration)

UtilityFunction Utility() { return *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}}); }

// Adds delta[j] = 0.001 * (j + 1) to every coordinate and remembers what it saw.
class AddingTrainer : public LocalTrainer {
 public:
  absl::StatusOr<std::vector<float>> Train(const TrainingRequest& r) override {
    requests.push_back(r);
    std::vector<float> out(r.params.begin(), r.params.end());
    for (size_t j = 0; j < out.size(); ++j) out[j] += 0.001f * static_cast<float>(j + 1);
    in[{r.particle, r.iteration}] = std::vector<float>(r.params.begin(), r.params.end());
    this->out[{r.particle, r.iteration}] = out;
    return out;
  }
  std::vector<TrainingRequest> requests;
  std::map<Key, std::vector<float>> in, out;
};

// Records every evaluated position; utility from `score(particle, iteration)`.
class RecordingEvaluator : public Evaluator {
 public:
  explicit RecordingEvaluator(std::function<double(int, int)> score) : score_(std::move(score)) {}
  absl::StatusOr<Scores> Evaluate(const EvaluationRequest& r) override {
    seen[{r.particle, r.iteration}] = std::vector<float>(r.params.begin(), r.params.end());
    return Scores{{kSyntheticComponent, score_(r.particle, r.iteration)}};
  }
  std::map<Key, std::vector<float>> seen;

 private:
  std::function<double(int, int)> score_;
};

std::vector<std::vector<float>> Experts() {
  return {{0.5f, -1.25f, 2.0f}, {1.5f, 0.75f, -0.5f}, {-0.3f, 0.1f, 0.7f}};
}

// Pure inertia (a == 1 exactly, no pull anywhere), zero initial velocity and no restarts:
// between trainings a particle coasts, so its positions follow from the rule alone.
RunnerOptions Coasting(LocalTrainer* trainer, int every_k, int iterations) {
  RunnerOptions o;
  o.params.seed = 17;
  o.params.pool_size = 3;
  o.params.cognitive = o.params.social = 0;
  o.params.repel_enabled = false;
  o.params.step_length = 0.5;
  o.params.step_decay = 0.9;
  o.params.min_step_length = 0.1;
  o.params.max_iterations = iterations;
  o.params.patience = 100;
  o.params.restart_patience = 100;
  o.params.initial_velocity = InitialVelocityMode::kZero;
  o.local_training = {every_k, 4, 0.01, 8};
  o.trainer = trainer;
  return o;
}

TEST(RunnerLocalTrainingTest, VelocityCarriesTheTrainingDisplacementExactly) {
  AddingTrainer trainer;
  RecordingEvaluator eval([](int, int k) { return -k; });
  RunnerOptions o = Coasting(&trainer, 1, 3);
  auto r = RunSwarm(Experts(), Utility(), eval, o);
  ASSERT_TRUE(r.ok()) << r.status();
  auto engine = SwarmEngine::Create(o.params, 3);
  for (int i = 0; i < 3; ++i) {
    std::vector<float> v(3, 0.0f);
    // Iteration 1 starts from the expert itself (zero velocity).
    EXPECT_EQ(trainer.in[Key(i, 1)], Experts()[i]);
    for (int k = 1; k <= 3; ++k) {
      const std::vector<float>& in = trainer.in[Key(i, k)];
      const std::vector<float>& out = trainer.out[Key(i, k)];
      // The evaluation is of the trained position.
      EXPECT_EQ(eval.seen[Key(i, k)], out) << "particle " << i << " iteration " << k;
      const float step = static_cast<float>(engine->StepLength(k));
      for (int j = 0; j < 3; ++j) v[j] += (out[j] - in[j]) / step;
      if (k < 3) {
        // The next move is x + lambda * v with v the displacement really taken.
        const float next = static_cast<float>(engine->StepLength(k + 1));
        std::vector<float> expected(3);
        for (int j = 0; j < 3; ++j) expected[j] = out[j] + next * v[j];
        EXPECT_EQ(trainer.in[Key(i, k + 1)], expected) << "particle " << i << " iteration " << k;
      }
    }
  }
}

TEST(RunnerLocalTrainingTest, PersonalBestAndGlobalBestAreTrainedPositions) {
  AddingTrainer trainer;
  // Iteration 1 is everyone's best; nothing improves after it.
  RecordingEvaluator eval([](int i, int k) { return k == 1 ? 1.0 + i : 0.0; });
  RunnerOptions o = Coasting(&trainer, 1, 3);
  o.params.restart_patience = 1;
  o.params.restart_cooldown = 5;
  auto r = RunSwarm(Experts(), Utility(), eval, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->history[3].restarts, 3);
  for (int i = 0; i < 3; ++i) {
    // Iteration 3 restarts from p_i (x <- p, v <- 0, then a pure-inertia move stays put):
    // p_i is the trained position of iteration 1, not the moved one.
    EXPECT_EQ(trainer.in[Key(i, 3)], trainer.out[Key(i, 1)]) << "particle " << i;
  }
  EXPECT_EQ(r->best_ref, (PositionRef{2, 1}));
  EXPECT_EQ(r->best, (trainer.out[Key(2, 1)]));
}

TEST(RunnerLocalTrainingTest, TrainsEveryKthIterationWithTheEngineSeeds) {
  AddingTrainer trainer;
  RecordingEvaluator eval([](int, int) { return 0.0; });
  RunnerOptions o = Coasting(&trainer, 2, 5);
  auto r = RunSwarm(Experts(), Utility(), eval, o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->history.size(), 6u);
  for (int k = 0; k <= 5; ++k) {
    EXPECT_EQ(r->history[k].trained, (k == 2 || k == 4) ? 3 : 0) << "iteration " << k;
    EXPECT_EQ(r->history[k].training_failed, 0);
  }
  ASSERT_EQ(trainer.requests.size(), 6u);
  std::set<uint64_t> seeds;
  for (const TrainingRequest& t : trainer.requests) {
    EXPECT_TRUE(t.iteration == 2 || t.iteration == 4);
    EXPECT_EQ(t.seed, LocalTrainingSeed(17, t.particle, t.iteration));
    EXPECT_EQ(t.steps, 4);
    EXPECT_EQ(t.learning_rate, 0.01);
    EXPECT_EQ(t.batch, 8);
    seeds.insert(t.seed);
  }
  EXPECT_EQ(seeds.size(), 6u);
  // Untrained iterations evaluate the moved position as before: a coasting particle whose
  // velocity is zero stays where it is until trained.
  EXPECT_EQ(eval.seen[Key(1, 1)], Experts()[1]);
}

// Fails for particle 0, returns a NaN for particle 1, the wrong length for particle 2.
class BrokenTrainer : public LocalTrainer {
 public:
  absl::StatusOr<std::vector<float>> Train(const TrainingRequest& r) override {
    std::vector<float> out(r.params.begin(), r.params.end());
    if (r.particle == 0) return absl::InternalError("trainer crashed");
    if (r.particle == 1) out[0] = std::nanf("");
    if (r.particle == 2) out.push_back(1);
    return out;
  }
};

TEST(RunnerLocalTrainingTest, AFailedTrainingKeepsTheMovedPositionAndIsCounted) {
  BrokenTrainer broken;
  RecordingEvaluator eval([](int, int) { return 0.0; });
  RunnerOptions o = Coasting(&broken, 1, 2);
  o.params.initial_velocity = InitialVelocityMode::kRandomPeer;
  auto r = RunSwarm(Experts(), Utility(), eval, o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (int k = 1; k <= 2; ++k) {
    EXPECT_EQ(r->history[k].trained, 0);
    EXPECT_EQ(r->history[k].training_failed, 3);
    EXPECT_EQ(r->history[k].evaluated, 3);
  }
  // The same run without training moves (and so evaluates) exactly the same positions.
  RecordingEvaluator plain_eval([](int, int) { return 0.0; });
  RunnerOptions plain = o;
  plain.local_training = {};
  plain.trainer = nullptr;
  ASSERT_TRUE(RunSwarm(Experts(), Utility(), plain_eval, plain).ok());
  EXPECT_EQ(eval.seen, plain_eval.seen);
}

TEST(RunnerLocalTrainingTest, OffMeansTheTrainerIsNeverCalledAndNothingChanges) {
  std::vector<std::vector<float>> experts = MakeRandomExperts(4, 300, 3);
  const std::vector<float> optimum = *MakeHiddenOptimum(experts, 3, 0.0005);
  AddingTrainer trainer;
  RunnerOptions o;
  o.params.seed = 5;
  o.params.max_iterations = 8;
  SyntheticEvaluator e1(optimum), e2(optimum);
  auto plain = RunSwarm(experts, Utility(), e1, o);
  o.trainer = &trainer;  // a trainer alone does not switch training on
  auto with_trainer = RunSwarm(experts, Utility(), e2, o);
  ASSERT_TRUE(plain.ok() && with_trainer.ok());
  EXPECT_TRUE(trainer.requests.empty());
  EXPECT_EQ(plain->best, with_trainer->best);
  ASSERT_EQ(plain->history.size(), with_trainer->history.size());
  for (size_t k = 0; k < plain->history.size(); ++k) {
    EXPECT_EQ(plain->history[k].mean_utility, with_trainer->history[k].mean_utility);
  }
}

TEST(RunnerLocalTrainingTest, RefusesCoefficientSpacesMissingTrainersAndBadSettings) {
  AddingTrainer trainer;
  RecordingEvaluator eval([](int, int) { return 0.0; });
  RunnerOptions o = Coasting(&trainer, 1, 2);
  o.space = SpaceKind::kExpertCoefficients;
  absl::StatusOr<RunResult> r = RunSwarm(Experts(), Utility(), eval, o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("WEIGHTS"), std::string::npos) << r.status();
  EXPECT_TRUE(trainer.requests.empty());
  EXPECT_TRUE(eval.seen.empty());

  o.space = SpaceKind::kWeights;
  o.trainer = nullptr;
  EXPECT_EQ(RunSwarm(Experts(), Utility(), eval, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.trainer = &trainer;
  o.local_training.steps = 0;
  EXPECT_EQ(RunSwarm(Experts(), Utility(), eval, o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp
