// Composition baselines of SPEC 4.1 over flat fp32 parameter vectors (SPEC 3).
//
// Each function reads the experts' flat vectors and writes one new vector of the same length.
// Nothing is retained: callers own every input and the returned vector. All functions are
// pure (DARE's masks are a function of the seed) and thread-safe.
//
// Conventions shared by every function below:
//  * `experts` holds n >= 1 vectors of one common length L (L may be 0).
//  * `weights` is empty or has exactly n finite entries. When empty, LinearMerge uses equal
//    weights and every other function uses w_i = 1.
//  * `base` is empty or has length L. A LoRA's task vector is the adapter itself, so an empty
//    base means base = 0 and δ_i = x_i; otherwise δ_i = x_i − base.
//  * `tensor_sizes` splits the flat vector into consecutive tensors; the sizes must be >= 0
//    and sum to L. An empty span means "one tensor covering the whole vector".
//  * Sums over experts are accumulated in double; the result is rounded to float once.
//  * Non-finite parameters propagate to the output (NaN in, NaN out), except in TiesMerge,
//    which must rank magnitudes and therefore rejects them.
// Violations return InvalidArgument with a message naming the offending input.
#ifndef WXP_COMMON_MERGE_H_
#define WXP_COMMON_MERGE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace wxp {

using ExpertSpans = absl::Span<const absl::Span<const float>>;

// Weighted soup: Σ w_i·x_i / Σ w_i (equal weights when `weights` is empty). Negative weights
// are allowed; InvalidArgument when they sum to exactly zero.
absl::StatusOr<std::vector<float>> LinearMerge(ExpertSpans experts,
                                               absl::Span<const double> weights);

// Task arithmetic: base + λ·Σ w_i·δ_i. Weights are not normalised and may be negative
// (task negation). InvalidArgument for a non-finite `lambda`.
absl::StatusOr<std::vector<float>> TaskArithmetic(ExpertSpans experts,
                                                  absl::Span<const double> weights, double lambda,
                                                  absl::Span<const float> base = {});

// TIES (trim, elect sign, disjoint merge), per tensor of `tensor_sizes`:
//  1. Trim: for each expert and tensor of m > 0 entries keep the k = clamp(round(density·m),
//     1, m) entries of δ_i with the largest |δ_i| (round half away from zero) and zero the
//     rest. Ties at the threshold: exactly k entries are kept; among entries whose magnitude
//     equals the k-th largest, the ones with the lowest indices are kept.
//  2. Elect: s_j = sign(Σ_i w_i·δ̃_i[j]). When the sum is exactly 0 the entry's merged delta is
//     0 (no side wins; mergekit would pick +).
//  3. Disjoint merge: m_j = Σ_{agree} w_i·δ̃_i[j] / Σ_{agree} w_i, where "agree" means
//     sign(δ̃_i[j]) == s_j (trimmed zeros never agree); 0 if no expert agrees.
//  Output: base + λ·m.
// `density` must be in (0, 1]; density 1 skips the trim. Weights must be >= 0 (the disjoint
// merge is a weighted mean). InvalidArgument also for a non-finite δ or `lambda`.
absl::StatusOr<std::vector<float>> TiesMerge(ExpertSpans experts, absl::Span<const double> weights,
                                             double density, absl::Span<const int64_t> tensor_sizes,
                                             absl::Span<const float> base = {},
                                             double lambda = 1.0);

// DARE (drop and rescale) combined by task arithmetic, without normalising the weights:
//   δ'_i[j] = (u_ij < density) ? δ_i[j] / density : 0,
//   u_ij    = DrawUniform(seed, RngStream::kMerge, i, j)   (== the j-th draw of
//             CounterRng(seed, RngStream::kMerge, /*key=*/i)),
//   output  = base + λ·Σ_i w_i·δ'_i.
// Expert i is its position in `experts`; the mask does not depend on the other experts, on
// the weights or on call order, so a seed reproduces the result exactly. Density 1 keeps
// every entry (TaskArithmetic with the same λ). `density` must be in (0, 1].
absl::StatusOr<std::vector<float>> DareMerge(ExpertSpans experts, absl::Span<const double> weights,
                                             double density, uint64_t seed,
                                             absl::Span<const float> base = {},
                                             double lambda = 1.0);

// DARE-TIES: DARE's drop/rescale (same masks as DareMerge for the same seed), then TIES's
// sign election and disjoint merge on δ' (no top-k trim): base + λ·m with
// m_j = Σ_{agree} w_i·δ'_i[j] / Σ_{agree} w_i. Weights must be >= 0.
absl::StatusOr<std::vector<float>> DareTiesMerge(ExpertSpans experts,
                                                 absl::Span<const double> weights, double density,
                                                 uint64_t seed, absl::Span<const float> base = {},
                                                 double lambda = 1.0);

// Spherical interpolation from `a` (t = 0) to `b` (t = 1), applied per tensor of
// `tensor_sizes` (the whole vector when empty). For each tensor, with
// cos θ = a·b / (|a|·|b|):
//   result = sin((1−t)θ)/sin θ · a + sin(tθ)/sin θ · b
// on the unnormalised vectors, so norms are interpolated too. Falls back to the lerp
// (1−t)·a + t·b when |cos θ| > 0.9995 (near-parallel or anti-parallel) or either tensor has
// zero norm. t outside [0, 1] extrapolates; InvalidArgument for a non-finite t or a length
// mismatch.
absl::StatusOr<std::vector<float>> Slerp(absl::Span<const float> a, absl::Span<const float> b,
                                         double t, absl::Span<const int64_t> tensor_sizes = {});

// The same on an expert list, for callers that dispatch every baseline uniformly:
// InvalidArgument unless `experts` holds exactly two vectors.
absl::StatusOr<std::vector<float>> Slerp(ExpertSpans experts, double t,
                                         absl::Span<const int64_t> tensor_sizes = {});

// Index of the expert with the highest utility (the first one on ties). InvalidArgument for
// an empty list or a NaN utility (±infinity is ordered and allowed).
absl::StatusOr<size_t> BestSingle(absl::Span<const double> utilities);

}  // namespace wxp

#endif  // WXP_COMMON_MERGE_H_
