// The built-in local trainer on the real licence corpus with a tiny model: determinism,
// that training lowers the firm's own loss, that it is FineTune from the position, and
// that a swarm with local training runs and repeats itself.
#include "client/legal/trainer.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "client/legal/evaluator.h"
#include "client/legal/testing/tiny_options.h"
#include "common/dp_accountant.h"
#include "common/runner.h"
#include "gtest/gtest.h"

namespace wxp::legal {
namespace {

using legal_testing::TinyOptions;

class LegalTrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LegalSetup> s = LoadLegalSetup(TinyOptions());
    ASSERT_TRUE(s.ok()) << s.status();
    setup_ = new LegalSetup(std::move(*s));
    experts_ = new std::vector<std::vector<float>>;
    for (const char* shard : {"GPL", "MPL"}) {
      FineTuneOptions ft;
      ft.steps = 40;
      ft.init_seed = ft.seed = experts_->size() + 1;
      absl::StatusOr<LegalExpert> e =
          FineTuneLegalExpert(*setup_->model, setup_->corpus, shard, ft);
      ASSERT_TRUE(e.ok()) << e.status();
      experts_->push_back(e->adapter.values);
    }
  }
  static void TearDownTestSuite() {
    delete setup_;
    delete experts_;
  }
  static TrainingRequest Request(const std::vector<float>& x, uint64_t seed, int steps) {
    TrainingRequest r;
    r.particle = 1;
    r.iteration = 2;
    r.seed = seed;
    r.steps = steps;
    r.learning_rate = 5e-3;
    r.batch = 64;
    r.params = x;
    return r;
  }
  static LegalSetup* setup_;
  static std::vector<std::vector<float>>* experts_;
};
LegalSetup* LegalTrainerTest::setup_ = nullptr;
std::vector<std::vector<float>>* LegalTrainerTest::experts_ = nullptr;

TEST_F(LegalTrainerTest, SameSeedSameBytesOtherSeedOtherBytes) {
  auto trainer = MakeLegalTrainer(setup_->model, setup_->corpus, "MPL");
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const std::vector<float>& x = (*experts_)[0];
  absl::StatusOr<std::vector<float>> a = (*trainer)->Train(Request(x, 11, 20));
  absl::StatusOr<std::vector<float>> b = (*trainer)->Train(Request(x, 11, 20));
  absl::StatusOr<std::vector<float>> c = (*trainer)->Train(Request(x, 12, 20));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status() << b.status() << c.status();
  ASSERT_EQ(a->size(), x.size());
  EXPECT_EQ(std::memcmp(a->data(), b->data(), a->size() * sizeof(float)), 0);
  EXPECT_NE(*a, *c);
  EXPECT_NE(*a, x);
  EXPECT_EQ((*trainer)->steps_run(), 60);
}

TEST_F(LegalTrainerTest, TrainingLowersTheFirmsOwnLossAndIsFineTuneFromThePosition) {
  const LegalModel& m = *setup_->model;
  absl::StatusOr<Segments> train = setup_->corpus.Get(Split::kTrain, "MPL");
  ASSERT_TRUE(train.ok());
  absl::StatusOr<TokenData> data = m.Tokenize(*train);
  ASSERT_TRUE(data.ok());
  auto trainer = MakeLegalTrainer(setup_->model, setup_->corpus, "MPL");
  ASSERT_TRUE(trainer.ok());
  // The GPL expert trained on the MPL firm's text: the loss there falls step by step.
  const std::vector<float>& x = (*experts_)[0];
  double previous = m.Score(x, *data)->loss;
  for (int steps : {10, 40}) {
    absl::StatusOr<std::vector<float>> y = (*trainer)->Train(Request(x, 3, steps));
    ASSERT_TRUE(y.ok()) << y.status();
    const double loss = m.Score(*y, *data)->loss;
    EXPECT_LT(loss, previous) << steps << " steps";
    previous = loss;
  }
  // One training loop: FineTune from the same start with the same seed gives the same bytes
  // and reports the loss before and after.
  FineTuneOptions ft;
  ft.steps = 40;
  ft.batch = 64;
  ft.lr = 5e-3;
  ft.seed = 3;
  ft.start = x;
  absl::StatusOr<FineTuneResult> direct = m.FineTune(*train, ft);
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(direct->lora, *(*trainer)->Train(Request(x, 3, 40)));
  EXPECT_DOUBLE_EQ(direct->initial_loss, m.Score(x, *data)->loss);
  EXPECT_LT(direct->final_loss, direct->initial_loss);
}

TEST_F(LegalTrainerTest, RefusesBadPositionsAndUnknownShards) {
  auto trainer = MakeLegalTrainer(setup_->model, setup_->corpus, "GPL");
  ASSERT_TRUE(trainer.ok());
  std::vector<float> x = (*experts_)[0];
  std::vector<float> shorter(x.begin(), x.end() - 1);
  EXPECT_EQ((*trainer)->Train(Request(shorter, 1, 5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  x[3] = std::nanf("");
  EXPECT_EQ((*trainer)->Train(Request(x, 1, 5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*trainer)->Train(Request((*experts_)[0], 1, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*trainer)->steps_run(), 0);
  EXPECT_EQ(MakeLegalTrainer(setup_->model, setup_->corpus, "no-such-firm").status().code(),
            absl::StatusCode::kNotFound);
}

// DP local training (SPEC 12): FineTune with DP-SGD at the noise that keeps the whole
// budget (dp_max_steps steps) within (ε, δ), deterministic for a seed, different from the
// plain training, and refused when the budget cannot cover it.
TEST_F(LegalTrainerTest, DpTrainingIsDpSgdWithinTheWholeRunsBudget) {
  auto trainer = MakeLegalTrainer(setup_->model, setup_->corpus, "MPL");
  ASSERT_TRUE(trainer.ok());
  const std::vector<float>& x = (*experts_)[0];
  auto dp_request = [&](uint64_t seed) {
    TrainingRequest r = Request(x, seed, 10);
    r.dp_epsilon = 4, r.dp_delta = 1e-6, r.dp_clip_norm = 0.5, r.dp_max_steps = 600;
    return r;
  };
  absl::StatusOr<std::vector<float>> a = (*trainer)->Train(dp_request(7));
  absl::StatusOr<std::vector<float>> b = (*trainer)->Train(dp_request(7));
  absl::StatusOr<std::vector<float>> plain = (*trainer)->Train(Request(x, 7, 10));
  ASSERT_TRUE(a.ok() && b.ok() && plain.ok()) << a.status() << b.status() << plain.status();
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *plain);
  EXPECT_NE(*a, x);
  // The same as FineTune with the DP-SGD settings the accountant gives for the whole run.
  absl::StatusOr<Segments> train = setup_->corpus.Get(Split::kTrain, "MPL");
  ASSERT_TRUE(train.ok());
  const int64_t n = setup_->model->Tokenize(*train)->examples();
  const double q = std::min(1.0, 64.0 / static_cast<double>(n));
  absl::StatusOr<double> sigma = dp::CalibrateNoiseMultiplier(4, 1e-6, q, 600);
  ASSERT_TRUE(sigma.ok()) << sigma.status();
  FineTuneOptions ft;
  ft.steps = 10;
  ft.batch = 64;
  ft.lr = 5e-3;
  ft.seed = 7;
  ft.start = x;
  ft.report_losses = false;
  ft.dp = {0.5, *sigma, q};
  absl::StatusOr<FineTuneResult> direct = setup_->model->FineTune(*train, ft);
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(direct->lora, *a);
  // A budget for fewer steps than one training, or a δ not below 1/N, is refused.
  TrainingRequest r = dp_request(7);
  r.dp_max_steps = 9;
  absl::Status s = (*trainer)->Train(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("cannot cover"), std::string::npos) << s;
  r = dp_request(7);
  r.dp_delta = 2.0 / static_cast<double>(n);
  s = (*trainer)->Train(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("1/N"), std::string::npos) << s;
}

TEST_F(LegalTrainerTest, ASwarmWithLocalTrainingRunsAndRepeatsItself) {
  auto run = [&]() -> absl::StatusOr<RunResult> {
    auto evaluator = MakeLegalEvaluator(setup_->model, setup_->corpus, Split::kDev);
    auto trainer = MakeLegalTrainer(setup_->model, setup_->corpus, "GPL");
    if (!evaluator.ok()) return evaluator.status();
    if (!trainer.ok()) return trainer.status();
    RunnerOptions o;
    o.params.seed = 4;
    o.params.max_iterations = 2;
    o.local_training = {1, 5, 5e-3, 32};
    o.trainer = trainer->get();
    return RunSwarm(*experts_, *UtilityFunction::Create({{kCharAccComponent, true, 1.0}}),
                    **evaluator, o);
  };
  absl::StatusOr<RunResult> a = run(), b = run();
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  for (int k = 1; k <= 2; ++k) {
    EXPECT_EQ(a->history[k].trained, 4);
    EXPECT_EQ(a->history[k].training_failed, 0);
  }
  EXPECT_EQ(std::memcmp(a->best.data(), b->best.data(), a->best.size() * sizeof(float)), 0);
  EXPECT_EQ(a->best_ref, b->best_ref);
}

}  // namespace
}  // namespace wxp::legal
