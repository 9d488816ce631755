#include "common/token_combination.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace wxp {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// log Σ exp(v), -inf for an empty or all -inf v.
double LogSumExp(absl::Span<const double> v) {
  double m = kNegInf;
  for (double x : v) m = std::max(m, x);
  if (m == kNegInf) return kNegInf;
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

}  // namespace

std::string TokenCombinationName(TokenCombination c) {
  return c == TokenCombination::kMixture ? "mixture" : "log_linear";
}

absl::StatusOr<TokenCombination> ParseTokenCombination(absl::string_view name) {
  if (name == "mixture") return TokenCombination::kMixture;
  if (name == "log_linear") return TokenCombination::kLogLinear;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown token combination '", name, "' (valid: mixture, log_linear)"));
}

absl::StatusOr<std::vector<double>> CombinationWeights(TokenCombination c,
                                                       absl::Span<const float> alpha) {
  if (alpha.empty()) return absl::InvalidArgumentError("token combination: no experts");
  for (size_t j = 0; j < alpha.size(); ++j) {
    if (!std::isfinite(alpha[j])) {
      return absl::InvalidArgumentError(
          absl::StrCat("token combination: alpha[", j, "] is not finite"));
    }
  }
  std::vector<double> w(alpha.begin(), alpha.end());
  if (c == TokenCombination::kLogLinear) return w;
  double sum = 0;
  for (double& x : w) sum += (x = std::max(x, 0.0));
  if (sum > 0) {
    for (double& x : w) x /= sum;
  } else {
    std::fill(w.begin(), w.end(), 1.0 / static_cast<double>(w.size()));
  }
  return w;
}

absl::Status CombineLogProbs(TokenCombination c, absl::Span<const double> weights,
                             absl::Span<const absl::Span<const float>> experts,
                             absl::Span<double> out) {
  const size_t vocab = out.size();
  if (vocab == 0 || weights.size() != experts.size() || experts.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("token combination: ", weights.size(),
                                                   " weights for ", experts.size(),
                                                   " experts over a vocabulary of ", vocab));
  }
  for (size_t j = 0; j < experts.size(); ++j) {
    if (experts[j].size() != vocab) {
      return absl::InvalidArgumentError(absl::StrCat("token combination: expert ", j, " has ",
                                                     experts[j].size(), " log-probabilities, not ",
                                                     vocab));
    }
    if (!std::isfinite(weights[j]) || (c == TokenCombination::kMixture && weights[j] < 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("token combination: weight ", j, " is ", weights[j]));
    }
    if (weights[j] == 0) continue;
    for (float lp : experts[j]) {
      if (std::isnan(lp) || lp == std::numeric_limits<float>::infinity() ||
          (c == TokenCombination::kLogLinear && weights[j] < 0 && std::isinf(lp))) {
        return absl::InvalidArgumentError(
            absl::StrCat("token combination: expert ", j, " has a log-probability of ", lp,
                         weights[j] < 0 ? " under a negative weight" : ""));
      }
    }
  }
  if (c == TokenCombination::kMixture) {
    // log Σ_j w_j p_j(x), as a log-sum-exp over the experts so that small
    // probabilities do not underflow.
    std::vector<double> terms;
    terms.reserve(experts.size());
    for (size_t x = 0; x < vocab; ++x) {
      terms.clear();
      for (size_t j = 0; j < experts.size(); ++j) {
        if (weights[j] > 0) terms.push_back(std::log(weights[j]) + experts[j][x]);
      }
      out[x] = LogSumExp(terms);
    }
  } else {
    for (size_t x = 0; x < vocab; ++x) {
      double s = 0;
      for (size_t j = 0; j < experts.size(); ++j) {
        if (weights[j] != 0) s += weights[j] * static_cast<double>(experts[j][x]);
      }
      out[x] = s;
    }
  }
  for (double x : out) {
    if (std::isnan(x) || x == -kNegInf) {  // huge weights times log-probabilities
      return absl::InvalidArgumentError("token combination: the weighted sum overflows");
    }
  }
  const double z = LogSumExp(out);
  if (z == kNegInf) {
    return absl::InvalidArgumentError("token combination: every byte has probability zero");
  }
  for (double& x : out) x -= z;
  return absl::OkStatus();
}

}  // namespace wxp
