#include "common/swarm_pool.h"

#include <string>
#include <vector>

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

// Per-module coefficient positions: coordinate j*2 + m is expert j's weight on module m.
TEST(GrowPoolTest, EachCoordinateGroupIsInterpolatedWithItsOwnWeight) {
  const std::vector<std::vector<float>> experts = {
      {1, 1, 0, 0, 0, 0}, {0, 0, 1, 1, 0, 0}, {0, 0, 0, 0, 1, 1}};
  auto pool = GrowPool(experts, 7, 17, 2);
  ASSERT_TRUE(pool.ok()) << pool.status();
  ASSERT_EQ(pool->size(), 7u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*pool)[i], experts[i]);
  const auto plan = *PlanPool(3, 7, 17, 2);
  int module_uniform_children = 0;
  for (const Crossover& c : plan) {
    ASSERT_EQ(c.group_w.size(), 2u);
    for (int d = 0; d < 6; ++d) {
      const double w = c.group_w[d % 2];
      const float wa = static_cast<float>(w), wb = static_cast<float>(1.0 - w);
      EXPECT_EQ((*pool)[c.child][d], wa * (*pool)[c.parent_a][d] + wb * (*pool)[c.parent_b][d]);
    }
    bool uniform = true;
    for (int j = 0; j < 3; ++j) uniform &= (*pool)[c.child][2 * j] == (*pool)[c.child][2 * j + 1];
    module_uniform_children += uniform;
  }
  // One weight for the whole position would keep every child module-uniform.
  EXPECT_EQ(module_uniform_children, 0);
}

TEST(GrowPoolTest, RejectsPositionsThatDoNotSplitIntoTheGroups) {
  auto pool = GrowPool({{1, 2, 3}, {4, 5, 6}}, 3, 1, 2);
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(pool.status().message().find("2 coordinate groups"), std::string::npos)
      << pool.status();
}

TEST(GrowPoolTest, RejectsExpertsOfDifferentLengthsAndImpossiblePools) {
  EXPECT_EQ(GrowPool({{1, 2}, {3}}, 4, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GrowPool({}, 2, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GrowPool({{1}}, 2, 1).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp
