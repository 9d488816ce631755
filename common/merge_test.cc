#include "common/merge.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/rng.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

using Vec = std::vector<float>;

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// Views over test-owned vectors, in the form the merge functions take.
std::vector<absl::Span<const float>> Spans(const std::vector<Vec>& experts) {
  return std::vector<absl::Span<const float>>(experts.begin(), experts.end());
}

void ExpectNear(const Vec& actual, const Vec& expected, float tolerance = 1e-6f) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t j = 0; j < actual.size(); ++j) {
    EXPECT_NEAR(actual[j], expected[j], tolerance) << "entry " << j;
  }
}

template <typename T>
void ExpectInvalid(const absl::StatusOr<T>& result) {
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
}

// ---------------------------------------------------------------- LinearMerge

TEST(LinearMergeTest, WeightedSoupIsNormalisedByTheWeightSum) {
  const std::vector<Vec> experts = {{1, 2}, {3, 6}};
  // (1*1 + 3*3)/4 = 10/4 = 2.5; (1*2 + 3*6)/4 = 20/4 = 5.
  auto out = LinearMerge(Spans(experts), {1.0, 3.0});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectNear(*out, {2.5f, 5.0f});
  // Scaling every weight changes nothing: (2*1 + 6*3)/8 = 2.5.
  ExpectNear(*LinearMerge(Spans(experts), {2.0, 6.0}), {2.5f, 5.0f});
}

TEST(LinearMergeTest, EmptyWeightsMeanUniform) {
  const std::vector<Vec> experts = {{1, 2}, {3, 6}, {-1, 1}};
  // (1 + 3 - 1)/3 = 1; (2 + 6 + 1)/3 = 3.
  ExpectNear(*LinearMerge(Spans(experts), {}), {1.0f, 3.0f});
}

TEST(LinearMergeTest, NegativeWeightsExtrapolate) {
  const std::vector<Vec> experts = {{1}, {3}};
  // (2*1 - 1*3)/(2 - 1) = -1.
  ExpectNear(*LinearMerge(Spans(experts), {2.0, -1.0}), {-1.0f});
}

TEST(LinearMergeTest, RejectsBadInputs) {
  const std::vector<Vec> experts = {{1, 2}, {3, 6}};
  ExpectInvalid(LinearMerge({}, {}));                           // no experts
  ExpectInvalid(LinearMerge(Spans({{1, 2}, {3}}), {}));         // length mismatch
  ExpectInvalid(LinearMerge(Spans(experts), {1.0}));            // weights count
  ExpectInvalid(LinearMerge(Spans(experts), {1.0, 2.0, 3.0}));  // weights count
  ExpectInvalid(LinearMerge(Spans(experts), {1.0, -1.0}));      // sum to zero
  ExpectInvalid(LinearMerge(Spans(experts), {0.0, 0.0}));       // sum to zero
  ExpectInvalid(LinearMerge(Spans(experts), {1.0, kNaN}));      // non-finite
  ExpectInvalid(LinearMerge(Spans(experts), {kInf, 1.0}));      // non-finite
  ExpectInvalid(LinearMerge(Spans(experts), {1e308, 1e308}));   // sum overflows
}

// ---------------------------------------------------------------- TaskArithmetic

TEST(TaskArithmeticTest, AddsScaledWeightedTaskVectorsToTheBase) {
  const Vec base = {1, 1};
  const std::vector<Vec> experts = {{2, 3}, {0, 5}};
  // δ1 = (1, 2), δ2 = (-1, 4); Σ w·δ with w = (1, 0.5) = (1 - 0.5, 2 + 2) = (0.5, 4);
  // λ = 2 gives (1, 8); plus base (1, 1) = (2, 9).
  auto out = TaskArithmetic(Spans(experts), {1.0, 0.5}, 2.0, base);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectNear(*out, {2.0f, 9.0f});
}

