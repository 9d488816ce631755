// The privacy accountant of DP-SGD (SPEC 12): Rényi differential privacy (RDP) of the
// Poisson-sampled Gaussian mechanism, composed over training steps and phases, converted to
// an (ε, δ) guarantee, and inverted to calibrate the noise for a target budget.
//
// The mechanism: each step includes every example independently with probability q
// (Poisson sampling), sums the examples' gradients clipped to L2 norm C, and adds
// N(0, σ²C²) to the sum. σ is the noise multiplier. One step's RDP at order α is computed
// exactly as in
//   I. Mironov, K. Talwar, L. Zhang, "Rényi Differential Privacy of the Sampled Gaussian
//   Mechanism", arXiv:1908.10530 (2019), Section 3.3: log A_α by the binomial expansion
//   for integer α and by the two erfc-weighted series for fractional α,
// the method behind TF Privacy's rdp_accountant.py and Opacus's RDPAccountant (this is an
// independent implementation; the tests check it against their published numbers).
// RDP composes additively (I. Mironov, "Rényi Differential Privacy", CSF 2017,
// Proposition 1), so T steps cost T times one step and phases with different (q, σ, T) sum.
//
// (ε, δ) from RDP: for each order α > 1,
//   ε(α) = rdp(α) + log(1 − 1/α) − (log δ + log α) / (α − 1),
// minimised over the orders (B. Balle, G. Barthe, M. Gaboardi, J. Hsu, T. Sato,
// "Hypothesis Testing Interpretations and Rényi Differential Privacy", AISTATS 2020,
// Theorem 21; also C. Canonne, G. Kamath, T. Steinke 2020, Proposition 12). It is never
// larger than Mironov 2017's Proposition 3 (ε = rdp − log δ / (α − 1)), and it is what
// Opacus's get_privacy_spent and Google's dp_accounting compute_epsilon use.
//
// Neighbouring datasets differ by adding or removing one example (the relation Poisson
// sampling is analysed under). All functions are pure and thread-safe.
#ifndef WXP_COMMON_DP_ACCOUNTANT_H_
#define WXP_COMMON_DP_ACCOUNTANT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace wxp::dp {

// What a recorded budget names as its accountant.
inline constexpr char kAccountantName[] = "rdp-poisson-sgm";

// The orders WXP evaluates: 1.1, 1.2, ..., 10.9, then 11, 12, ..., 63, then 128, 256, 512,
// 1024 (those of Google's dp_accounting; small budgets need the large orders).
std::vector<double> DefaultOrders();

// One phase of training: `steps` steps with sampling rate q and noise multiplier σ.
struct SgmPhase {
  double sample_rate = 0;       // q in [0, 1]
  double noise_multiplier = 0;  // σ >= 0 (0: no noise, no privacy)
  int64_t steps = 0;            // >= 0
};

// The RDP of the phase at each order (same length as `orders`): 0 for q = 0 or no steps,
// +inf for σ = 0 or α = +inf, α T / (2σ²) for q = 1. InvalidArgument for q outside [0, 1],
// a negative or NaN σ, negative steps, or an order that is not > 1 (NaN included).
absl::StatusOr<std::vector<double>> ComputeRdp(const SgmPhase& phase,
                                               absl::Span<const double> orders);

// The sum of the phases' RDP at each order (composition). Fails as ComputeRdp.
absl::StatusOr<std::vector<double>> ComposeRdp(absl::Span<const SgmPhase> phases,
                                               absl::Span<const double> orders);

struct PrivacySpent {
  double epsilon = 0;  // +inf when no order gives a finite bound
  double order = 0;    // the order achieving it (0 when epsilon is +inf)
};

// The smallest ε over the orders for `delta` (the conversion above), at least 0.
// InvalidArgument for δ outside (0, 1), lengths that differ, no orders, an order not > 1,
// or a NaN or negative RDP value.
absl::StatusOr<PrivacySpent> EpsilonFromRdp(absl::Span<const double> orders,
                                            absl::Span<const double> rdp, double delta);

// ComposeRdp then EpsilonFromRdp.
absl::StatusOr<PrivacySpent> ComputeEpsilon(absl::Span<const SgmPhase> phases, double delta,
                                            absl::Span<const double> orders);
absl::StatusOr<PrivacySpent> ComputeEpsilon(absl::Span<const SgmPhase> phases, double delta);

// The smallest noise multiplier σ (to a relative 1e-6, rounded up so the budget holds) for
// which `prior` followed by `steps` steps at rate q spends at most `target_epsilon` at
// `delta`, found by bisection (ε decreases as σ grows). InvalidArgument for a target that is
// not a finite number > 0, δ outside (0, 1), q outside (0, 1], steps < 1, or a prior that
// alone already spends the target; OutOfRange if even σ = 1e6 does not reach it.
absl::StatusOr<double> CalibrateNoiseMultiplier(double target_epsilon, double delta,
                                                double sample_rate, int64_t steps,
                                                absl::Span<const SgmPhase> prior = {});

}  // namespace wxp::dp

#endif  // WXP_COMMON_DP_ACCOUNTANT_H_
