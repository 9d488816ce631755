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

}  // namespace
}  // namespace wxp
