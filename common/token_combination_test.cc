#include "common/token_combination.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace wxp {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> Logs(std::vector<double> p) {
  std::vector<float> v;
  for (double x : p) v.push_back(static_cast<float>(std::log(x)));
  return v;
}

// The combined probabilities (exp of CombineLogProbs' output) of `experts` under `alpha`.
std::vector<double> Combine(TokenCombination c, std::vector<float> alpha,
                            const std::vector<std::vector<float>>& experts) {
  absl::StatusOr<std::vector<double>> w = CombinationWeights(c, alpha);
  EXPECT_TRUE(w.ok()) << w.status();
  std::vector<absl::Span<const float>> spans(experts.begin(), experts.end());
  std::vector<double> out(experts[0].size());
  absl::Status s = CombineLogProbs(c, *w, spans, absl::MakeSpan(out));
  EXPECT_TRUE(s.ok()) << s;
  for (double& x : out) x = std::exp(x);
  return out;
}

void ExpectProbs(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << "byte " << i;
}

TEST(TokenCombinationTest, NamesRoundTripAndUnknownIsRefused) {
  for (TokenCombination c : {TokenCombination::kMixture, TokenCombination::kLogLinear}) {
    EXPECT_EQ(*ParseTokenCombination(TokenCombinationName(c)), c);
  }
  absl::StatusOr<TokenCombination> bad = ParseTokenCombination("softmax");
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("mixture, log_linear"), std::string::npos);
}

TEST(TokenCombinationTest, MixtureWeightsAreClippedAndNormalised) {
  EXPECT_EQ(*CombinationWeights(TokenCombination::kMixture, {2, -1, 2}),
            (std::vector<double>{0.5, 0, 0.5}));
  EXPECT_EQ(*CombinationWeights(TokenCombination::kMixture, {0, 3, 1}),
            (std::vector<double>{0, 0.75, 0.25}));
  // Scale does not matter; a unit vector is its expert alone.
  EXPECT_EQ(*CombinationWeights(TokenCombination::kMixture, {0, 7}), (std::vector<double>{0, 1}));
  EXPECT_EQ(*CombinationWeights(TokenCombination::kMixture, {5}), (std::vector<double>{1}));
}

TEST(TokenCombinationTest, MixtureWithoutPositiveWeightIsUniform) {
  EXPECT_EQ(*CombinationWeights(TokenCombination::kMixture, {-1, -3}),
            (std::vector<double>{0.5, 0.5}));
  std::vector<double> w = *CombinationWeights(TokenCombination::kMixture, {0, 0, 0});
  for (double x : w) EXPECT_DOUBLE_EQ(x, 1.0 / 3);
}

TEST(TokenCombinationTest, LogLinearWeightsAreAlphaItself) {
  EXPECT_EQ(*CombinationWeights(TokenCombination::kLogLinear, {1, 1, -1}),
            (std::vector<double>{1, 1, -1}));
}

TEST(TokenCombinationTest, NonFiniteOrEmptyAlphaIsRefused) {
  for (TokenCombination c : {TokenCombination::kMixture, TokenCombination::kLogLinear}) {
    EXPECT_EQ(CombinationWeights(c, {}).status().code(), absl::StatusCode::kInvalidArgument);
    absl::StatusOr<std::vector<double>> w = CombinationWeights(c, {1, kNaN});
    ASSERT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(w.status().message().find("alpha[1]"), std::string::npos);
    EXPECT_EQ(CombinationWeights(c, {kInf, 0}).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(TokenCombinationTest, MixtureAveragesProbabilities) {
  // 0.5·(0.5, 0.5) + 0.5·(0.9, 0.1) = (0.7, 0.3).
  ExpectProbs(Combine(TokenCombination::kMixture, {1, 1}, {Logs({0.5, 0.5}), Logs({0.9, 0.1})}),
              {0.7, 0.3});
  // 0.25·(0.2, 0.8) + 0.75·(0.6, 0.4) = (0.5, 0.5); the third expert is clipped away.
  ExpectProbs(Combine(TokenCombination::kMixture, {1, 3, -2},
                      {Logs({0.2, 0.8}), Logs({0.6, 0.4}), Logs({0.99, 0.01})}),
              {0.5, 0.5});
}

TEST(TokenCombinationTest, MixtureKeepsZeroProbabilities) {
  // An expert certain of byte 0 (log 0 = -inf for byte 1): 0.5·(1, 0) + 0.5·(0.5, 0.5).
  ExpectProbs(Combine(TokenCombination::kMixture, {1, 1}, {{0, -kInf}, Logs({0.5, 0.5})}),
              {0.75, 0.25});
  // Alone, the byte stays impossible (exactly).
  std::vector<double> alone = Combine(TokenCombination::kMixture, {1, 0}, {{0, -kInf}, {0, 0}});
  EXPECT_EQ(alone[1], 0);
}

TEST(TokenCombinationTest, OneExpertIsItself) {
  const std::vector<float> lp = Logs({0.1, 0.2, 0.7});
  for (TokenCombination c : {TokenCombination::kMixture, TokenCombination::kLogLinear}) {
    ExpectProbs(Combine(c, {1}, {lp}), {0.1, 0.2, 0.7});
  }
  // With n experts, e_j is expert j in both combinations.
  for (TokenCombination c : {TokenCombination::kMixture, TokenCombination::kLogLinear}) {
    ExpectProbs(Combine(c, {0, 1}, {Logs({0.5, 0.5}), Logs({0.9, 0.1})}), {0.9, 0.1});
  }
}

TEST(TokenCombinationTest, LogLinearMultipliesAndRenormalises) {
  // (0.5·0.9, 0.5·0.1) renormalised = (0.9, 0.1).
  ExpectProbs(Combine(TokenCombination::kLogLinear, {1, 1}, {Logs({0.5, 0.5}), Logs({0.9, 0.1})}),
              {0.9, 0.1});
  // (0.9², 0.1²) = (0.81, 0.01) renormalised.
  ExpectProbs(Combine(TokenCombination::kLogLinear, {0, 2}, {Logs({0.5, 0.5}), Logs({0.9, 0.1})}),
              {0.81 / 0.82, 0.01 / 0.82});
}

TEST(TokenCombinationTest, LogLinearWithNegativeAlphaInverts) {
  // (1/0.9, 1/0.1) renormalised: (1.111…, 10) / 11.111… = (0.1, 0.9).
  ExpectProbs(Combine(TokenCombination::kLogLinear, {-1}, {Logs({0.9, 0.1})}), {0.1, 0.9});
  // All-negative over two experts: (0.5·0.9)^-1, (0.5·0.1)^-1 renormalised, as above.
  ExpectProbs(Combine(TokenCombination::kLogLinear, {-1, -1}, {Logs({0.5, 0.5}), Logs({0.9, 0.1})}),
              {0.1, 0.9});
}

TEST(TokenCombinationTest, LogLinearZeroAlphaIsUniform) {
  ExpectProbs(Combine(TokenCombination::kLogLinear, {0, 0},
                      {Logs({0.2, 0.3, 0.5}), Logs({0.9, 0.05, 0.05})}),
              {1.0 / 3, 1.0 / 3, 1.0 / 3});
}

TEST(TokenCombinationTest, ProxyTuningIsLogLinearWithOneOneMinusOne) {
  // Logits large (1, 0, 0), tuned small (0, 2, 0), untuned small (0, 1, 0): proxy tuning's
  // large + tuned − untuned = (1, 1, 0), softmax = (e, e, 1) / (2e + 1). The experts give
  // log-probabilities (logits minus their own log-normaliser), which must not matter.
  auto log_softmax = [](std::vector<double> z) {
    double s = 0;
    for (double x : z) s += std::exp(x);
    std::vector<float> v;
    for (double x : z) v.push_back(static_cast<float>(x - std::log(s)));
    return v;
  };
  const double e = std::exp(1.0);
  ExpectProbs(Combine(TokenCombination::kLogLinear, {1, 1, -1},
                      {log_softmax({1, 0, 0}), log_softmax({0, 2, 0}), log_softmax({0, 1, 0})}),
              {e / (2 * e + 1), e / (2 * e + 1), 1 / (2 * e + 1)});
}

TEST(TokenCombinationTest, ZeroWeightSkipsItsExpertEvenIfNonFinite) {
  ExpectProbs(Combine(TokenCombination::kLogLinear, {1, 0}, {Logs({0.25, 0.75}), {kNaN, kInf}}),
              {0.25, 0.75});
  ExpectProbs(Combine(TokenCombination::kMixture, {0, 1}, {{kNaN, kNaN}, Logs({0.25, 0.75})}),
              {0.25, 0.75});
}

absl::Status CombineStatus(TokenCombination c, std::vector<double> w,
                           const std::vector<std::vector<float>>& experts, size_t vocab) {
  std::vector<absl::Span<const float>> spans(experts.begin(), experts.end());
  std::vector<double> out(vocab);
  return CombineLogProbs(c, w, spans, absl::MakeSpan(out));
}

TEST(TokenCombinationTest, BadInputsAreRefused) {
  const auto kMix = TokenCombination::kMixture, kLog = TokenCombination::kLogLinear;
  const std::vector<float> ok = Logs({0.5, 0.5});
  const auto invalid = absl::StatusCode::kInvalidArgument;
  // Sizes.
  EXPECT_EQ(CombineStatus(kMix, {1}, {ok}, 3).code(), invalid);
  EXPECT_EQ(CombineStatus(kMix, {0.5, 0.5}, {ok}, 2).code(), invalid);
  EXPECT_EQ(CombineStatus(kMix, {}, {}, 2).code(), invalid);
  EXPECT_EQ(CombineStatus(kMix, {1}, {ok}, 0).code(), invalid);
  // Non-finite log-probabilities under a weight.
  for (auto c : {kMix, kLog}) {
    EXPECT_EQ(CombineStatus(c, {1}, {{kNaN, 0}}, 2).code(), invalid);
    EXPECT_EQ(CombineStatus(c, {1}, {{kInf, 0}}, 2).code(), invalid);
    EXPECT_EQ(CombineStatus(c, {1}, {{-kInf, -kInf}}, 2).code(), invalid);  // no mass
  }
  // -inf under a negative log-linear weight would make that byte certain.
  absl::Status s = CombineStatus(kLog, {-1}, {{0, -kInf}}, 2);
  ASSERT_EQ(s.code(), invalid);
  EXPECT_NE(s.message().find("negative weight"), std::string::npos);
  EXPECT_TRUE(CombineStatus(kLog, {1}, {{0, -kInf}}, 2).ok());
  // Weights that CombinationWeights never gives.
  EXPECT_EQ(CombineStatus(kMix, {-0.5, 1.5}, {ok, ok}, 2).code(), invalid);
  EXPECT_EQ(CombineStatus(kLog, {std::nan("")}, {ok}, 2).code(), invalid);
  // Overflow of the weighted sum.
  EXPECT_EQ(CombineStatus(kLog, {-1e308, 1e308}, {{-10, -1}, {-10, -1}}, 2).code(), invalid);
}

}  // namespace
}  // namespace wxp
