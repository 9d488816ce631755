#include "common/dp_sgd.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace wxp::dp {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(DpSgdTest, ClipsAGradientOfNormFiveToOne) {
  std::vector<float> g = {3, 4};
  EXPECT_DOUBLE_EQ(ClipToNorm(absl::MakeSpan(g), 1.0), 5.0);
  EXPECT_FLOAT_EQ(g[0], 0.6f);
  EXPECT_FLOAT_EQ(g[1], 0.8f);
}

TEST(DpSgdTest, LeavesAGradientUnderTheBoundAlone) {
  std::vector<float> g = {0.3f, 0.4f};
  EXPECT_NEAR(ClipToNorm(absl::MakeSpan(g), 1.0), 0.5, 1e-7);
  EXPECT_EQ(g[0], 0.3f);
  EXPECT_EQ(g[1], 0.4f);
  std::vector<float> h = {30, 40};
  ClipToNorm(absl::MakeSpan(h), kInf);  // no clipping at all
  EXPECT_EQ(h[0], 30);
  EXPECT_EQ(h[1], 40);
}

TEST(DpSgdTest, ClipsOverAllParametersTogether) {
  // Two "tensors" (1) and (2, 2) of one example: joint norm 3, each scaled by 1/3, not
  // each clipped on its own (which would leave the first at 1).
  ClippedGradientSum sum(3, 1.0);
  ASSERT_TRUE(sum.Add({1, 2, 2}).ok());
  CounterRng rng(1, RngStream::kDpNoise);
  const std::vector<float> out = sum.Release(0, 1, rng);
  EXPECT_FLOAT_EQ(out[0], 1.0f / 3);
  EXPECT_FLOAT_EQ(out[1], 2.0f / 3);
  EXPECT_FLOAT_EQ(out[2], 2.0f / 3);
}

TEST(DpSgdTest, SumsClippedGradientsAndDividesByTheExpectedBatch) {
  ClippedGradientSum sum(2, 1.0);
  ASSERT_TRUE(sum.Add({3, 4}).ok());        // clipped to (0.6, 0.8)
  ASSERT_TRUE(sum.Add({0.3f, 0.4f}).ok());  // kept
  EXPECT_EQ(sum.count(), 2);
  CounterRng rng(1, RngStream::kDpNoise);
  // Sum (0.9, 1.2); the expected batch (say q·N = 4), not the drawn 2, divides it.
  const std::vector<float> out = sum.Release(0, 4, rng);
  EXPECT_FLOAT_EQ(out[0], 0.225f);
  EXPECT_FLOAT_EQ(out[1], 0.3f);
}

TEST(DpSgdTest, RefusesWrongLengthsAndNonFiniteGradients) {
  ClippedGradientSum sum(2, 1.0);
  EXPECT_EQ(sum.Add({1, 2, 3}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sum.Add({1, std::nanf("")}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sum.Add({1, std::numeric_limits<float>::infinity()}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sum.count(), 0);
}

// The noise on each coordinate of the sum is N(0, σ²C²); after the division by the expected
// batch B its standard deviation is σC/B.
TEST(DpSgdTest, NoiseHasTheCalibratedScale) {
  const int dim = 200000;
  for (const auto& [sigma, clip, batch] :
       std::vector<std::tuple<double, double, double>>{{2.0, 0.5, 1}, {1.1, 1.0, 10}}) {
    ClippedGradientSum sum(dim, clip);
    CounterRng rng(7, RngStream::kDpNoise);
    const std::vector<float> out = sum.Release(sigma, batch, rng);
    double s = 0, sq = 0;
    for (float v : out) s += v, sq += static_cast<double>(v) * v;
    const double mean = s / dim, sd = std::sqrt(sq / dim - mean * mean);
    const double want = sigma * clip / batch;
    // The sample sd of 2e5 normals is within 0.5% of the true one with overwhelming odds.
    EXPECT_NEAR(sd, want, 0.005 * want);
    EXPECT_NEAR(mean, 0, 5 * want / std::sqrt(dim));
  }
  // Same seed, same noise; another seed, other noise.
  ClippedGradientSum sum(4, 1.0);
  CounterRng a(3, RngStream::kDpNoise), b(3, RngStream::kDpNoise), c(4, RngStream::kDpNoise);
  EXPECT_EQ(sum.Release(1, 1, a), sum.Release(1, 1, b));
  EXPECT_NE(sum.Release(1, 1, a), sum.Release(1, 1, c));
}

// With σ = 0 and C = +inf the released gradient is the mean gradient (when the expected
// batch is the drawn one), so a step is plain SGD's. Least squares, loss ½(w·x − y)²,
// gradient (w·x − y)x, by hand: w = (1, −1); x1 = (1, 2), y1 = 0 -> residual −1, gradient
// (−1, −2); x2 = (3, 1), y2 = 1 -> residual 1, gradient (3, 1). Mean (1, −0.5); SGD with
// learning rate 0.1 moves w to (0.9, −0.95).
TEST(DpSgdTest, NoNoiseAndNoClippingIsPlainSgd) {
  const DpSgdParams p{kInf, 0, 1.0};
  ASSERT_TRUE(p.Validate().ok());
  const std::vector<float> w = {1, -1};
  const std::vector<std::vector<float>> xs = {{1, 2}, {3, 1}};
  const std::vector<float> ys = {0, 1};
  ClippedGradientSum sum(2, p.clip_norm);
  for (size_t i = 0; i < xs.size(); ++i) {
    const float r = w[0] * xs[i][0] + w[1] * xs[i][1] - ys[i];
    ASSERT_TRUE(sum.Add({r * xs[i][0], r * xs[i][1]}).ok());
  }
  CounterRng rng(1, RngStream::kDpNoise);
  const std::vector<float> g = sum.Release(p.noise_multiplier, p.sample_rate * 2, rng);
  EXPECT_FLOAT_EQ(w[0] - 0.1f * g[0], 0.9f);
  EXPECT_FLOAT_EQ(w[1] - 0.1f * g[1], -0.95f);
}

TEST(DpSgdTest, PoissonSampleIncludesEachExampleWithRateQ) {
  CounterRng all(1, RngStream::kDpSampling);
  const std::vector<int64_t> full = PoissonSample(5, 1.0, all);
  EXPECT_EQ(full, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  CounterRng none(1, RngStream::kDpSampling);
  EXPECT_TRUE(PoissonSample(5, 0.0, none).empty());

  const int64_t n = 100000;
  const double q = 0.1;
  CounterRng rng(5, RngStream::kDpSampling);
  int64_t total = 0;
  for (int step = 0; step < 20; ++step) {
    const std::vector<int64_t> s = PoissonSample(n, q, rng);
    for (size_t i = 0; i < s.size(); ++i) {
      ASSERT_GE(s[i], 0);
      ASSERT_LT(s[i], n);
      if (i > 0) {
        ASSERT_GT(s[i], s[i - 1]);  // ascending, no repeats
      }
    }
    total += s.size();
  }
  // 20 steps x n x q = 200000 expected, standard deviation ~424.
  EXPECT_NEAR(total, 200000, 2500);
  // Sizes vary: a fixed-size batch would not be Poisson sampling.
  CounterRng r1(9, RngStream::kDpSampling);
  EXPECT_NE(PoissonSample(1000, 0.1, r1).size(), PoissonSample(1000, 0.1, r1).size());
  // Deterministic for a seed.
  CounterRng a(11, RngStream::kDpSampling), b(11, RngStream::kDpSampling);
  EXPECT_EQ(PoissonSample(1000, 0.05, a), PoissonSample(1000, 0.05, b));
}

TEST(DpSgdTest, ValidateNamesTheBadSetting) {
  EXPECT_TRUE(DpSgdParams{}.Validate().ok());  // off
  EXPECT_TRUE((DpSgdParams{1.0, 1.1, 0.01}.Validate().ok()));
  EXPECT_EQ((DpSgdParams{1.0, 1.1, 1.5}.Validate().code()), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((DpSgdParams{1.0, 1.1, -0.1}.Validate().code()), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((DpSgdParams{0.0, 1.1, 0.01}.Validate().code()), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((DpSgdParams{1.0, -1, 0.01}.Validate().code()), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((DpSgdParams{1.0, kInf, 0.01}.Validate().code()), absl::StatusCode::kInvalidArgument);
  const absl::Status s = DpSgdParams{kInf, 1.0, 0.01}.Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("clipping norm"), std::string::npos);
}

}  // namespace
}  // namespace wxp::dp
