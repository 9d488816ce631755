// The DP-SGD step of the legal model's training loop (internal/architecture.h) on a toy
// network whose gradients autograd gives directly: the step must release exactly the mean
// gradient without clipping or noise, the mean of the hand-clipped gradients with clipping,
// and noise of the calibrated scale. And the per-example LoRA gradients the legal model
// feeds it, from one batched pass, must be each example's own gradient as autograd gives it
// for that example alone, for both architectures.
#include <torch/autograd.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "client/legal/internal/architecture.h"
#include "client/legal/model.h"
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

// A chunk of 4 rows, so the 6 rows of a full sample take two calls.
int64_t Step(const Toy& t, const TokenData::Impl& d, const dp::DpSgdParams& p, uint64_t seed) {
  CounterRng sampler(seed, RngStream::kDpSampling), noise(seed, RngStream::kDpNoise);
  const std::vector<std::vector<float>> all = PerRowGradients(t, d);
  auto per_example = [&](const torch::Tensor& rows) {
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < rows.size(0); ++i) {
      out.push_back(torch::tensor(all[rows[i].item<int64_t>()]).unsqueeze(0));
    }
    return torch::cat(out, 0);
  };
  return DpSgdStep(d.inputs.size(0), p, per_example, 4, t.params(), sampler, noise);
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

// Each row's gradient of its mean loss with respect to every LoRA's a and b, by autograd on
// that row alone (the oracle: the loop DpSgdStep used before it took batched gradients).
std::vector<std::vector<float>> LoraRowGradients(const Architecture& arch,
                                                 const std::vector<torch::Tensor>& base,
                                                 const std::vector<TrainableLora>& lora,
                                                 const torch::Tensor& inputs,
                                                 const torch::Tensor& targets) {
  const std::vector<LinearLayer> layers = arch.LinearLayers();
  std::vector<std::vector<float>> out;
  for (int64_t r = 0; r < inputs.size(0); ++r) {
    std::vector<torch::Tensor> params, w = base;
    for (const TrainableLora& l : lora) {
      torch::Tensor a = l.a.clone().set_requires_grad(true);
      torch::Tensor b = l.b.clone().set_requires_grad(true);
      torch::Tensor& target = w[layers[l.layer].base_tensor];
      target = target + l.scale * b.mm(a);
      params.push_back(a);
      params.push_back(b);
    }
    const torch::Tensor loss =
        Loss(arch.Forward(w, inputs.narrow(0, r, 1), nullptr), targets.narrow(0, r, 1));
    std::vector<float> flat;
    for (const torch::Tensor& g : torch::autograd::grad({loss}, params)) {
      const torch::Tensor c = g.contiguous();
      flat.insert(flat.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    }
    out.push_back(flat);
  }
  return out;
}

// Tiny models, LoRAs with non-zero a and b on some of their layers, a few rows of real text
// (the transformer's last row padded): the batched gradients equal the per-row oracle's.
void ExpectBatchedEqualsPerRow(const ModelConfig& config, const std::vector<int>& lora_layers) {
  std::unique_ptr<Architecture> arch =
      config.architecture == legal::Architecture::kMlp ? MakeMlp(config) : MakeTransformer(config);
  Rng rng(11);
  const std::vector<torch::Tensor> base = arch->InitBase(rng);
  const std::vector<LinearLayer> layers = arch->LinearLayers();
  std::vector<TrainableLora> lora;
  std::vector<torch::Tensor> merged = base;
  for (int i : lora_layers) {
    const std::vector<int64_t> w = base[layers[i].base_tensor].sizes().vec();  // [out, in]
    TrainableLora l{i, UniformTensor(rng, {2, w[1]}, 0.5), UniformTensor(rng, {w[0], 2}, 0.5), 1.5};
    merged[layers[i].base_tensor] = merged[layers[i].base_tensor] + l.scale * l.b.mm(l.a);
    lora.push_back(l);
  }
  const TokenData::Impl d =
      arch->Tokenize({"Permission is hereby granted, free of charge, to any person", "GPL v3"});
  const int64_t rows = std::min<int64_t>(d.inputs.size(0), 7);
  const torch::Tensor in = d.inputs.narrow(0, d.inputs.size(0) - rows, rows);
  const torch::Tensor tg = d.targets.narrow(0, d.targets.size(0) - rows, rows);
  const std::vector<std::vector<float>> want = LoraRowGradients(*arch, base, lora, in, tg);
  const torch::Tensor got = LoraPerExampleGradients(*arch, merged, lora, in, tg).contiguous();
  ASSERT_EQ(got.size(0), rows);
  ASSERT_EQ(got.size(1), static_cast<int64_t>(want[0].size()));
  double max_abs = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (size_t i = 0; i < want[r].size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(want[r][i])));
      ASSERT_NEAR(got[r][i].item<float>(), want[r][i], 1e-5 + 1e-4 * std::fabs(want[r][i]))
          << "row " << r << " coordinate " << i;
    }
  }
  ASSERT_GT(max_abs, 1e-3);  // real gradients, not zeros
}

ModelConfig TinyConfig(legal::Architecture a) {
  ModelConfig c = ModelConfig::Defaults(a);
  c.context = 8;
  c.embed = 8;
  c.hidden = 16;
  c.layers = 2;
  c.heads = 2;
  c.lora_mlp = true;
  return c;
}

TEST(LoraPerExampleGradientsTest, MlpBatchedEqualsEachRowAlone) {
  ExpectBatchedEqualsPerRow(TinyConfig(legal::Architecture::kMlp), {0, 2});
}

TEST(LoraPerExampleGradientsTest, TransformerBatchedEqualsEachWindowAlone) {
  // Attention and MLP projections of both blocks, the same input feeding q, k and v.
  ExpectBatchedEqualsPerRow(TinyConfig(legal::Architecture::kTransformer), {0, 1, 2, 3, 6, 7, 12});
}

TEST(LoraPerExampleGradientsTest, ALayerTheModelDoesNotHaveIsAnError) {
  std::unique_ptr<Architecture> arch = MakeMlp(TinyConfig(legal::Architecture::kMlp));
  Rng rng(1);
  const std::vector<torch::Tensor> base = arch->InitBase(rng);
  const TokenData::Impl d = arch->Tokenize({"some text"});
  // An MLP has three linear layers (fc1, fc2, head): there is no layer 3.
  try {
    LoraPerExampleGradients(*arch, base, {{3, torch::zeros({2, 16}), torch::zeros({16, 2}), 1.0}},
                            d.inputs, d.targets);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no linear layer 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace wxp::legal::internal
