#include "common/swarm_pool.h"

#include "common/swarm_engine.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(GrowPoolTest, ExpertsFirstThenThePlannedChildren) {
  const std::vector<std::vector<float>> experts = {{1, 2}, {3, 4}, {-1, 0}};
  auto pool = GrowPool(experts, 6, 17);
  ASSERT_TRUE(pool.ok()) << pool.status();
  ASSERT_EQ(pool->size(), 6u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*pool)[i], experts[i]);
  const auto plan = *PlanPool(3, 6, 17);
  for (const Crossover& c : plan) {
    const float wa = static_cast<float>(c.w), wb = static_cast<float>(1.0 - c.w);
    for (int d = 0; d < 2; ++d) {
      EXPECT_EQ((*pool)[c.child][d], wa * (*pool)[c.parent_a][d] + wb * (*pool)[c.parent_b][d]);
    }
  }
}

TEST(GrowPoolTest, RejectsExpertsOfDifferentLengthsAndImpossiblePools) {
  EXPECT_EQ(GrowPool({{1, 2}, {3}}, 4, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GrowPool({}, 2, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GrowPool({{1}}, 2, 1).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp
