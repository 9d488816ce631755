#include "common/utility.h"

#include "gtest/gtest.h"

namespace wxp {
namespace {

UtilityFunction LawAndPerplexity() {
  auto u = UtilityFunction::Create(
      {{"law_eval_acc", true, 2.0, 0.0, 1.0}, {"perplexity", false, 0.5, 1.0, std::nullopt}});
  EXPECT_TRUE(u.ok()) << u.status();
  return *u;
}

TEST(UtilityTest, CombinesWeightedComponentsWithDirection) {
  // 2*0.75 - 0.5*4 = 1.5 - 2 = -0.5; extra components are ignored.
  auto v = LawAndPerplexity().Combine({{"law_eval_acc", 0.75}, {"perplexity", 4}, {"x", 9}});
  ASSERT_TRUE(v.ok());
  EXPECT_DOUBLE_EQ(*v, -0.5);
}

TEST(UtilityTest, RejectsMissingNonFiniteAndOutOfRangeScores) {
  UtilityFunction u = LawAndPerplexity();
  auto missing = u.Combine({{"law_eval_acc", 0.5}});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("perplexity"), std::string::npos);
  EXPECT_FALSE(u.Combine({{"law_eval_acc", std::nan("")}, {"perplexity", 2}}).ok());
  auto range = u.Combine({{"law_eval_acc", 1.5}, {"perplexity", 2}});
  EXPECT_NE(range.status().message().find("outside its valid range"), std::string::npos);
  EXPECT_FALSE(u.Combine({{"law_eval_acc", 0.5}, {"perplexity", 0.5}}).ok());
  EXPECT_TRUE(u.CheckScores({{"law_eval_acc", 1.0}, {"perplexity", 1.0}}).ok());
}

TEST(UtilityTest, RejectsInvalidDefinitions) {
  EXPECT_FALSE(UtilityFunction::Create({}).ok());
  EXPECT_FALSE(UtilityFunction::Create({{"a"}, {"a"}}).ok());
  EXPECT_FALSE(UtilityFunction::Create({{""}}).ok());
  EXPECT_FALSE(UtilityFunction::Create({{"a", true, 0.0}}).ok());
  EXPECT_FALSE(UtilityFunction::Create({{"a", true, 1.0, 2.0, 1.0}}).ok());
  EXPECT_FALSE(UtilityFunction::Create({{"a", true, std::nan("")}}).ok());
}

TEST(UtilityTest, NewWeightsMakeANewVersion) {
  UtilityFunction u = LawAndPerplexity();
  auto v2 = u.WithWeights({{"perplexity", 0.0}});
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(u.version(), 1);
  EXPECT_EQ(v2->version(), 2);
  EXPECT_DOUBLE_EQ(*v2->Combine({{"law_eval_acc", 0.75}, {"perplexity", 4}}), 1.5);
  EXPECT_FALSE(u.WithWeights({{"nope", 1.0}}).ok());
  EXPECT_FALSE(u.WithWeights({{"law_eval_acc", 0.0}, {"perplexity", 0.0}}).ok());
}

}  // namespace
}  // namespace wxp
