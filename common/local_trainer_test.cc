#include "common/local_trainer.h"

#include <cmath>
#include <vector>

#include "common/swarm_engine.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(LocalTrainingParamsTest, OffIsValidEverywhere) {
  LocalTrainingParams off;
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.Validate(SpaceKind::kWeights).ok());
  EXPECT_TRUE(off.Validate(SpaceKind::kExpertCoefficients).ok());
}

TEST(LocalTrainingParamsTest, RejectsEachInvalidSettingAndCoefficientSpaces) {
  const LocalTrainingParams good{2, 10, 1e-3, 16};
  EXPECT_TRUE(good.Validate(SpaceKind::kWeights).ok());
  absl::Status s = good.Validate(SpaceKind::kExpertCoefficients);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("WEIGHTS"), std::string::npos) << s;
  struct Case {
    LocalTrainingParams p;
    const char* field;
  } cases[] = {
      {{-1, 10, 1e-3, 16}, "every_k"},          {{2, 0, 1e-3, 16}, "steps"},
      {{2, 10, 0, 16}, "learning rate"},        {{2, 10, std::nan(""), 16}, "learning rate"},
      {{2, 10, INFINITY, 16}, "learning rate"}, {{2, 10, 1e-3, 0}, "batch"},
  };
  for (const Case& c : cases) {
    absl::Status st = c.p.Validate(SpaceKind::kWeights);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(st.message().find(c.field), std::string::npos) << st;
  }
}

TEST(LocalTrainingParamsTest, DpSettingsAreCheckedTogether) {
  auto with = [](double eps, double delta, double clip) {
    LocalTrainingParams p{2, 10, 1e-3, 16};
    p.dp_epsilon = eps, p.dp_delta = delta, p.dp_clip_norm = clip;
    return p;
  };
  EXPECT_TRUE(with(4, 1e-5, 0).Validate(SpaceKind::kWeights).ok());
  EXPECT_TRUE(with(4, 1e-5, 0.5).private_training());
  EXPECT_FALSE(with(0, 0, 0).private_training());
  struct Case {
    LocalTrainingParams p;
    const char* field;
  } cases[] = {
      {with(-1, 1e-5, 0), "dp_epsilon"},
      {with(NAN, 1e-5, 0), "dp_epsilon"},
      {with(INFINITY, 1e-5, 0), "dp_epsilon"},
      {with(4, 0, 0), "dp_delta"},
      {with(4, 1, 0), "dp_delta"},
      {with(4, NAN, 0), "dp_delta"},
      {with(0, 1e-5, 0), "dp_delta without dp_epsilon"},
      {with(4, 1e-5, -1), "dp_clip_norm"},
      {with(4, 1e-5, INFINITY), "dp_clip_norm"},
  };
  for (const Case& c : cases) {
    absl::Status st = c.p.Validate(SpaceKind::kWeights);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(st.message().find(c.field), std::string::npos) << st;
  }
  // Off, the DP settings are ignored like the others.
  LocalTrainingParams off = with(-1, 7, -1);
  off.every_k = 0;
  EXPECT_TRUE(off.Validate(SpaceKind::kWeights).ok());
  EXPECT_FALSE(off.private_training());
}

// The budget covers every training a site can do: floor(max_iterations / every_k) of each
// of the pool's particles.
TEST(LocalTrainingParamsTest, MaxStepsPerSiteBoundsEveryTraining) {
  LocalTrainingParams p{3, 10, 1e-3, 16};
  EXPECT_EQ(p.MaxStepsPerSite(30, 8), 10 * 10 * 8);
  EXPECT_EQ(p.MaxStepsPerSite(31, 8), 10 * 10 * 8);
  EXPECT_EQ(p.MaxStepsPerSite(2, 8), 0);
  EXPECT_EQ(p.MaxStepsPerSite(30, 0), 0);
  EXPECT_EQ(LocalTrainingParams{}.MaxStepsPerSite(30, 8), 0);
}

TEST(LocalTrainingParamsTest, MakeTrainingRequestIsTheEnginesJob) {
  LocalTrainingParams p{2, 10, 1e-3, 16};
  const std::vector<float> x = {1, 2, 3};
  TrainingRequest r = MakeTrainingRequest(p, 99, 20, 6, 4, 8, x);
  EXPECT_EQ((std::vector<int>{r.particle, r.iteration, r.steps, r.batch}),
            (std::vector<int>{4, 8, 10, 16}));
  EXPECT_EQ(r.seed, LocalTrainingSeed(99, 4, 8));
  EXPECT_EQ(r.learning_rate, 1e-3);
  EXPECT_EQ(r.params.data(), x.data());
  EXPECT_EQ(r.dp_epsilon, 0);
  EXPECT_EQ(r.dp_max_steps, 0);
  p.dp_epsilon = 4, p.dp_delta = 1e-5;
  r = MakeTrainingRequest(p, 99, 20, 6, 4, 8, x);
  EXPECT_EQ(r.dp_epsilon, 4);
  EXPECT_EQ(r.dp_delta, 1e-5);
  EXPECT_EQ(r.dp_clip_norm, 1.0);  // 0 means 1
  EXPECT_EQ(r.dp_max_steps, 10 * 10 * 6);
  p.dp_clip_norm = 0.25;
  EXPECT_EQ(MakeTrainingRequest(p, 99, 20, 6, 4, 8, x).dp_clip_norm, 0.25);
}

TEST(LocalTrainingParamsTest, ParsesTheFlagSpelling) {
  absl::StatusOr<LocalTrainingParams> p = ParseLocalTraining("2:20:0.005:64");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->every_k, 2);
  EXPECT_EQ(p->steps, 20);
  EXPECT_EQ(p->learning_rate, 0.005);
  EXPECT_EQ(p->batch, 64);
  EXPECT_FALSE(ParseLocalTraining("")->enabled());
  p = ParseLocalTraining("2:20:0.005:256:4:1e-5");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->dp_epsilon, 4);
  EXPECT_EQ(p->dp_delta, 1e-5);
  EXPECT_EQ(p->dp_clip_norm, 0);
  p = ParseLocalTraining("2:20:0.005:256:4:1e-5:0.5");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->dp_clip_norm, 0.5);
  for (const char* bad :
       {"2:20:0.005", "2:20:0.005:64:1", "x:20:0.005:64", "0:20:0.005:64", "2:0:0.005:64",
        "2:20:-1:64", "2:20:0.005:0", "2:20:0.005:64:0:1e-5", "2:20:0.005:64:4:2",
        "2:20:0.005:64:4:1e-5:-1", "2:20:0.005:64:4:1e-5:1:1"}) {
    EXPECT_EQ(ParseLocalTraining(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseLocalTraining("x").status().message().find("EVERY_K:STEPS:LR:BATCH"),
            std::string::npos);
  EXPECT_EQ(ParseLocalTraining("1:5:0.01:8", SpaceKind::kExpertCoefficients).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp
