// Training helpers shared by model.cc and the architectures: seeded tensors, the loss, the
// linear layers and their tape, and the DP-SGD step with its per-example LoRA gradients.
#include <torch/autograd.h>
#include <torch/types.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "client/legal/internal/architecture.h"

namespace wxp::legal::internal {

torch::Tensor UniformTensor(Rng& rng, std::vector<int64_t> shape, double bound) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>((2 * rng.Uniform() - 1) * bound);
  return torch::from_blob(v.data(), shape, torch::kFloat32).clone();
}

torch::Tensor RandomIndices(Rng& rng, int64_t count, int64_t below) {
  std::vector<int64_t> v(count);
  for (int64_t& x : v) x = rng.Below(below);
  return torch::from_blob(v.data(), {count}, torch::kInt64).clone();
}

torch::Tensor Loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  // Targets kNoTarget (padding) are nll_loss's ignore_index: the mean is over real ones.
  return torch::nll_loss(torch::log_softmax(logits.reshape({-1, kVocab}), 1),
                         targets.reshape({-1}));
}

torch::Tensor ApplyLinear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias,
                          int layer, LinearTape* tape) {
  torch::Tensor y = bias.defined() && x.dim() == 2 ? torch::addmm(bias, x, w.t())
                    : bias.defined()               ? torch::matmul(x, w.t()) + bias
                                                   : torch::matmul(x, w.t());
  if (tape != nullptr) tape->entries.push_back({layer, x, y});
  return y;
}

torch::Tensor LoraPerExampleGradients(const Architecture& arch, std::vector<torch::Tensor> merged,
                                      const std::vector<TrainableLora>& lora,
                                      const torch::Tensor& inputs, const torch::Tensor& targets) {
  const int64_t n = inputs.size(0);
  const std::vector<LinearLayer> layers = arch.LinearLayers();
  // The graph starts at the merged weights of the trained layers: what the gradients of the
  // layers' outputs need, and nothing upstream of them.
  for (const TrainableLora& l : lora) {
    if (l.layer < 0 || l.layer >= static_cast<int>(layers.size())) {
      throw std::runtime_error("per-example gradients: the model has no linear layer " +
                               std::to_string(l.layer));
    }
    torch::Tensor& w = merged[layers[l.layer].base_tensor];
    if (!w.requires_grad()) w = w.detach().requires_grad_(true);
  }
  LinearTape tape;
  const torch::Tensor logits = arch.Forward(merged, inputs, &tape);
  const torch::Tensor t = targets.reshape({n, -1});
  const torch::Tensor logp = torch::log_softmax(logits.reshape({n, t.size(1), kVocab}), -1);
  const torch::Tensor real = t.ne(kNoTarget).to(torch::kFloat32);
  const torch::Tensor nll = -logp.gather(2, t.clamp_min(0).unsqueeze(2)).squeeze(2) * real;
  // Each row's mean over its real targets, as Loss scores a row alone; summed, the gradient
  // at each row's outputs is that row's own.
  const torch::Tensor total = (nll.sum(1) / real.sum(1).clamp_min(1)).sum();
  // The outputs of the trained layers only (another layer's may not need a gradient).
  std::vector<const LinearTape::Entry*> trained;
  std::vector<torch::Tensor> outputs;
  for (const LinearTape::Entry& e : tape.entries) {
    for (const TrainableLora& l : lora) {
      if (e.layer == l.layer) {
        trained.push_back(&e);
        outputs.push_back(e.output);
        break;
      }
    }
  }
  const std::vector<torch::Tensor> grads =
      outputs.empty()
          ? std::vector<torch::Tensor>{}
          : torch::autograd::grad({total}, outputs, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                  /*create_graph=*/false, /*allow_unused=*/true);
  std::vector<torch::Tensor> parts;
  for (const TrainableLora& l : lora) {
    torch::Tensor da = torch::zeros({n, l.a.size(0), l.a.size(1)});
    torch::Tensor db = torch::zeros({n, l.b.size(0), l.b.size(1)});
    bool applied = false;
    for (size_t k = 0; k < trained.size(); ++k) {
      const LinearTape::Entry& e = *trained[k];
      if (e.layer != l.layer) continue;
      applied = true;
      if (!grads[k].defined()) continue;  // the loss does not depend on it: zero
      const torch::Tensor x = e.input.detach().reshape({n, -1, l.a.size(1)});  // [n, T, in]
      const torch::Tensor g = grads[k].reshape({n, -1, l.b.size(0)});          // [n, T, out]
      da += torch::matmul(g, l.b).transpose(1, 2).bmm(x) * l.scale;
      db += g.transpose(1, 2).bmm(torch::matmul(x, l.a.t())) * l.scale;
    }
    if (!applied) {
      throw std::runtime_error("per-example gradients: layer " + layers[l.layer].module +
                               " was not applied by the forward pass");
    }
    parts.push_back(da.reshape({n, -1}));
    parts.push_back(db.reshape({n, -1}));
  }
  return torch::cat(parts, 1);
}

int64_t DpSgdStep(int64_t examples, const dp::DpSgdParams& dp,
                  const PerExampleGradients& per_example, int64_t chunk,
                  const std::vector<torch::Tensor>& params, CounterRng& sampler,
                  CounterRng& noise) {
  // Poisson sampling, as the accountant (common/dp_accountant.h) assumes.
  const std::vector<int64_t> rows = dp::PoissonSample(examples, dp.sample_rate, sampler);
  int64_t dim = 0;
  for (const torch::Tensor& p : params) dim += p.numel();
  dp::ClippedGradientSum sum(static_cast<size_t>(dim), dp.clip_norm);
  for (size_t start = 0; start < rows.size(); start += static_cast<size_t>(chunk)) {
    const int64_t len = std::min<int64_t>(chunk, static_cast<int64_t>(rows.size() - start));
    std::vector<int64_t> part(rows.begin() + start, rows.begin() + start + len);
    const torch::Tensor g = per_example(torch::from_blob(part.data(), {len}, torch::kInt64).clone())
                                .detach()
                                .to(torch::kFloat32)
                                .contiguous();
    if (g.dim() != 2 || g.size(0) != len || g.size(1) != dim) {
      throw std::runtime_error("per-example gradients: wrong shape");
    }
    for (int64_t r = 0; r < len; ++r) {
      const absl::Status s =
          sum.Add(absl::MakeConstSpan(g.data_ptr<float>() + r * dim, static_cast<size_t>(dim)));
      if (!s.ok()) throw std::runtime_error(std::string(s.message()));
    }
  }
  const std::vector<float> released =
      sum.Release(dp.noise_multiplier, dp.sample_rate * static_cast<double>(examples), noise);
  int64_t at = 0;
  for (const torch::Tensor& p : params) {
    torch::Tensor g =
        torch::from_blob(const_cast<float*>(released.data()) + at, p.sizes(), torch::kFloat32)
            .clone();
    p.mutable_grad() = g;
    at += p.numel();
  }
  return static_cast<int64_t>(rows.size());
}

}  // namespace wxp::legal::internal