TEST(TaskArithmeticTest, WithoutBaseTheAdapterIsTheTaskVector) {
  const std::vector<Vec> experts = {{1, 2}, {3, 4}};
  // Weights default to 1: (1 + 3, 2 + 4) = (4, 6); λ = 0.5 gives (2, 3).
  ExpectNear(*TaskArithmetic(Spans(experts), {}, 0.5), {2.0f, 3.0f});
  // Negative weight (task negation): 1*(1, 2) - 1*(3, 4) = (-2, -2).
  ExpectNear(*TaskArithmetic(Spans(experts), {1.0, -1.0}, 1.0), {-2.0f, -2.0f});
}

TEST(TaskArithmeticTest, RejectsBadInputs) {
  const std::vector<Vec> experts = {{1, 2}, {3, 4}};
  ExpectInvalid(TaskArithmetic({}, {}, 1.0));
  ExpectInvalid(TaskArithmetic(Spans({{1, 2}, {3}}), {}, 1.0));
  ExpectInvalid(TaskArithmetic(Spans(experts), {1.0}, 1.0));
  ExpectInvalid(TaskArithmetic(Spans(experts), {1.0, kNaN}, 1.0));
  ExpectInvalid(TaskArithmetic(Spans(experts), {}, kInf));
  const Vec short_base = {1};
  ExpectInvalid(TaskArithmetic(Spans(experts), {}, 1.0, short_base));
}

// ---------------------------------------------------------------- TiesMerge

TEST(TiesMergeTest, TrimsElectsAndAveragesPerTensor) {
  const std::vector<Vec> experts = {
      {3, -1, 2, 0.5, /**/ 1, 0.5}, {-2, 4, 1, -0.1, /**/ 2, -3}, {1, -3, -5, 0.2, /**/ 3, 0.1}};
  // Tensors of 4 and 2 entries, density 0.5: keep 2 of 4 and 1 of 2 per expert.
  //   e1 -> (3, 0, 2, 0 | 1, 0)   e2 -> (-2, 4, 0, 0 | 0, -3)   e3 -> (0, -3, -5, 0 | 3, 0)
  // Weights (1, 2, 3); elected sign of Σ w·δ̃, then Σ_agree w·δ̃ / Σ_agree w:
  //   j0: 3 - 4 + 0 = -1 -> '-': only e2:  2*(-2)/2 = -2
  //   j1: 0 + 8 - 9 = -1 -> '-': only e3:  3*(-3)/3 = -3
  //   j2: 2 + 0 - 15 = -13 -> '-': only e3: -5
  //   j3: nothing kept -> 0
  //   j4: 1 + 0 + 9 = 10 -> '+': e1, e3: (1*1 + 3*3)/(1 + 3) = 2.5
  //   j5: 0 - 6 + 0 = -6 -> '-': only e2: -3
  const std::vector<int64_t> sizes = {4, 2};
  auto out = TiesMerge(Spans(experts), {1.0, 2.0, 3.0}, 0.5, sizes);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectNear(*out, {-2, -3, -5, 0, 2.5, -3});
}

TEST(TiesMergeTest, KeepsExactlyKWithLowestIndexWinningTiesAtTheThreshold) {
  const std::vector<Vec> one = {{3, -1, 2, 0.5, 1, 0.5}};
  // One tensor of 6, density 0.5 -> k = 3: magnitudes 3 and 2, then |−1| at index 1 and |1|
  // at index 4 tie for the last place; index 1 wins. A single expert merges to itself.
  ExpectNear(*TiesMerge(Spans(one), {}, 0.5, {}), {3, -1, 2, 0, 0, 0});
  // density 0.25: 0.25*6 = 1.5 rounds to k = 2.
  ExpectNear(*TiesMerge(Spans(one), {}, 0.25, {}), {3, 0, 2, 0, 0, 0});
  // density 0.01: 0.06 rounds to 0, clamped to k = 1.
  ExpectNear(*TiesMerge(Spans(one), {}, 0.01, {}), {3, 0, 0, 0, 0, 0});
  // All-equal magnitudes, k = 2 of 4: the first two are kept.
  const std::vector<Vec> flat = {{-1, 1, -1, 1}};
  ExpectNear(*TiesMerge(Spans(flat), {}, 0.5, {}), {-1, 1, 0, 0});
}

TEST(TiesMergeTest, UsesBaseAndLambda) {
  const Vec base = {0.5, -0.5};
  const std::vector<Vec> experts = {{1.5, -0.5}, {0.5, 1.5}};
  // δ1 = (1, 0), δ2 = (0, 2); density 1 keeps all. j0: sum 1 -> '+' -> e1 alone: 1.
  // j1: sum 2 -> '+' -> e2 alone: 2. λ = 0.5: base + (0.5, 1) = (1, 0.5).
  ExpectNear(*TiesMerge(Spans(experts), {}, 1.0, {}, base, 0.5), {1.0f, 0.5f});
}

TEST(TiesMergeTest, ZeroSignSumGivesZeroDelta) {
  const std::vector<Vec> experts = {{1}, {-1}};
  // 1*1 + 1*(-1) = 0: no sign wins, the merged delta is 0.
  ExpectNear(*TiesMerge(Spans(experts), {}, 1.0, {}), {0});
  // Weights (2, 1): 2 - 1 = 1 -> '+' -> e1 alone: 2*1/2 = 1.
  ExpectNear(*TiesMerge(Spans(experts), {2.0, 1.0}, 1.0, {}), {1});
}

TEST(TiesMergeTest, RejectsBadInputs) {
  const std::vector<Vec> experts = {{1, 2}, {3, 4}};
  const std::vector<int64_t> sizes = {1, 1};
  ExpectInvalid(TiesMerge({}, {}, 0.5, {}));
  ExpectInvalid(TiesMerge(Spans({{1, 2}, {3}}), {}, 0.5, {}));
  ExpectInvalid(TiesMerge(Spans(experts), {1.0}, 0.5, sizes));
  ExpectInvalid(TiesMerge(Spans(experts), {1.0, kNaN}, 0.5, sizes));
  ExpectInvalid(TiesMerge(Spans(experts), {1.0, -1.0}, 0.5, sizes));  // negative weight
  ExpectInvalid(TiesMerge(Spans(experts), {}, 0.0, sizes));
  ExpectInvalid(TiesMerge(Spans(experts), {}, -0.5, sizes));
  ExpectInvalid(TiesMerge(Spans(experts), {}, 1.5, sizes));
  ExpectInvalid(TiesMerge(Spans(experts), {}, kNaN, sizes));
  const std::vector<int64_t> too_few = {1};
  const std::vector<int64_t> too_many = {2, 1};
  const std::vector<int64_t> negative = {3, -1};
  ExpectInvalid(TiesMerge(Spans(experts), {}, 0.5, too_few));
  ExpectInvalid(TiesMerge(Spans(experts), {}, 0.5, too_many));
  ExpectInvalid(TiesMerge(Spans(experts), {}, 0.5, negative));
  const Vec short_base = {1};
  ExpectInvalid(TiesMerge(Spans(experts), {}, 0.5, sizes, short_base));
  ExpectInvalid(TiesMerge(Spans(experts), {}, 0.5, sizes, {}, kNaN));
  const std::vector<Vec> nan_param = {{1, std::nanf("")}, {3, 4}};
  ExpectInvalid(TiesMerge(Spans(nan_param), {}, 0.5, sizes));
}

TEST(TiesMergeTest, ZeroSizedTensorsAreSkipped) {
  const std::vector<Vec> experts = {{1, 2}};
  const std::vector<int64_t> sizes = {0, 2, 0};
  ExpectNear(*TiesMerge(Spans(experts), {}, 1.0, sizes), {1, 2});
}

// ---------------------------------------------------------------- DareMerge

TEST(DareMergeTest, DensityOneIsTaskArithmetic) {
  const Vec base = {1, 1};
  const std::vector<Vec> experts = {{2, 3}, {0, 5}};
  // Same numbers as the task arithmetic test: base + 2*(0.5, 4) = (2, 9).
  ExpectNear(*DareMerge(Spans(experts), {1.0, 0.5}, 1.0, /*seed=*/42, base, 2.0), {2.0f, 9.0f});
}

TEST(DareMergeTest, CombinationFollowsTheDocumentedMask) {
  const Vec base = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
  const std::vector<Vec> experts = {{1, 2, 3, 4, 5, 6, 7, 8}, {-1, -2, 0, 2, 1, 3, -4, 9}};
  const std::vector<double> w = {0.5, 2.0};
  const double density = 0.5, lambda = 1.5;
  const uint64_t seed = 1234;
  auto out = DareMerge(Spans(experts), w, density, seed, base, lambda);
  ASSERT_TRUE(out.ok()) << out.status();
  for (size_t j = 0; j < base.size(); ++j) {
    double acc = 0;
    for (size_t i = 0; i < experts.size(); ++i) {
      if (DrawUniform(seed, RngStream::kMerge, i, j) < density) {
        acc += w[i] * (experts[i][j] - base[j]) / density;
      }
    }
    EXPECT_NEAR((*out)[j], base[j] + lambda * acc, 1e-5) << "entry " << j;
  }
}

TEST(DareMergeTest, DeterministicPerSeedAndIndependentOfOtherExperts) {
  Vec x(4096);
  for (size_t j = 0; j < x.size(); ++j) x[j] = 0.001f * static_cast<float>(j) - 1.0f;
  const std::vector<Vec> one = {x};
  const std::vector<Vec> with_zero = {x, Vec(x.size(), 0.0f)};
  auto a = DareMerge(Spans(one), {}, 0.3, 7);
  auto b = DareMerge(Spans(one), {}, 0.3, 7);
  auto c = DareMerge(Spans(one), {}, 0.3, 8);
  auto d = DareMerge(Spans(with_zero), {}, 0.3, 7);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  EXPECT_EQ(*a, *d);  // expert 0's mask does not depend on expert 1
}

TEST(DareMergeTest, KeepRateMatchesDensityAndRescalingIsUnbiased) {
  const size_t n = 1 << 20;
  const std::vector<Vec> ones = {Vec(n, 1.0f)};
  const double density = 0.3;
  auto out = DareMerge(Spans(ones), {}, density, 99);
  ASSERT_TRUE(out.ok()) << out.status();
  size_t kept = 0;
  double sum = 0;
  for (float v : *out) {
    if (v != 0) {
      ++kept;
      EXPECT_FLOAT_EQ(v, static_cast<float>(1.0 / density));
    }
    sum += v;
  }
  // Binomial(2^20, 0.3): sd of the rate is sqrt(0.21 / 2^20) ~ 4.5e-4; allow ~6 sd.
  EXPECT_NEAR(static_cast<double>(kept) / n, density, 0.003);
  // The mean of the rescaled entries estimates the original 1 (sd ~ 1.5e-3).
  EXPECT_NEAR(sum / n, 1.0, 0.01);
}

TEST(DareMergeTest, RejectsBadInputs) {
  const std::vector<Vec> experts = {{1, 2}, {3, 4}};
  ExpectInvalid(DareMerge({}, {}, 0.5, 1));
  ExpectInvalid(DareMerge(Spans({{1, 2}, {3}}), {}, 0.5, 1));
  ExpectInvalid(DareMerge(Spans(experts), {1.0}, 0.5, 1));
  ExpectInvalid(DareMerge(Spans(experts), {kInf, 1.0}, 0.5, 1));
  ExpectInvalid(DareMerge(Spans(experts), {}, 0.0, 1));
  ExpectInvalid(DareMerge(Spans(experts), {}, 1.0001, 1));
  ExpectInvalid(DareMerge(Spans(experts), {}, kNaN, 1));
  const Vec short_base = {1};
  ExpectInvalid(DareMerge(Spans(experts), {}, 0.5, 1, short_base));
  ExpectInvalid(DareMerge(Spans(experts), {}, 0.5, 1, {}, kNaN));
}

// ---------------------------------------------------------------- DareTiesMerge

TEST(DareTiesMergeTest, DensityOneIsSignElectionWithoutTrim) {
  const std::vector<Vec> experts = {{2, -1}, {-1, -3}};
  // j0: 2 - 1 = 1 -> '+' -> e1 alone: 2. j1: -1 - 3 = -4 -> '-' -> (-1 - 3)/2 = -2.
  ExpectNear(*DareTiesMerge(Spans(experts), {}, 1.0, 5), {2, -2});
  // Matches TIES at density 1 (where TIES does not trim either).
  ExpectNear(*DareTiesMerge(Spans(experts), {}, 1.0, 5), *TiesMerge(Spans(experts), {}, 1.0, {}));
}

TEST(DareTiesMergeTest, UsesTheSameMasksAsDare) {
  Vec x(2048);
  for (size_t j = 0; j < x.size(); ++j) x[j] = std::sin(static_cast<float>(j));
  const std::vector<Vec> one = {x};
  // With one expert the elected sign is the sign of its own δ', so DARE-TIES equals DARE.
  auto dare = DareMerge(Spans(one), {}, 0.4, 11);
  auto dare_ties = DareTiesMerge(Spans(one), {}, 0.4, 11);
  ASSERT_TRUE(dare.ok() && dare_ties.ok());
  EXPECT_EQ(*dare, *dare_ties);
  EXPECT_EQ(*dare_ties, *DareTiesMerge(Spans(one), {}, 0.4, 11));
}

TEST(DareTiesMergeTest, RejectsBadInputs) {
  const std::vector<Vec> experts = {{1, 2}, {3, 4}};
  ExpectInvalid(DareTiesMerge({}, {}, 0.5, 1));
  ExpectInvalid(DareTiesMerge(Spans({{1, 2}, {3}}), {}, 0.5, 1));
  ExpectInvalid(DareTiesMerge(Spans(experts), {1.0, 2.0, 3.0}, 0.5, 1));
  ExpectInvalid(DareTiesMerge(Spans(experts), {1.0, kNaN}, 0.5, 1));
  ExpectInvalid(DareTiesMerge(Spans(experts), {1.0, -2.0}, 0.5, 1));
  ExpectInvalid(DareTiesMerge(Spans(experts), {}, 0.0, 1));
  ExpectInvalid(DareTiesMerge(Spans(experts), {}, 2.0, 1));
  const Vec short_base = {1};
  ExpectInvalid(DareTiesMerge(Spans(experts), {}, 0.5, 1, short_base));
  ExpectInvalid(DareTiesMerge(Spans(experts), {}, 0.5, 1, {}, kInf));
}

// ---------------------------------------------------------------- Slerp

TEST(SlerpTest, EndpointsAreExact) {
  const Vec a = {1, 2, 3}, b = {-2, 0.5, 4};  // cos θ = 11/(√14·4.5) ≈ 0.65: the slerp branch
  EXPECT_EQ(*Slerp(a, b, 0.0), a);
  EXPECT_EQ(*Slerp(a, b, 1.0), b);
}

TEST(SlerpTest, OrthogonalVectors) {
  const float h = std::sqrt(0.5f);
  // θ = π/2, sin θ = 1: both coefficients are sin(π/4) = √½.
  ExpectNear(*Slerp(Vec{1, 0}, Vec{0, 1}, 0.5), {h, h});
  // Norms are interpolated too: √½·(2, 0) + √½·(0, 1) = (√2, √½).
  ExpectNear(*Slerp(Vec{2, 0}, Vec{0, 1}, 0.5), {std::sqrt(2.0f), h});
}

TEST(SlerpTest, SixtyDegrees) {
  // a = (1, 0), b = (cos 60°, sin 60°): θ = π/3, coefficients sin(π/6)/sin(π/3) = 1/√3 each,
  // so (1/√3)·(1.5, √3/2) = (√3/2, 1/2), the unit vector at 30°.
  const float s3 = std::sqrt(3.0f);
  ExpectNear(*Slerp(Vec{1, 0}, Vec{0.5f, s3 / 2}, 0.5), {s3 / 2, 0.5f});
}

TEST(SlerpTest, NearParallelFallsBackToLerp) {
  // cos θ = 1/√1.0001 ≈ 0.99995 > 0.9995: lerp gives (1, 0.005).
  ExpectNear(*Slerp(Vec{1, 0}, Vec{1, 0.01f}, 0.5), {1.0f, 0.005f});
  // cos θ = 1/√1.0025 ≈ 0.99875 <= 0.9995: slerp, both coefficients sin(θ/2)/sin θ =
  // 1/(2 cos(θ/2)) with θ = atan(0.05), which differs from the lerp's 1/2.
  const double c = 1.0 / (2.0 * std::cos(std::atan(0.05) / 2.0));
  ExpectNear(*Slerp(Vec{1, 0}, Vec{1, 0.05f}, 0.5),
             {static_cast<float>(2 * c), static_cast<float>(0.05 * c)});
  // Anti-parallel (cos θ = -1) also lerps: 0.75·(1, 0) + 0.25·(-1, 0) = (0.5, 0).
  ExpectNear(*Slerp(Vec{1, 0}, Vec{-1, 0}, 0.25), {0.5f, 0.0f});
}

TEST(SlerpTest, ZeroNormFallsBackToLerp) {
  // 0.75·(0, 0) + 0.25·(1, 2) = (0.25, 0.5).
  ExpectNear(*Slerp(Vec{0, 0}, Vec{1, 2}, 0.25), {0.25f, 0.5f});
  ExpectNear(*Slerp(Vec{1, 2}, Vec{0, 0}, 0.25), {0.75f, 1.5f});
}

TEST(SlerpTest, InterpolatesEachTensorSeparately) {
  const Vec a = {1, 0, 1, 0}, b = {0, 1, 1, 0.01f};
  const std::vector<int64_t> sizes = {2, 2};
  const float h = std::sqrt(0.5f);
  // Tensor 1 is orthogonal (√½, √½); tensor 2 is near-parallel, lerp (1, 0.005).
  ExpectNear(*Slerp(a, b, 0.5, sizes), {h, h, 1.0f, 0.005f});
  // As one vector, cos θ = 1/(√2·√2.0001) ≈ 0.5: a different result.
  EXPECT_GT(std::fabs((*Slerp(a, b, 0.5))[0] - h), 1e-3);
  // Whole-vector orthogonal case: (√½, 0, 0, √½).
  ExpectNear(*Slerp(Vec{1, 0, 0, 0}, Vec{0, 0, 0, 1}, 0.5), {h, 0, 0, h});
}

TEST(SlerpTest, RejectsBadInputs) {
  const Vec a = {1, 0}, b = {0, 1};
  ExpectInvalid(Slerp(a, Vec{0, 1, 2}, 0.5));
  ExpectInvalid(Slerp(a, b, kNaN));
  ExpectInvalid(Slerp(a, b, kInf));
  const std::vector<int64_t> sizes = {1, 2};
  ExpectInvalid(Slerp(a, b, 0.5, sizes));
  const std::vector<Vec> one = {a}, three = {a, b, a}, two = {a, b};
  ExpectInvalid(Slerp(Spans(one), 0.5));
  ExpectInvalid(Slerp(Spans(three), 0.5));
  ExpectInvalid(Slerp(ExpertSpans{}, 0.5));
  const float h = std::sqrt(0.5f);
  ExpectNear(*Slerp(Spans(two), 0.5), {h, h});
}

// ---------------------------------------------------------------- BestSingle

TEST(BestSingleTest, PicksTheFirstBest) {
  EXPECT_EQ(*BestSingle({0.1, 0.5, 0.5, 0.2}), 1u);
  EXPECT_EQ(*BestSingle({-3.0}), 0u);
  EXPECT_EQ(*BestSingle({-3.0, -1.0, -kInf}), 1u);
  EXPECT_EQ(*BestSingle({-kInf, -kInf}), 0u);
}

TEST(BestSingleTest, RejectsEmptyAndNaN) {
  ExpectInvalid(BestSingle({}));
  ExpectInvalid(BestSingle({0.1, kNaN}));
}

}  // namespace
}  // namespace wxp
