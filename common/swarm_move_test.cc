#include "common/swarm_move.h"

#include <vector>

#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(SwarmMoveTest, MoveMatchesHandComputedUpdate) {
  // x=1, v=2, p=3, g=5, gw=-1; a,b,c,d = .1,.2,.3,.4; step .5:
  // v' = .1*2 + .2*(3-1) + .3*(5-1) + .4*(1-(-1)) = .2 + .4 + 1.2 + .8 = 2.6
  // x' = 1 + .5*2.6 = 2.3
  std::vector<float> x = {1, 0}, v = {2, 0};
  const std::vector<float> p = {3, 0}, g = {5, 1}, gw = {-1, 0};
  MoveParticle({0.1f, 0.2f, 0.3f, 0.4f, 0.5f}, x.data(), v.data(), p.data(), g.data(), gw.data(),
               2);
  EXPECT_NEAR(v[0], 2.6f, 1e-6);
  EXPECT_NEAR(x[0], 2.3f, 1e-6);
  // Second element: only the social pull acts: v = .3*(1-0) = .3, x = .15.
  EXPECT_NEAR(v[1], 0.3f, 1e-7);
  EXPECT_NEAR(x[1], 0.15f, 1e-7);
}

TEST(SwarmMoveTest, Bf16TargetsGiveTheSameMoveForRepresentableValues) {
  // 3, 5 and -1 are exact in bf16: 0x4040, 0x40A0, 0xBF80.
  std::vector<float> x = {1}, v = {2};
  const uint16_t p = 0x4040, g = 0x40A0, gw = 0xBF80;
  MoveParticleBf16Targets({0.1f, 0.2f, 0.3f, 0.4f, 0.5f}, x.data(), v.data(), &p, &g, &gw, 1);
  EXPECT_NEAR(v[0], 2.6f, 1e-6);
  EXPECT_NEAR(x[0], 2.3f, 1e-6);
}

TEST(SwarmMoveTest, MoveWorksOnLongBuffersWithAliasedTargets) {
  const int64_t n = 1003;  // not a multiple of any vector width
  std::vector<float> x(n, 2.0f), v(n, 0.0f), target(n, 4.0f);
  // p, g and gw all alias one buffer: v = b*2 + c*2 + d*(-2) = 2*(.25+.25-.25) = .5
  MoveParticle({0.25f, 0.25f, 0.25f, 0.25f, 1.0f}, x.data(), v.data(), target.data(), target.data(),
               target.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_FLOAT_EQ(v[i], 0.5f);
    ASSERT_FLOAT_EQ(x[i], 2.5f);
  }
}

TEST(SwarmMoveTest, RestartCopiesBestAndZeroesVelocity) {
  std::vector<float> x = {1, 2}, v = {3, 4};
  const std::vector<float> p = {7, 8};
  RestartParticle(x.data(), v.data(), p.data(), 2);
  EXPECT_EQ(x, p);
  EXPECT_EQ(v, (std::vector<float>{0, 0}));
}

TEST(SwarmMoveTest, CrossoverInterpolatesAndExtrapolates) {
  const std::vector<float> a = {2, 0}, b = {4, 1};
  std::vector<float> out(2);
  Interpolate(0.5, a.data(), b.data(), out.data(), 2);  // midpoint
  EXPECT_FLOAT_EQ(out[0], 3);
  EXPECT_FLOAT_EQ(out[1], 0.5);
  Interpolate(1.5, a.data(), b.data(), out.data(), 2);  // 1.5*2 - 0.5*4 = 1; -0.5*1
  EXPECT_FLOAT_EQ(out[0], 1);
  EXPECT_FLOAT_EQ(out[1], -0.5);
}

TEST(SwarmMoveTest, DifferenceIsTargetMinusX) {
  const std::vector<float> t = {5, -1}, x = {2, 2};
  std::vector<float> v(2);
  Difference(t.data(), x.data(), v.data(), 2);
  EXPECT_EQ(v, (std::vector<float>{3, -3}));
}

TEST(SwarmMoveTest, FollowingATrainedPositionAddsItsDisplacementInVelocityUnits) {
  const std::vector<float> trained = {1.5f, -2.0f};
  std::vector<float> x = {1.0f, -1.0f}, v = {0.25f, 0.5f};
  FollowTrainedPosition(trained.data(), 0.5f, x.data(), v.data(), 2);
  EXPECT_EQ(x, trained);
  // v + (trained - x) / step: 0.25 + 0.5 / 0.5, 0.5 + (-1) / 0.5.
  EXPECT_EQ(v, (std::vector<float>{1.25f, -1.5f}));
  // A zero step cannot express a displacement as a velocity: v stays.
  x = {0, 0};
  FollowTrainedPosition(trained.data(), 0.0f, x.data(), v.data(), 2);
  EXPECT_EQ(x, trained);
  EXPECT_EQ(v, (std::vector<float>{1.25f, -1.5f}));
}

}  // namespace
}  // namespace wxp
