#include "common/synthetic.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/rng.h"

namespace wxp {
namespace {

absl::Status CheckExperts(const std::vector<std::vector<float>>& experts, size_t dim) {
  if (experts.empty()) return absl::InvalidArgumentError("no experts given");
  for (size_t i = 0; i < experts.size(); ++i) {
    if (experts[i].size() != dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("expert ", i, " has ", experts[i].size(), " parameters, expected ", dim));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<std::vector<float>> MakeRandomExperts(int count, int64_t dim, uint64_t seed,
                                                  double scale) {
  std::vector<std::vector<float>> experts(count, std::vector<float>(dim));
  for (int i = 0; i < count; ++i) {
    CounterRng rng(seed, RngStream::kSynthetic, 1000 + i);
    for (float& x : experts[i]) x = static_cast<float>(scale * rng.NextGaussian());
  }
  return experts;
}

absl::StatusOr<std::vector<float>> MakeHiddenOptimum(const std::vector<std::vector<float>>& experts,
                                                     uint64_t seed, double off_hull_rms) {
  if (experts.empty()) return absl::InvalidArgumentError("no experts given");
  const size_t dim = experts[0].size();
  if (absl::Status s = CheckExperts(experts, dim); !s.ok()) return s;
  const int n = static_cast<int>(experts.size());
  CounterRng rng(seed, RngStream::kSynthetic, 1);
  std::vector<double> alpha(n);
  double sum = 0;
  for (double& a : alpha) {
    a = 1.0 + 0.5 * rng.NextGaussian();  // around uniform, sometimes extrapolating
    sum += a;
  }
  if (std::fabs(sum) < 1e-3) sum = 1e-3;
  for (double& a : alpha) a /= sum;
  std::vector<float> optimum(dim, 0.0f);
  CounterRng noise(seed, RngStream::kSynthetic, 2);
  for (size_t j = 0; j < dim; ++j) {
    double v = 0;
    for (int i = 0; i < n; ++i) v += alpha[i] * experts[i][j];
    optimum[j] = static_cast<float>(v + off_hull_rms * noise.NextGaussian());
  }
  return optimum;
}

absl::StatusOr<double> ReachableUtility(const std::vector<std::vector<float>>& experts,
                                        const std::vector<float>& target) {
  if (absl::Status s = CheckExperts(experts, target.size()); !s.ok()) return s;
  const int m = static_cast<int>(experts.size()) - 1;  // hull directions d_i = x_i - x_0
  const size_t dim = target.size();
  // Normal equations G c = r, G_ij = d_i.d_j, r_i = d_i.(t - x_0); m is small.
  std::vector<std::vector<double>> g(m, std::vector<double>(m + 1, 0.0));
  const std::vector<float>& x0 = experts[0];
  for (size_t k = 0; k < dim; ++k) {
    const double t = target[k] - x0[k];
    for (int i = 0; i < m; ++i) {
      const double di = experts[i + 1][k] - x0[k];
      for (int j = 0; j <= i; ++j) g[i][j] += di * (experts[j + 1][k] - x0[k]);
      g[i][m] += di * t;
    }
  }
  for (int i = 0; i < m; ++i)
    for (int j = i + 1; j < m; ++j) g[i][j] = g[j][i];
  // Gaussian elimination with partial pivoting; degenerate directions get coefficient 0.
  std::vector<double> c(m, 0.0);
  std::vector<int> pivot_col(m, -1);
  for (int col = 0, row = 0; col < m && row < m; ++col) {
    int best = row;
    for (int r = row + 1; r < m; ++r)
      if (std::fabs(g[r][col]) > std::fabs(g[best][col])) best = r;
    if (std::fabs(g[best][col]) < 1e-12 * (1 + std::fabs(g[col][col]))) continue;
    std::swap(g[row], g[best]);
    for (int r = 0; r < m; ++r) {
      if (r == row) continue;
      const double f = g[r][col] / g[row][col];
      for (int j = col; j <= m; ++j) g[r][j] -= f * g[row][j];
    }
    pivot_col[row] = col;
    ++row;
  }
  for (int row = 0; row < m; ++row)
    if (pivot_col[row] >= 0) c[pivot_col[row]] = g[row][m] / g[row][pivot_col[row]];
  double sq = 0;
  for (size_t k = 0; k < dim; ++k) {
    double p = x0[k];
    for (int i = 0; i < m; ++i) p += c[i] * (experts[i + 1][k] - x0[k]);
    const double d = p - target[k];
    sq += d * d;
  }
  return -std::sqrt(sq / static_cast<double>(dim));
}

double NegativeRmsDistance(absl::Span<const float> a, absl::Span<const float> b) {
  double sq = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    sq += d * d;
  }
  return a.empty() ? 0.0 : -std::sqrt(sq / static_cast<double>(a.size()));
}

absl::StatusOr<Scores> SyntheticEvaluator::Evaluate(const EvaluationRequest& request) {
  if (request.params.size() != optimum_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("position has ", request.params.size(),
                                                   " parameters, the synthetic task has ",
                                                   optimum_.size()));
  }
  double u = NegativeRmsDistance(request.params, optimum_);
  if (noise_stddev_ > 0) {
    CounterRng rng(seed_, RngStream::kSynthetic,
                   (static_cast<uint64_t>(request.iteration) << 32) ^
                       static_cast<uint32_t>(request.particle) ^ 0xABCDEFull << 40);
    u += noise_stddev_ * rng.NextGaussian();
  }
  return Scores{{kSyntheticComponent, u}};
}

absl::StatusOr<std::vector<float>> SyntheticTrainer::Train(const TrainingRequest& request) {
  if (request.params.size() != optimum_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("position has ", request.params.size(),
                                                   " parameters, the synthetic task has ",
                                                   optimum_.size()));
  }
  if (request.steps < 1 || request.batch < 1 ||
      !(std::isfinite(request.learning_rate) && request.learning_rate > 0)) {
    return absl::InvalidArgumentError(
        "synthetic trainer: steps and batch must be >= 1 and the learning rate finite and > 0");
  }
  std::vector<float> x(request.params.begin(), request.params.end());
  const double noise = kSyntheticGradientNoise / std::sqrt(static_cast<double>(request.batch));
  for (int step = 0; step < request.steps; ++step) {
    CounterRng rng(request.seed, RngStream::kLocalTraining, static_cast<uint64_t>(step));
    for (size_t j = 0; j < x.size(); ++j) {
      const double grad = static_cast<double>(x[j]) - optimum_[j] + noise * rng.NextGaussian();
      x[j] = static_cast<float>(x[j] - request.learning_rate * grad);
    }
  }
  return x;
}

}  // namespace wxp
