#include "common/dp_accountant.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace wxp::dp {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// log(e^x + e^y), exact for an argument of -inf (the log of 0).
double LogAdd(double x, double y) {
  const double lo = std::min(x, y), hi = std::max(x, y);
  if (lo == -kInf) return hi;
  return hi + std::log1p(std::exp(lo - hi));
}

// log(erfc(x)), accurate in relative terms far into the tail where erfc underflows: the
// fractional-order series evaluates erfc at arguments of order σ·log(1/q).
double LogErfc(double x) {
  if (x < 20) return std::log(std::erfc(x));
  // Asymptotic expansion erfc(x) = e^{-x²}/(x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) +
  // 105/(16x⁸) − ...): at x >= 20 the first omitted term is below 1e-11.
  const double r = 1 / (x * x);
  const double series = 1 - r / 2 + 3 * r * r / 4 - 15 * r * r * r / 8 + 105 * r * r * r * r / 16;
  return -x * x - std::log(x) - 0.5 * std::log(M_PI) + std::log(series);
}

// log |binomial(a, k)| for real a >= 0 and integer k >= 0, through the gamma function (its
// log-magnitude: for fractional a and k > a + 1 the argument a − k + 1 is negative).
double LogAbsBinomial(double a, double k) {
  return std::lgamma(a + 1) - std::lgamma(k + 1) - std::lgamma(a - k + 1);
}

// log A_α for integer α (Mironov, Talwar, Zhang 2019, Section 3.3, first case):
//   A_α = Σ_{i=0..α} C(α, i) (1−q)^{α−i} q^i exp((i² − i) / (2σ²)).
double LogAInteger(double q, double sigma, int64_t alpha) {
  double log_a = -kInf;
  const double log_q = std::log(q), log_1mq = std::log1p(-q);
  for (int64_t i = 0; i <= alpha; ++i) {
    const double di = static_cast<double>(i);
    const double term = LogAbsBinomial(static_cast<double>(alpha), di) + di * log_q +
                        (alpha - di) * log_1mq + (di * di - di) / (2 * sigma * sigma);
    log_a = LogAdd(log_a, term);
  }
  return log_a;
}

// Enough terms for every order and rate WXP uses; an order whose series has not converged
// by then is dropped (its RDP reported as +inf), which only loosens the bound.
constexpr int kMaxFractionalTerms = 100000;

// log A_α for fractional α (Section 3.3, second case): A_α = A_0 + A_1, the integrals of
// the privacy-loss moment below and above z0 = σ² log(1/q − 1) + 1/2, each expanded as a
// binomial series in i with erfc tails. C(α, i) alternates in sign once i > α + 1, so the
// partial sums subtract those terms.
double LogAFractional(double q, double sigma, double alpha) {
  double log_a0 = -kInf, log_a1 = -kInf;
  const double z0 = sigma * sigma * std::log(1 / q - 1) + 0.5;
  const double log_q = std::log(q), log_1mq = std::log1p(-q);
  const double floor_alpha = std::floor(alpha);
  for (int i = 0; i < kMaxFractionalTerms; ++i) {
    const double di = i, j = alpha - di;
    const double log_coef = LogAbsBinomial(alpha, di);
    // Factors (α − k) for k = 0..i−1 are negative for k > α: that many sign flips.
    const int64_t negative = std::max<int64_t>(0, i - static_cast<int64_t>(floor_alpha) - 1);
    const bool positive = negative % 2 == 0;
    const double log_t0 = log_coef + di * log_q + j * log_1mq;
    const double log_t1 = log_coef + j * log_q + di * log_1mq;
    const double log_e0 = std::log(0.5) + LogErfc((di - z0) / (M_SQRT2 * sigma));
    const double log_e1 = std::log(0.5) + LogErfc((z0 - j) / (M_SQRT2 * sigma));
    const double log_s0 = log_t0 + (di * di - di) / (2 * sigma * sigma) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2 * sigma * sigma) + log_e1;
    if (positive) {
      log_a0 = LogAdd(log_a0, log_s0);
      log_a1 = LogAdd(log_a1, log_s1);
    } else {
      // The true partial sums stay positive; a subtraction that would not is rounding
      // beyond repair for this order.
      if (!(log_s0 < log_a0) || !(log_s1 < log_a1)) return kInf;
      log_a0 += std::log1p(-std::exp(log_s0 - log_a0));
      log_a1 += std::log1p(-std::exp(log_s1 - log_a1));
    }
    if (std::max(log_s0, log_s1) < -30) return LogAdd(log_a0, log_a1);
  }
  return kInf;
}

