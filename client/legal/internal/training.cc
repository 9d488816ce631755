// Training helpers shared by model.cc and the architectures: seeded tensors, the loss, and
// the DP-SGD step (per-example gradients by looping over the sampled examples: the model is
// small, and a loop needs nothing from the architecture beyond its forward pass).
#include <torch/autograd.h>
#include <torch/types.h>

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

int64_t DpSgdStep(const TokenData::Impl& data, const dp::DpSgdParams& dp,
                  const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                  const std::vector<torch::Tensor>& params, CounterRng& sampler,
                  CounterRng& noise) {
  const int64_t n = data.inputs.size(0);
  // Poisson sampling, as the accountant (common/dp_accountant.h) assumes.
  const std::vector<int64_t> rows = dp::PoissonSample(n, dp.sample_rate, sampler);
  int64_t dim = 0;
  for (const torch::Tensor& p : params) dim += p.numel();
  dp::ClippedGradientSum sum(static_cast<size_t>(dim), dp.clip_norm);
  std::vector<float> flat(dim);
  for (int64_t row : rows) {
    const torch::Tensor loss =
        Loss(forward(data.inputs.narrow(0, row, 1)), data.targets.narrow(0, row, 1));
    const std::vector<torch::Tensor> grads =
        torch::autograd::grad({loss}, params, /*grad_outputs=*/{}, /*retain_graph=*/true);
    int64_t at = 0;
    for (const torch::Tensor& g : grads) {
      const torch::Tensor c = g.contiguous();
      std::copy(c.data_ptr<float>(), c.data_ptr<float>() + c.numel(), flat.begin() + at);
      at += c.numel();
    }
    if (absl::Status s = sum.Add(flat); !s.ok()) throw std::runtime_error(std::string(s.message()));
  }
  const std::vector<float> released =
      sum.Release(dp.noise_multiplier, dp.sample_rate * static_cast<double>(n), noise);
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
