// How a token swarm's particle combines its experts' next-token distributions (SPEC 4.5).
//
// A particle is α ∈ R^n over n whole expert models that share a vocabulary. At every position
// each expert j gives log-probabilities lp_j over the vocabulary; the combined predictor is
// one of:
//
//   kMixture    p(x) = Σ_j w_j · exp(lp_j(x)),  w_j = max(α_j, 0) / Σ_k max(α_k, 0).
//               Clipped and normalised rather than softmax(α) because the swarm starts from
//               the unit vectors e_j (SPEC 4.3) and they must mean "expert j alone", as they
//               do in the coefficient spaces: softmax(e_j) would still give every other
//               expert weight 1/(e + n − 1). Normalising also makes the mixture invariant to
//               the scale of α, so the PSO's unnormalised moves cannot leave the simplex.
//               Crossover extrapolation (w ~ U(0,2)) and later moves may make some α_j
//               negative: that expert then drops out. When no α_j is positive there is no
//               direction left in the simplex, and the weights are uniform (1/n each): a
//               defined, finite answer for every finite α, never an error the swarm would
//               have to handle as a failed evaluation.
//
//   kLogLinear  log p(x) = Σ_j α_j · lp_j(x) − log Σ_y exp(Σ_j α_j · lp_j(y)),
//               α used as it is (negative weights allowed). Each lp_j differs from expert
//               j's logits by a per-position constant, which the renormalisation cancels, so
//               this is a weighted sum of logits too. Proxy tuning (Liu et al. 2024:
//               logits_large + logits_tuned_small − logits_untuned_small) is the special case
//               of experts (large base, small tuned, small untuned) with α = (1, 1, −1). e_j
//               is expert j alone; α = 0 is the uniform distribution over the vocabulary.
//
// Weights of zero skip their expert entirely (0 · −inf would otherwise be NaN). Arithmetic
// is in double, in expert order, so a result depends only on its inputs (deterministic,
// thread count irrelevant). Every function is pure and thread-safe.
#ifndef WXP_COMMON_TOKEN_COMBINATION_H_
#define WXP_COMMON_TOKEN_COMBINATION_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace wxp {

enum class TokenCombination { kMixture, kLogLinear };

// "mixture", "log_linear" (flag, JSON and manifest spellings).
std::string TokenCombinationName(TokenCombination c);
// Inverse of TokenCombinationName; InvalidArgument listing the valid names otherwise.
absl::StatusOr<TokenCombination> ParseTokenCombination(absl::string_view name);

// The per-expert weights α gives under `c` (see above): kMixture's non-negative weights
// summing to one, kLogLinear's α itself (as double). InvalidArgument for an empty α or one
// holding a NaN or infinity (naming the index).
absl::StatusOr<std::vector<double>> CombinationWeights(TokenCombination c,
                                                       absl::Span<const float> alpha);

// Combines one position. `experts[j]` is expert j's log-probabilities over the vocabulary
// (every span of out.size() entries, out.size() >= 1), `weights` from CombinationWeights for
// the same `c` (one per expert). Writes the combined log-probabilities (a normalised
// distribution: logsumexp(out) == 0 up to rounding) to `out`. InvalidArgument, changing
// nothing useful in `out`, for: mismatched sizes; a non-finite weight, or a negative one
// with kMixture; a NaN or +inf log-probability of an expert with non-zero weight; with kLogLinear,
// a −inf log-probability under a negative weight (the byte would become certain), a weighted sum
// that overflows, or a position where every byte gets probability zero. The experts'
// log-probabilities need not be exactly normalised: the result is renormalised either way.
absl::Status CombineLogProbs(TokenCombination c, absl::Span<const double> weights,
                             absl::Span<const absl::Span<const float>> experts,
                             absl::Span<double> out);

}  // namespace wxp

#endif  // WXP_COMMON_TOKEN_COMBINATION_H_