// One step's RDP at order α (> 1), for valid q and σ.
double StepRdp(double q, double sigma, double alpha) {
  if (q == 0) return 0;
  if (sigma == 0 || std::isinf(alpha)) return kInf;
  if (std::isinf(sigma)) return 0;
  if (q == 1) return alpha / (2 * sigma * sigma);
  const double log_a = alpha == std::floor(alpha) && alpha < 1e6
                           ? LogAInteger(q, sigma, static_cast<int64_t>(alpha))
                           : LogAFractional(q, sigma, alpha);
  // A_α >= 1 in exact arithmetic; a rounding of log A_α just below 0 means "no loss".
  return std::max(0.0, log_a / (alpha - 1));
}

absl::Status CheckOrders(absl::Span<const double> orders) {
  if (orders.empty()) return absl::InvalidArgumentError("dp accountant: no RDP orders");
  for (double a : orders) {
    if (!(a > 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("dp accountant: RDP orders must be > 1, got ", a));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDelta(double delta) {
  if (!(delta > 0 && delta < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dp accountant: delta must be in (0, 1), got ", delta));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<double> DefaultOrders() {
  std::vector<double> orders;
  for (int x = 1; x < 100; ++x) orders.push_back(1 + x / 10.0);
  for (int a = 11; a < 64; ++a) orders.push_back(a);
  for (double a : {128, 256, 512, 1024}) orders.push_back(a);
  return orders;
}

absl::StatusOr<std::vector<double>> ComputeRdp(const SgmPhase& phase,
                                               absl::Span<const double> orders) {
  if (!(phase.sample_rate >= 0 && phase.sample_rate <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dp accountant: sampling rate must be in [0, 1], got ", phase.sample_rate));
  }
  if (!(phase.noise_multiplier >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dp accountant: noise multiplier must be >= 0, got ", phase.noise_multiplier));
  }
  if (phase.steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("dp accountant: steps must be >= 0, got ", phase.steps));
  }
  if (absl::Status s = CheckOrders(orders); !s.ok()) return s;
  std::vector<double> rdp;
  rdp.reserve(orders.size());
  for (double a : orders) {
    if (phase.steps == 0) {
      rdp.push_back(0);
      continue;
    }
    const double one = StepRdp(phase.sample_rate, phase.noise_multiplier, a);
    rdp.push_back(one == 0 ? 0 : one * static_cast<double>(phase.steps));
  }
  return rdp;
}

absl::StatusOr<std::vector<double>> ComposeRdp(absl::Span<const SgmPhase> phases,
                                               absl::Span<const double> orders) {
  if (absl::Status s = CheckOrders(orders); !s.ok()) return s;
  std::vector<double> total(orders.size(), 0.0);
  for (const SgmPhase& p : phases) {
    absl::StatusOr<std::vector<double>> rdp = ComputeRdp(p, orders);
    if (!rdp.ok()) return rdp.status();
    for (size_t i = 0; i < total.size(); ++i) total[i] += (*rdp)[i];
  }
  return total;
}

absl::StatusOr<PrivacySpent> EpsilonFromRdp(absl::Span<const double> orders,
                                            absl::Span<const double> rdp, double delta) {
  if (absl::Status s = CheckDelta(delta); !s.ok()) return s;
  if (absl::Status s = CheckOrders(orders); !s.ok()) return s;
  if (orders.size() != rdp.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dp accountant: ", orders.size(), " orders but ", rdp.size(), " RDP values"));
  }
  PrivacySpent best{kInf, 0};
  const double log_delta = std::log(delta);
  for (size_t i = 0; i < orders.size(); ++i) {
    const double a = orders[i], r = rdp[i];
    if (!(r >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("dp accountant: RDP values must be >= 0, got ", r, " at order ", a));
    }
    if (std::isinf(a) || std::isinf(r)) continue;
    // Rényi divergence grows with the order, so r bounds the KL divergence, and total
    // variation is at most sqrt(1 − e^{−KL}) (Bretagnolle–Huber): a δ at least that needs
    // no ε at all (the check Google's dp_accounting compute_epsilon makes). It also makes
    // a mechanism that spends nothing (r = 0) cost ε = 0 rather than the conversion's
    // positive constant.
    if (delta * delta + std::expm1(-r) >= 0) return PrivacySpent{0, a};
    const double eps = r + std::log1p(-1 / a) - (log_delta + std::log(a)) / (a - 1);
    if (eps < best.epsilon) best = {eps, a};
  }
  best.epsilon = std::max(0.0, best.epsilon);
  return best;
}

absl::StatusOr<PrivacySpent> ComputeEpsilon(absl::Span<const SgmPhase> phases, double delta,
                                            absl::Span<const double> orders) {
  absl::StatusOr<std::vector<double>> rdp = ComposeRdp(phases, orders);
  if (!rdp.ok()) return rdp.status();
  return EpsilonFromRdp(orders, *rdp, delta);
}

absl::StatusOr<PrivacySpent> ComputeEpsilon(absl::Span<const SgmPhase> phases, double delta) {
  return ComputeEpsilon(phases, delta, DefaultOrders());
}

absl::StatusOr<double> CalibrateNoiseMultiplier(double target_epsilon, double delta,
                                                double sample_rate, int64_t steps,
                                                absl::Span<const SgmPhase> prior) {
  if (!(std::isfinite(target_epsilon) && target_epsilon > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dp accountant: target epsilon must be a finite number > 0, got ", target_epsilon));
  }
  if (absl::Status s = CheckDelta(delta); !s.ok()) return s;
  if (!(sample_rate > 0 && sample_rate <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dp accountant: sampling rate must be in (0, 1], got ", sample_rate));
  }
  if (steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("dp accountant: steps must be >= 1, got ", steps));
  }
  const std::vector<double> orders = DefaultOrders();
  absl::StatusOr<std::vector<double>> prior_rdp = ComposeRdp(prior, orders);
  if (!prior_rdp.ok()) return prior_rdp.status();
  absl::StatusOr<PrivacySpent> before = EpsilonFromRdp(orders, *prior_rdp, delta);
  if (!before.ok()) return before.status();
  if (!prior.empty() && before->epsilon >= target_epsilon) {
    return absl::InvalidArgumentError(
        absl::StrCat("dp accountant: the earlier phases already spend epsilon ", before->epsilon,
                     " of the target ", target_epsilon));
  }
  // ε of the whole run with noise multiplier σ for the new phase.
  auto epsilon = [&](double sigma) -> absl::StatusOr<double> {
    absl::StatusOr<std::vector<double>> rdp = ComputeRdp({sample_rate, sigma, steps}, orders);
    if (!rdp.ok()) return rdp.status();
    for (size_t i = 0; i < orders.size(); ++i) (*rdp)[i] += (*prior_rdp)[i];
    absl::StatusOr<PrivacySpent> e = EpsilonFromRdp(orders, *rdp, delta);
    if (!e.ok()) return e.status();
    return e->epsilon;
  };
  constexpr double kMaxSigma = 1e6;
  double lo = 0, hi = 1;
  for (;;) {
    absl::StatusOr<double> e = epsilon(hi);
    if (!e.ok()) return e.status();
    if (*e <= target_epsilon) break;
    lo = hi;
    hi *= 2;
    if (hi > kMaxSigma) {
      return absl::OutOfRangeError(absl::StrCat("dp accountant: no noise multiplier up to ",
                                                kMaxSigma, " reaches epsilon ", target_epsilon,
                                                " at delta ", delta));
    }
  }
  // Invariant: ε(hi) <= target < ε(lo) (lo = 0 means no noise: ε infinite).
  while (hi - lo > 1e-6 * hi) {
    const double mid = (lo + hi) / 2;
    absl::StatusOr<double> e = epsilon(mid);
    if (!e.ok()) return e.status();
    (*e <= target_epsilon ? hi : lo) = mid;
  }
  return hi;
}

}  // namespace wxp::dp
