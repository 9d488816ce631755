#include "common/local_trainer.h"

#include <cmath>

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

TEST(LocalTrainingParamsTest, ParsesTheFlagSpelling) {
  absl::StatusOr<LocalTrainingParams> p = ParseLocalTraining("2:20:0.005:64");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->every_k, 2);
  EXPECT_EQ(p->steps, 20);
  EXPECT_EQ(p->learning_rate, 0.005);
  EXPECT_EQ(p->batch, 64);
  EXPECT_FALSE(ParseLocalTraining("")->enabled());
  for (const char* bad : {"2:20:0.005", "2:20:0.005:64:1", "x:20:0.005:64", "0:20:0.005:64",
                          "2:0:0.005:64", "2:20:-1:64", "2:20:0.005:0"}) {
    EXPECT_EQ(ParseLocalTraining(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseLocalTraining("x").status().message().find("EVERY_K:STEPS:LR:BATCH"),
            std::string::npos);
  EXPECT_EQ(ParseLocalTraining("1:5:0.01:8", SpaceKind::kExpertCoefficients).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp
