#include "common/lora_synthetic.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/lora_layout.h"
#include "common/rng.h"
#include "common/status_macros.h"

namespace wxp {
namespace {

// ⟨x.b·x.a, y.b·y.a⟩_F = Σ_ab (x.bᵀ y.b)_ab · (x.a y.aᵀ)_ab; shapes already checked equal.
double Inner(const FactoredDelta& x, const FactoredDelta& y) {
  double sum = 0;
  for (int64_t p = 0; p < x.rank; ++p) {
    for (int64_t q = 0; q < y.rank; ++q) {
      double bb = 0, aa = 0;
      for (int64_t o = 0; o < x.out; ++o) bb += x.b[o * x.rank + p] * y.b[o * y.rank + q];
      const double* xa = x.a.data() + p * x.in;
      const double* ya = y.a.data() + q * y.in;
      for (int64_t i = 0; i < x.in; ++i) aa += xa[i] * ya[i];
      sum += bb * aa;
    }
  }
  return sum;
}

// Side-by-side b and stacked a: the factored sum of two deltas of one shape.
void Append(const FactoredDelta& x, double coefficient, FactoredDelta& sum) {
  const int64_t rank = sum.rank + x.rank;
  std::vector<double> b(sum.out * rank);
  for (int64_t o = 0; o < sum.out; ++o) {
    for (int64_t p = 0; p < sum.rank; ++p) b[o * rank + p] = sum.b[o * sum.rank + p];
    for (int64_t p = 0; p < x.rank; ++p)
      b[o * rank + sum.rank + p] = coefficient * x.b[o * x.rank + p];
  }
  sum.b = std::move(b);
  sum.a.insert(sum.a.end(), x.a.begin(), x.a.end());
  sum.rank = rank;
}

// min ‖R0 + Σ_i β_i d_i‖² over β from the Gram matrix h (m × m, d_i·d_k) and g (d_i·R0),
// given rr = ‖R0‖²; Gaussian elimination with partial pivoting, degenerate directions get 0.
double MinSquaredResidual(std::vector<std::vector<double>> h, std::vector<double> g, double rr) {
  const int m = static_cast<int>(g.size());
  const std::vector<std::vector<double>> h0 = h;
  const std::vector<double> g0 = g;
  std::vector<double> beta(m, 0.0);
  std::vector<int> pivot_col(m, -1);
  for (int col = 0, row = 0; col < m && row < m; ++col) {
    int best = row;
    for (int r = row + 1; r < m; ++r)
      if (std::fabs(h[r][col]) > std::fabs(h[best][col])) best = r;
    if (std::fabs(h[best][col]) < 1e-12 * (1 + std::fabs(h0[col][col]))) continue;
    std::swap(h[row], h[best]);
    std::swap(g[row], g[best]);
    for (int r = 0; r < m; ++r) {
      if (r == row) continue;
      const double f = h[r][col] / h[row][col];
      for (int j = col; j < m; ++j) h[r][j] -= f * h[row][j];
      g[r] -= f * g[row];
    }
    pivot_col[row] = col;
    ++row;
  }
  for (int row = 0; row < m; ++row)
    if (pivot_col[row] >= 0) beta[pivot_col[row]] = -g[row] / h[row][pivot_col[row]];
  double sq = rr;
  for (int i = 0; i < m; ++i) {
    sq += 2 * beta[i] * g0[i];
    for (int k = 0; k < m; ++k) sq += beta[i] * h0[i][k] * beta[k];
  }
  return std::max(sq, 0.0);
}

}  // namespace

std::vector<Adapter> MakeRandomLoraExperts(int count, int modules, int64_t width, int64_t rank,
                                           uint64_t seed, double scale) {
  std::vector<TensorSpec> specs;
  std::vector<std::string> targets;
  for (int m = 0; m < modules; ++m) {
    const std::string name = absl::StrCat(kPeftModelPrefix, "layers.", m, ".proj");
    specs.push_back({name + ".lora_A.weight", DType::kF32, {rank, width}});
    specs.push_back({name + ".lora_B.weight", DType::kF32, {width, rank}});
    targets.push_back(absl::StrCat("\"layers.", m, ".proj\""));
  }
  const std::string config = absl::StrCat(
      "{\n  \"base_model_name_or_path\": \"wxp/synthetic\",\n  \"lora_alpha\": ", 2 * rank,
      ",\n  \"peft_type\": \"LORA\",\n  \"r\": ", rank, ",\n  \"target_modules\": [",
      absl::StrJoin(targets, ", "), "],\n  \"task_type\": \"CAUSAL_LM\"\n}");
  std::vector<Adapter> experts(count);
  for (int j = 0; j < count; ++j) {
    Adapter& a = experts[j];
    a.schema = Schema(specs);
    a.values.resize(a.schema.total_params());
    CounterRng rng(seed, RngStream::kSynthetic, 5000 + j);
    for (float& x : a.values) x = static_cast<float>(scale * rng.NextGaussian());
    a.metadata = {{"format", "pt"}};
    a.config_json = config;
  }
  return experts;
}

absl::StatusOr<DeltaTarget> AdapterDeltas(const Adapter& adapter) {
  WXP_ASSIGN_OR_RETURN(LoraLayout layout, ParseLoraLayout(adapter));
  DeltaTarget out;
  for (const LoraModule& m : layout.modules) {
    FactoredDelta d;
    d.out = m.out_features;
    d.in = m.in_features;
    d.rank = m.rank;
    const float* a = adapter.values.data() + adapter.schema.offset(m.a_tensor);
    const float* b = adapter.values.data() + adapter.schema.offset(m.b_tensor);
    d.a.assign(a, a + m.rank * m.in_features);
    d.b.resize(m.out_features * m.rank);
    for (size_t i = 0; i < d.b.size(); ++i) d.b[i] = m.scaling * b[i];
    out[m.name] = std::move(d);
  }
  return out;
}

absl::StatusOr<DeltaTarget> MakeDeltaTarget(const std::vector<Adapter>& experts, uint64_t seed,
                                            double off_span_rms) {
  if (experts.empty()) return absl::InvalidArgumentError("no experts given");
  std::vector<const Adapter*> ptrs;
  for (const Adapter& a : experts) ptrs.push_back(&a);
  WXP_ASSIGN_OR_RETURN(LoraExpertSet set, CheckCompatibleExperts(ptrs));
  CounterRng rng(seed, RngStream::kSynthetic, 11);
  std::vector<double> alpha(experts.size());
  double sum = 0;
  for (double& a : alpha) {
    a = 1.0 + 0.5 * rng.NextGaussian();  // as MakeHiddenOptimum: around uniform
    sum += a;
  }
  if (std::fabs(sum) < 1e-3) sum = 1e-3;
  for (double& a : alpha) a /= sum;

  DeltaTarget target;
  for (size_t m = 0; m < set.modules.size(); ++m) {
    FactoredDelta& t = target[set.modules[m]];
    t.out = set.out_features[m];
    t.in = set.in_features[m];
  }
  for (size_t j = 0; j < experts.size(); ++j) {
    WXP_ASSIGN_OR_RETURN(DeltaTarget deltas, AdapterDeltas(experts[j]));
    for (const auto& [name, d] : deltas) Append(d, alpha[j], target[name]);
  }
  // Rank 2 with entries ~ N(0, σ²) has ΔW entries of variance 2σ⁴: σ² = rms / √2.
  const double sigma = std::sqrt(off_span_rms / std::sqrt(2.0));
  CounterRng noise(seed, RngStream::kSynthetic, 12);
  for (auto& [name, t] : target) {
    FactoredDelta off;
    off.out = t.out;
    off.in = t.in;
    off.rank = 2;
    off.b.resize(t.out * 2);
    off.a.resize(2 * t.in);
    for (double& x : off.b) x = sigma * noise.NextGaussian();
    for (double& x : off.a) x = sigma * noise.NextGaussian();
    if (off_span_rms > 0) Append(off, 1.0, t);
  }
  return target;
}

absl::StatusOr<double> DeltaWUtility(const DeltaTarget& target, const Adapter& adapter) {
  WXP_ASSIGN_OR_RETURN(DeltaTarget deltas, AdapterDeltas(adapter));
  double sq = 0, entries = 0;
  for (const auto& [name, t] : target) {
    sq += Inner(t, t);
    entries += static_cast<double>(t.out) * t.in;
    auto it = deltas.find(name);
    if (it == deltas.end()) continue;
    const FactoredDelta& d = it->second;
    if (d.out != t.out || d.in != t.in) {
      return absl::InvalidArgumentError(absl::StrCat("module ", name, " is [", d.out, ", ", d.in,
                                                     "]; the target's is [", t.out, ", ", t.in,
                                                     "]"));
    }
    sq += Inner(d, d) - 2 * Inner(d, t);
  }
  for (const auto& [name, d] : deltas) {
    if (target.count(name) > 0) continue;
    sq += Inner(d, d);
    entries += static_cast<double>(d.out) * d.in;
  }
  // The expansion can dip below zero by rounding when the adapter sits on the target.
  return entries > 0 ? -std::sqrt(std::max(sq, 0.0) / entries) : 0.0;
}

absl::StatusOr<double> ProductSpanUtility(const DeltaTarget& target,
                                          const std::vector<Adapter>& experts, bool per_module) {
  if (experts.empty()) return absl::InvalidArgumentError("no experts given");
  const size_t n = experts.size();
  std::vector<DeltaTarget> deltas;
  for (const Adapter& a : experts) {
    WXP_ASSIGN_OR_RETURN(DeltaTarget d, AdapterDeltas(a));
    for (const auto& [name, x] : d) {
      auto it = target.find(name);
      if (it == target.end() || it->second.out != x.out || it->second.in != x.in) {
        return absl::InvalidArgumentError(
            absl::StrCat("module ", name, " is not in the target or has another shape"));
      }
    }
    deltas.push_back(std::move(d));
  }
  // Per module (or summed over modules): G_jk = ⟨D_j, D_k⟩, c_j = ⟨D_j, T⟩, tt = ⟨T, T⟩.
  using Matrix = std::vector<std::vector<double>>;
  Matrix gram(n, std::vector<double>(n, 0.0));
  std::vector<double> c(n, 0.0);
  double tt = 0, entries = 0, total = 0;
  auto solve = [&] {
    // α = e_0 + Σ_{i>0} β_i (e_i − e_0): directions d_i = D_i − D_0, residual R0 = D_0 − T.
    const int m = static_cast<int>(n) - 1;
    Matrix h(m, std::vector<double>(m));
    std::vector<double> g(m);
    for (int i = 0; i < m; ++i) {
      for (int k = 0; k < m; ++k) {
        h[i][k] = gram[i + 1][k + 1] - gram[i + 1][0] - gram[0][k + 1] + gram[0][0];
      }
      g[i] = (gram[i + 1][0] - c[i + 1]) - (gram[0][0] - c[0]);
    }
    total += MinSquaredResidual(std::move(h), std::move(g), gram[0][0] - 2 * c[0] + tt);
    for (auto& row : gram) std::fill(row.begin(), row.end(), 0.0);
    std::fill(c.begin(), c.end(), 0.0);
    tt = 0;
  };
  for (const auto& [name, t] : target) {
    tt += Inner(t, t);
    entries += static_cast<double>(t.out) * t.in;
    for (size_t j = 0; j < n; ++j) {
      auto dj = deltas[j].find(name);
      if (dj == deltas[j].end()) continue;
      c[j] += Inner(dj->second, t);
      for (size_t k = 0; k <= j; ++k) {
        auto dk = deltas[k].find(name);
        if (dk == deltas[k].end()) continue;
        gram[j][k] += Inner(dj->second, dk->second);
        gram[k][j] = gram[j][k];
      }
    }
    if (per_module) solve();
  }
  if (!per_module) solve();
  return entries > 0 ? -std::sqrt(total / entries) : 0.0;
}

absl::StatusOr<Scores> DeltaWEvaluator::Evaluate(const AdapterEvaluationRequest& request) {
  if (request.adapter == nullptr) return absl::InvalidArgumentError("no adapter to evaluate");
  WXP_ASSIGN_OR_RETURN(double u, DeltaWUtility(target_, *request.adapter));
  if (noise_stddev_ > 0) {
    CounterRng rng(seed_, RngStream::kSynthetic,
                   (static_cast<uint64_t>(request.iteration) << 32) ^
                       static_cast<uint32_t>(request.particle) ^ 0xDE17Aull << 40);
    u += noise_stddev_ * rng.NextGaussian();
  }
  return Scores{{kDeltaWComponent, u}};
}

}  // namespace wxp
