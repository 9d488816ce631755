#include "common/rng.h"

#include <cmath>

#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(RngTest, DrawsArePureFunctionsOfCoordinates) {
  const double a = DrawUniform(7, RngStream::kCoefficients, 3, 1, 2);
  // Unrelated draws in between must not disturb a repeated draw.
  DrawUniform(7, RngStream::kCoefficients, 4, 1, 2);
  EXPECT_EQ(a, DrawUniform(7, RngStream::kCoefficients, 3, 1, 2));
  EXPECT_NE(a, DrawUniform(8, RngStream::kCoefficients, 3, 1, 2));
  EXPECT_NE(a, DrawUniform(7, RngStream::kPool, 3, 1, 2));
  EXPECT_NE(a, DrawUniform(7, RngStream::kCoefficients, 3, 2, 1));
}

TEST(RngTest, UniformIsInUnitIntervalWithMeanOneHalf) {
  double sum = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = DrawUniform(1, RngStream::kSynthetic, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  // Standard error of the mean is 1/sqrt(12 n) ~ 0.0009.
  EXPECT_NEAR(sum / n, 0.5, 0.005);
}

TEST(RngTest, IndexCoversRangeUniformly) {
  int counts[5] = {0, 0, 0, 0, 0};
  for (int i = 0; i < 50000; ++i) {
    const uint64_t k = DrawIndex(3, RngStream::kPool, 5, i);
    ASSERT_LT(k, 5u);
    ++counts[k];
  }
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
}

TEST(RngTest, GaussianHasUnitVariance) {
  CounterRng rng(11, RngStream::kSynthetic);
  double sum = 0, sq = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double g = rng.NextGaussian();
    sum += g;
    sq += g * g;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.02);
  EXPECT_NEAR(sq / n, 1.0, 0.03);
}

}  // namespace
}  // namespace wxp
