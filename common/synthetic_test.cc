#include "common/synthetic.h"

#include <cmath>

#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(SyntheticTest, ReachableUtilityOfHandBuiltHull) {
  // Hull of (0,0) and (2,0) is the x axis; the closest point to (1,1) is (1,0):
  // distance 1 over 2 dims -> RMS sqrt(1/2).
  auto u = ReachableUtility({{0, 0}, {2, 0}}, {1, 1});
  ASSERT_TRUE(u.ok());
  EXPECT_NEAR(*u, -std::sqrt(0.5), 1e-9);
  // A point in the hull (even by extrapolation) is reachable exactly.
  EXPECT_NEAR(*ReachableUtility({{0, 0, 1}, {1, 0, 1}, {0, 1, 1}}, {3, -2, 1}), 0.0, 1e-9);
  // Duplicate experts make a degenerate system; it must still answer.
  EXPECT_NEAR(*ReachableUtility({{0, 0}, {0, 0}, {2, 0}}, {1, 1}), -std::sqrt(0.5), 1e-9);
  EXPECT_FALSE(ReachableUtility({{0, 0}, {1}}, {1, 1}).ok());
}

TEST(SyntheticTest, OptimumSitsNearTheHull) {
  auto experts = MakeRandomExperts(4, 5000, 3);
  auto opt = MakeHiddenOptimum(experts, 3, 0.001);
  ASSERT_TRUE(opt.ok());
  auto reach = ReachableUtility(experts, *opt);
  ASSERT_TRUE(reach.ok());
  // Off-hull RMS 0.001: the residual is almost all of it (3 of 5000 directions are lost).
  EXPECT_NEAR(*reach, -0.001, 0.0001);
  // Every expert is much farther away than that (experts have RMS 0.02 each).
  for (const auto& e : experts) EXPECT_LT(NegativeRmsDistance(e, *opt), -0.005);
}

TEST(SyntheticTest, EvaluatorScoresNegativeDistanceAndRejectsWrongLength) {
  SyntheticEvaluator eval({0, 0, 0, 0});
  const std::vector<float> x = {1, 1, 1, 1};  // RMS distance 1
  auto s = eval.Evaluate({0, 0, x});
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->at(kSyntheticComponent), -1.0);
  const std::vector<float> short_x = {1};
  EXPECT_EQ(eval.Evaluate({0, 0, short_x}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SyntheticTest, NoiseIsDeterministicPerParticleAndIteration) {
  SyntheticEvaluator eval({0, 0}, 0.1, 5);
  const std::vector<float> x = {0, 0};
  const double a = eval.Evaluate({1, 2, x})->at(kSyntheticComponent);
  EXPECT_EQ(a, eval.Evaluate({1, 2, x})->at(kSyntheticComponent));
  EXPECT_NE(a, eval.Evaluate({1, 3, x})->at(kSyntheticComponent));
  EXPECT_NE(a, 0.0);
}

TEST(SyntheticTest, TrainerApproachesTheOptimumDeterministically) {
  const std::vector<float> optimum = MakeRandomExperts(1, 500, 3)[0];
  const std::vector<float> start = MakeRandomExperts(1, 500, 4)[0];
  SyntheticTrainer trainer(optimum);
  TrainingRequest r;
  r.seed = 77;
  r.steps = 5;
  r.learning_rate = 0.2;
  r.batch = 16;
  r.params = start;
  auto a = trainer.Train(r);
  auto b = trainer.Train(r);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*a, *b);
  EXPECT_GT(NegativeRmsDistance(*a, optimum), NegativeRmsDistance(start, optimum));
  r.seed = 78;
  EXPECT_NE(*trainer.Train(r), *a);
  r.batch = 0;
  EXPECT_EQ(trainer.Train(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.batch = 16;
  const std::vector<float> short_start(10, 0.f);
  r.params = short_start;
  EXPECT_EQ(trainer.Train(r).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp
