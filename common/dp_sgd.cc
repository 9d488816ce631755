#include "common/dp_sgd.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace wxp::dp {

absl::Status DpSgdParams::Validate() const {
  if (sample_rate == 0) return absl::OkStatus();
  if (!(sample_rate > 0 && sample_rate <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dp-sgd: sampling rate must be in (0, 1], got ", sample_rate));
  }
  if (!(clip_norm > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dp-sgd: clipping norm must be > 0, got ", clip_norm));
  }
  if (!(noise_multiplier >= 0 && std::isfinite(noise_multiplier))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dp-sgd: noise multiplier must be a finite number >= 0, got ", noise_multiplier));
  }
  if (noise_multiplier > 0 && std::isinf(clip_norm)) {
    return absl::InvalidArgumentError(
        "dp-sgd: noise needs a finite clipping norm (an unclipped gradient has no bounded "
        "sensitivity)");
  }
  return absl::OkStatus();
}

std::vector<int64_t> PoissonSample(int64_t n, double q, CounterRng& rng) {
  std::vector<int64_t> out;
  if (n <= 0 || !(q > 0)) return out;
  if (q >= 1) {
    out.reserve(n);
    for (int64_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  // The gap before the next included index is geometric: P(gap = k) = (1−q)^k q, drawn as
  // floor(log U / log(1−q)) with U in (0, 1].
  const double log_1mq = std::log1p(-q);
  double at = -1;
  for (;;) {
    const double u = 1.0 - rng.NextUniform();
    at += 1 + std::floor(std::log(u) / log_1mq);
    if (at >= static_cast<double>(n)) break;
    out.push_back(static_cast<int64_t>(at));
  }
  return out;
}

double ClipToNorm(absl::Span<float> grad, double clip) {
  double sq = 0;
  for (float g : grad) sq += static_cast<double>(g) * g;
  const double norm = std::sqrt(sq);
  if (norm > clip) {
    const double scale = clip / norm;
    for (float& g : grad) g = static_cast<float>(g * scale);
  }
  return norm;
}

absl::Status ClippedGradientSum::Add(absl::Span<const float> grad) {
  if (grad.size() != sum_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dp-sgd: a gradient of ", grad.size(), " values, expected ", sum_.size()));
  }
  std::vector<float> g(grad.begin(), grad.end());
  for (float v : g) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("dp-sgd: a non-finite gradient");
  }
  ClipToNorm(absl::MakeSpan(g), clip_);
  for (size_t i = 0; i < g.size(); ++i) sum_[i] += g[i];
  ++count_;
  return absl::OkStatus();
}

std::vector<float> ClippedGradientSum::Release(double noise_multiplier, double expected_batch,
                                               CounterRng& rng) const {
  std::vector<float> out(sum_.size());
  const double stddev = noise_multiplier * clip_;
  for (size_t i = 0; i < sum_.size(); ++i) {
    const double noise = noise_multiplier > 0 ? stddev * rng.NextGaussian() : 0.0;
    out[i] = static_cast<float>((sum_[i] + noise) / expected_batch);
  }
  return out;
}

}  // namespace wxp::dp
