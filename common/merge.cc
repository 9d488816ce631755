#include "common/merge.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/rng.h"
#include "common/status_macros.h"

namespace wxp {
namespace {

constexpr double kSlerpLerpThreshold = 0.9995;

// Validates the experts and returns their common length.
absl::StatusOr<size_t> CheckExperts(ExpertSpans experts) {
  if (experts.empty()) return absl::InvalidArgumentError("no experts to merge");
  const size_t length = experts[0].size();
  for (size_t i = 1; i < experts.size(); ++i) {
    if (experts[i].size() != length) {
      return absl::InvalidArgumentError(absl::StrCat("expert ", i, " has ", experts[i].size(),
                                                     " parameters, expert 0 has ", length));
    }
  }
  return length;
}

absl::Status CheckFinite(double value, const char* name) {
  if (std::isfinite(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name, " is not finite: ", value));
}

// Returns n weights: `weights` itself, or `fill` for each expert when it is empty.
absl::StatusOr<std::vector<double>> ResolveWeights(absl::Span<const double> weights, size_t n,
                                                   double fill, bool require_nonnegative) {
  if (weights.empty()) return std::vector<double>(n, fill);
  if (weights.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights.size(), " weights given for ", n, " experts"));
  }
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(weights[i])) {
      return absl::InvalidArgumentError(absl::StrCat("weight ", i, " is not finite"));
    }
    if (require_nonnegative && weights[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight ", i, " is negative; this merge needs weights >= 0"));
    }
  }
  return std::vector<double>(weights.begin(), weights.end());
}

absl::Status CheckBase(absl::Span<const float> base, size_t length) {
  if (base.empty() || base.size() == length) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("base has ", base.size(), " parameters, experts have ", length));
}

absl::Status CheckDensity(double density) {
  if (density > 0.0 && density <= 1.0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("density ", density, " is outside (0, 1]"));
}

// Returns the tensor sizes, or one tensor of `length` when `tensor_sizes` is empty.
absl::StatusOr<std::vector<size_t>> ResolveTensorSizes(absl::Span<const int64_t> tensor_sizes,
                                                       size_t length) {
  if (tensor_sizes.empty()) return std::vector<size_t>{length};
  std::vector<size_t> sizes;
  sizes.reserve(tensor_sizes.size());
  size_t remaining = length;
  for (size_t k = 0; k < tensor_sizes.size(); ++k) {
    if (tensor_sizes[k] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", k, " has negative size ", tensor_sizes[k]));
    }
    const uint64_t size = static_cast<uint64_t>(tensor_sizes[k]);
    if (size > remaining) break;  // reported below as a sum mismatch
    remaining -= size;
    sizes.push_back(size);
  }
  if (sizes.size() != tensor_sizes.size() || remaining != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor sizes do not sum to the vector length ", length));
  }
  return sizes;
}

inline double Delta(absl::Span<const float> x, absl::Span<const float> base, size_t j) {
  return base.empty() ? static_cast<double>(x[j])
                      : static_cast<double>(x[j]) - static_cast<double>(base[j]);
}

// The magnitude TIES ranks by; both passes over a tensor must use exactly this.
inline float Magnitude(double delta) { return static_cast<float>(std::fabs(delta)); }

// TIES steps 2 and 3 for one entry: sign election on Σ w_i·d_i, then the weighted mean of
// the deltas that share the elected sign (0 when the sum is 0 or nobody agrees).
double ElectAndAverage(const std::vector<double>& d, const std::vector<double>& w) {
  double sum = 0;
  for (size_t i = 0; i < d.size(); ++i) sum += w[i] * d[i];
  if (sum == 0) return 0;
  double num = 0, den = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    if ((sum > 0 && d[i] > 0) || (sum < 0 && d[i] < 0)) {
      num += w[i] * d[i];
      den += w[i];
    }
  }
  return den > 0 ? num / den : 0;
}

// Trim rule of TiesMerge for one expert and tensor: keep |δ| > threshold, plus the first
// `ties_to_keep` entries (in index order) with |δ| == threshold.
struct TrimRule {
  float threshold;
  size_t ties_to_keep;
};

