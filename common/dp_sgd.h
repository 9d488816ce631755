// The torch-free half of DP-SGD (SPEC 12; Abadi et al., "Deep Learning with Differential
// Privacy", CCS 2016): Poisson sampling of a step's examples, per-example clipping, and the
// noisy average a trainer then hands to its optimiser. common/dp_accountant.h prices the
// result; its analysis assumes exactly this mechanism:
//   - every example joins a step's batch independently with probability q (PoissonSample),
//     so the batch size varies from step to step (it may be 0);
//   - each example's gradient, over all trainable parameters together, is scaled to L2 norm
//     at most C (ClipToNorm);
//   - the clipped gradients are summed, N(0, σ²C²) is added to every coordinate of the sum,
//     and the result is divided by the EXPECTED batch size q·N, not the drawn one (dividing
//     by the drawn size would make the released value depend on it, which the accountant
//     does not charge for).
// What an optimiser does with the released gradient (SGD, Adam) is post-processing and
// costs nothing more.
//
// Randomness comes from counter-based streams (common/rng.h), so a run is reproducible from
// its seed. That makes the noise pseudo-random: the guarantee holds against an adversary
// who does not know the seed, which therefore stays on the site (it is never recorded in
// the adapter).
#ifndef WXP_COMMON_DP_SGD_H_
#define WXP_COMMON_DP_SGD_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/rng.h"

namespace wxp::dp {

struct DpSgdParams {
  double clip_norm = 1;         // C > 0; +inf (no clipping) only with noise_multiplier 0
  double noise_multiplier = 0;  // σ >= 0
  double sample_rate = 0;       // q in (0, 1]; 0 means DP-SGD is off
  bool enabled() const { return sample_rate > 0; }

  // OK when off. Otherwise InvalidArgument naming the offending setting: q not in (0, 1], a
  // C that is not > 0 (NaN included), σ negative or not finite, or noise with C = +inf
  // (unbounded sensitivity: no noise scale makes that private).
  absl::Status Validate() const;
};

// The indices in [0, n) that join one step, ascending: each independently with probability
// q, drawn from `rng` (geometric gaps, so the cost is the sample's size, not n).
std::vector<int64_t> PoissonSample(int64_t n, double q, CounterRng& rng);

// Scales `grad` in place to L2 norm min(norm, clip) (clip = +inf leaves it alone) and
// returns its norm before.
double ClipToNorm(absl::Span<float> grad, double clip);

// The sum of one step's clipped per-example gradients and its noisy release.
class ClippedGradientSum {
 public:
  ClippedGradientSum(size_t dim, double clip_norm) : clip_(clip_norm), sum_(dim, 0.0) {}

  // Clips a copy of `grad` (ClipToNorm) and adds it. InvalidArgument for a length other than
  // dim or a non-finite value (whose clipping would be meaningless).
  absl::Status Add(absl::Span<const float> grad);
  int64_t count() const { return count_; }

  // (sum + N(0, σ²C²)^dim) / expected_batch, noise drawn from `rng` in coordinate order.
  // With σ = 0 no noise is drawn.
  std::vector<float> Release(double noise_multiplier, double expected_batch, CounterRng& rng) const;

 private:
  double clip_;
  std::vector<double> sum_;
  int64_t count_ = 0;
};

}  // namespace wxp::dp

#endif  // WXP_COMMON_DP_SGD_H_
