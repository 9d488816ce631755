// The DP-SGD step of the legal model's training loop (internal/architecture.h) on a toy
// network whose gradients autograd gives directly: the step must release exactly the mean
// gradient without clipping or noise, the mean of the hand-clipped gradients with clipping,
// and noise of the calibrated scale.
#include <torch/autograd.h>
#include <torch/types.h>

#include <cmath>
#include <limits>

#include "client/legal/internal/architecture.h"
#include "gtest/gtest.h"

namespace wxp::legal::internal {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Rows of one input byte and one target byte; logits = E[x] · H.
TokenData::Impl ToyData() {
  TokenData::Impl d;
  std::vector<int64_t> in = {1, 2, 3, 1, 9, 4}, out = {5, 6, 7, 8, 5, 200};
  d.inputs = torch::tensor(in, torch::kInt64).reshape({6, 1});
  d.targets = torch::tensor(out, torch::kInt64);
  d.positions = 6;
  return d;
}

struct Toy {
  torch::Tensor e, h;
  std::vector<torch::Tensor> params() const { return {e, h}; }
  torch::Tensor Forward(const torch::Tensor& x) const {
    return e.index_select(0, x.reshape({-1})).mm(h);
  }
};

Toy MakeToy() {
  Rng rng(3);
  Toy t{UniformTensor(rng, {kVocab, 4}, 1.0), UniformTensor(rng, {4, kVocab}, 1.0)};
  t.e.set_requires_grad(true);
  t.h.set_requires_grad(true);
  return t;
}

// Flat per-row gradients (E then H) by autograd, one row at a time.
std::vector<std::vector<float>> PerRowGradients(const Toy& t, const TokenData::Impl& d) {
  std::vector<std::vector<float>> out;
  for (int64_t r = 0; r < d.inputs.size(0); ++r) {
    torch::Tensor loss = Loss(t.Forward(d.inputs.narrow(0, r, 1)), d.targets.narrow(0, r, 1));
    std::vector<torch::Tensor> g = torch::autograd::grad({loss}, t.params());
    std::vector<float> flat;
    for (const torch::Tensor& x : g) {
      torch::Tensor c = x.contiguous();
      flat.insert(flat.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    }
    out.push_back(flat);
  }
  return out;
}

std::vector<float> Grads(const Toy& t) {
  std::vector<float> flat;
  for (const torch::Tensor& p : t.params()) {
    torch::Tensor c = p.grad().contiguous();
    flat.insert(flat.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  return flat;
}

int64_t Step(const Toy& t, const TokenData::Impl& d, const dp::DpSgdParams& p, uint64_t seed) {
  CounterRng sampler(seed, RngStream::kDpSampling), noise(seed, RngStream::kDpNoise);
  auto forward = [&](const torch::Tensor& x) { return t.Forward(x); };
  return DpSgdStep(d, p, forward, t.params(), sampler, noise);
}

TEST(DpSgdStepTest, WithoutClippingOrNoiseItIsThePlainMeanGradient) {
  const TokenData::Impl d = ToyData();
  Toy t = MakeToy();
  // q = 1: every row, expected batch = 6 = drawn batch.
  EXPECT_EQ(Step(t, d, {kInf, 0, 1.0}, 1), 6);
  const std::vector<float> dp = Grads(t);
  // Plain SGD's gradient: the batch's mean loss, one backward pass.
  for (const torch::Tensor& p : t.params()) p.mutable_grad() = torch::Tensor();
  Loss(t.Forward(d.inputs), d.targets).backward();
  const std::vector<float> plain = Grads(t);
  ASSERT_EQ(dp.size(), plain.size());
  double max_abs = 0;
  for (float v : plain) max_abs = std::max(max_abs, std::fabs(static_cast<double>(v)));
  ASSERT_GT(max_abs, 1e-3);  // a real gradient, not zeros
  for (size_t i = 0; i < dp.size(); ++i) ASSERT_NEAR(dp[i], plain[i], 1e-6) << i;
}

TEST(DpSgdStepTest, ClipsEachExampleOverAllParametersThenAverages) {
  const TokenData::Impl d = ToyData();
  Toy t = MakeToy();
  const std::vector<std::vector<float>> rows = PerRowGradients(t, d);
  const double clip = 0.05;
  std::vector<double> want(rows[0].size(), 0.0);
  for (const std::vector<float>& g : rows) {
    double sq = 0;
    for (float v : g) sq += static_cast<double>(v) * v;
    const double norm = std::sqrt(sq);
    ASSERT_GT(norm, clip);  // every example is clipped here
    for (size_t i = 0; i < g.size(); ++i) want[i] += g[i] * (clip / norm) / 6;
  }
  Step(t, d, {clip, 0, 1.0}, 1);
  const std::vector<float> got = Grads(t);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-7) << i;
}

TEST(DpSgdStepTest, NoiseHasScaleSigmaClipOverExpectedBatch) {
  const TokenData::Impl d = ToyData();
  Toy t = MakeToy();
  Step(t, d, {0.05, 0, 1.0}, 1);
  const std::vector<float> clean = Grads(t);
  Step(t, d, {0.05, 2.0, 1.0}, 1);
  const std::vector<float> noisy = Grads(t);
  double sq = 0;
  for (size_t i = 0; i < clean.size(); ++i) sq += std::pow(noisy[i] - clean[i], 2);
  const double sd = std::sqrt(sq / clean.size());
  const double want = 2.0 * 0.05 / 6;  // σ C / (q N)
  // 2048 coordinates: the sample sd is within 6% of the true one with overwhelming odds.
  EXPECT_NEAR(sd, want, 0.06 * want);
}

TEST(DpSgdStepTest, SamplesRowsWithRateQDeterministically) {
  const TokenData::Impl d = ToyData();
  Toy t = MakeToy();
  const int64_t a = Step(t, d, {1.0, 1.0, 0.5}, 7);
  const std::vector<float> ga = Grads(t);
  const int64_t b = Step(t, d, {1.0, 1.0, 0.5}, 7);
  EXPECT_EQ(a, b);
  EXPECT_EQ(Grads(t), ga);
  int64_t total = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) total += Step(t, d, {1.0, 0.0, 0.5}, seed);
  // 200 steps x 6 rows x 0.5 = 600 expected, standard deviation ~17.
  EXPECT_NEAR(total, 600, 90);
}

}  // namespace
}  // namespace wxp::legal::internal