absl::StatusOr<TrimRule> ComputeTrimRule(absl::Span<const float> x, absl::Span<const float> base,
                                         size_t begin, size_t size, double density, size_t expert,
                                         std::vector<float>& scratch) {
  scratch.resize(size);
  for (size_t j = 0; j < size; ++j) {
    const double delta = Delta(x, base, begin + j);
    if (!std::isfinite(delta)) {
      return absl::InvalidArgumentError(
          absl::StrCat("expert ", expert, " parameter ", begin + j, " is not finite"));
    }
    scratch[j] = Magnitude(delta);
  }
  const size_t keep = std::clamp<size_t>(
      static_cast<size_t>(std::llround(density * static_cast<double>(size))), 1, size);
  if (keep == size) return TrimRule{-1.0f, 0};  // every magnitude is > -1
  auto kth = scratch.begin() + (keep - 1);
  std::nth_element(scratch.begin(), kth, scratch.end(), std::greater<float>());
  const float threshold = *kth;
  // Entries before kth are >= threshold and those after are <= threshold, so every entry
  // strictly above the threshold is before kth.
  const size_t above = std::count_if(scratch.begin(), kth, [&](float m) { return m > threshold; });
  return TrimRule{threshold, keep - above};
}

}  // namespace

absl::StatusOr<std::vector<float>> LinearMerge(ExpertSpans experts,
                                               absl::Span<const double> weights) {
  WXP_ASSIGN_OR_RETURN(const size_t length, CheckExperts(experts));
  WXP_ASSIGN_OR_RETURN(std::vector<double> w, ResolveWeights(weights, experts.size(), 1.0, false));
  double total = 0;
  for (double wi : w) total += wi;
  if (total == 0) return absl::InvalidArgumentError("linear merge weights sum to zero");
  WXP_RETURN_IF_ERROR(CheckFinite(total, "sum of the linear merge weights"));
  for (double& wi : w) wi /= total;
  std::vector<float> out(length);
  for (size_t j = 0; j < length; ++j) {
    double acc = 0;
    for (size_t i = 0; i < experts.size(); ++i) acc += w[i] * experts[i][j];
    out[j] = static_cast<float>(acc);
  }
  return out;
}

absl::StatusOr<std::vector<float>> TaskArithmetic(ExpertSpans experts,
                                                  absl::Span<const double> weights, double lambda,
                                                  absl::Span<const float> base) {
  WXP_ASSIGN_OR_RETURN(const size_t length, CheckExperts(experts));
  WXP_ASSIGN_OR_RETURN(const std::vector<double> w,
                       ResolveWeights(weights, experts.size(), 1.0, false));
  WXP_RETURN_IF_ERROR(CheckBase(base, length));
  WXP_RETURN_IF_ERROR(CheckFinite(lambda, "lambda"));
  std::vector<float> out(length);
  for (size_t j = 0; j < length; ++j) {
    double acc = 0;
    for (size_t i = 0; i < experts.size(); ++i) acc += w[i] * Delta(experts[i], base, j);
    out[j] = static_cast<float>((base.empty() ? 0.0 : base[j]) + lambda * acc);
  }
  return out;
}

absl::StatusOr<std::vector<float>> TiesMerge(ExpertSpans experts, absl::Span<const double> weights,
                                             double density, absl::Span<const int64_t> tensor_sizes,
                                             absl::Span<const float> base, double lambda) {
  WXP_ASSIGN_OR_RETURN(const size_t length, CheckExperts(experts));
  const size_t n = experts.size();
  WXP_ASSIGN_OR_RETURN(const std::vector<double> w, ResolveWeights(weights, n, 1.0, true));
  WXP_RETURN_IF_ERROR(CheckDensity(density));
  WXP_ASSIGN_OR_RETURN(const std::vector<size_t> sizes, ResolveTensorSizes(tensor_sizes, length));
  WXP_RETURN_IF_ERROR(CheckBase(base, length));
  WXP_RETURN_IF_ERROR(CheckFinite(lambda, "lambda"));

  std::vector<float> out(length);
  std::vector<float> scratch;  // magnitudes of one expert's tensor
  std::vector<TrimRule> rules(n);
  std::vector<size_t> ties_seen(n);
  std::vector<double> trimmed(n);
  size_t begin = 0;
  for (const size_t size : sizes) {
    if (size == 0) continue;
    for (size_t i = 0; i < n; ++i) {
      WXP_ASSIGN_OR_RETURN(rules[i],
                           ComputeTrimRule(experts[i], base, begin, size, density, i, scratch));
      ties_seen[i] = 0;
    }
    for (size_t j = begin; j < begin + size; ++j) {
      for (size_t i = 0; i < n; ++i) {
        const double delta = Delta(experts[i], base, j);
        const float magnitude = Magnitude(delta);
        const bool keep =
            magnitude > rules[i].threshold ||
            (magnitude == rules[i].threshold && ties_seen[i]++ < rules[i].ties_to_keep);
        trimmed[i] = keep ? delta : 0.0;
      }
      const double merged = ElectAndAverage(trimmed, w);
      out[j] = static_cast<float>((base.empty() ? 0.0 : base[j]) + lambda * merged);
    }
    begin += size;
  }
  return out;
}

namespace {

// DARE's drop-and-rescale masks, then either the weighted sum (DARE) or TIES sign election
// and agreeing average (DARE-TIES). The masks are the same for both.
absl::StatusOr<std::vector<float>> DareCombine(ExpertSpans experts,
                                               absl::Span<const double> weights, double density,
                                               uint64_t seed, absl::Span<const float> base,
                                               double lambda, bool ties) {
  WXP_ASSIGN_OR_RETURN(const size_t length, CheckExperts(experts));
  const size_t n = experts.size();
  WXP_ASSIGN_OR_RETURN(const std::vector<double> w, ResolveWeights(weights, n, 1.0, ties));
  WXP_RETURN_IF_ERROR(CheckDensity(density));
  WXP_RETURN_IF_ERROR(CheckBase(base, length));
  WXP_RETURN_IF_ERROR(CheckFinite(lambda, "lambda"));
  std::vector<CounterRng> rngs;
  rngs.reserve(n);
  for (size_t i = 0; i < n; ++i) rngs.emplace_back(seed, RngStream::kMerge, i);
  std::vector<double> rescaled(n);
  std::vector<float> out(length);
  for (size_t j = 0; j < length; ++j) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      rescaled[i] = rngs[i].NextUniform() < density ? Delta(experts[i], base, j) / density : 0.0;
      sum += w[i] * rescaled[i];
    }
    const double merged = ties ? ElectAndAverage(rescaled, w) : sum;
    out[j] = static_cast<float>((base.empty() ? 0.0 : base[j]) + lambda * merged);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<float>> DareMerge(ExpertSpans experts, absl::Span<const double> weights,
                                             double density, uint64_t seed,
                                             absl::Span<const float> base, double lambda) {
  return DareCombine(experts, weights, density, seed, base, lambda, /*ties=*/false);
}

absl::StatusOr<std::vector<float>> DareTiesMerge(ExpertSpans experts,
                                                 absl::Span<const double> weights, double density,
                                                 uint64_t seed, absl::Span<const float> base,
                                                 double lambda) {
  return DareCombine(experts, weights, density, seed, base, lambda, /*ties=*/true);
}

absl::StatusOr<std::vector<float>> Slerp(absl::Span<const float> a, absl::Span<const float> b,
                                         double t, absl::Span<const int64_t> tensor_sizes) {
  if (a.size() != b.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("slerp endpoints have ", a.size(), " and ", b.size(), " parameters"));
  }
  WXP_RETURN_IF_ERROR(CheckFinite(t, "slerp t"));
  WXP_ASSIGN_OR_RETURN(const std::vector<size_t> sizes, ResolveTensorSizes(tensor_sizes, a.size()));
  std::vector<float> out(a.size());
  size_t begin = 0;
  for (const size_t size : sizes) {
    const size_t end = begin + size;
    double dot = 0, aa = 0, bb = 0;
    for (size_t j = begin; j < end; ++j) {
      dot += static_cast<double>(a[j]) * b[j];
      aa += static_cast<double>(a[j]) * a[j];
      bb += static_cast<double>(b[j]) * b[j];
    }
    double ca = 1.0 - t, cb = t;  // lerp unless the angle is well defined
    if (aa > 0 && bb > 0) {
      const double cos_theta = std::clamp(dot / (std::sqrt(aa) * std::sqrt(bb)), -1.0, 1.0);
      if (std::fabs(cos_theta) <= kSlerpLerpThreshold) {
        const double theta = std::acos(cos_theta);
        const double sin_theta = std::sin(theta);
        ca = std::sin((1.0 - t) * theta) / sin_theta;
        cb = std::sin(t * theta) / sin_theta;
      }
    }
    for (size_t j = begin; j < end; ++j) out[j] = static_cast<float>(ca * a[j] + cb * b[j]);
    begin = end;
  }
  return out;
}

absl::StatusOr<std::vector<float>> Slerp(ExpertSpans experts, double t,
                                         absl::Span<const int64_t> tensor_sizes) {
  if (experts.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("slerp needs exactly two experts, got ", experts.size()));
  }
  return Slerp(experts[0], experts[1], t, tensor_sizes);
}

absl::StatusOr<size_t> BestSingle(absl::Span<const double> utilities) {
  if (utilities.empty()) return absl::InvalidArgumentError("no expert utilities");
  size_t best = 0;
  for (size_t i = 0; i < utilities.size(); ++i) {
    if (std::isnan(utilities[i])) {
      return absl::InvalidArgumentError(absl::StrCat("utility of expert ", i, " is NaN"));
    }
    if (utilities[i] > utilities[best]) best = i;
  }
  return best;
}

}  // namespace wxp
