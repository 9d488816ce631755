// The MLP architecture (model.h): byte contexts embedded and concatenated, fc1, a residual
// fc2, head.
#include <cmath>

#include "client/legal/internal/architecture.h"

namespace wxp::legal::internal {
namespace {

enum Weight { kEmbed, kW1, kB1, kW2, kB2, kWh, kBh };
enum Layer { kFc1, kFc2, kHead };  // LinearLayers order

class Mlp : public Architecture {
 public:
  explicit Mlp(const ModelConfig& c) : c_(c), in_(static_cast<int64_t>(c.context) * c.embed) {}

  std::vector<TensorSpec> BaseSpecs() const override {
    return {{"embed.weight", DType::kF32, {kVocab, c_.embed}},
            {"fc1.weight", DType::kF32, {c_.hidden, in_}},
            {"fc1.bias", DType::kF32, {c_.hidden}},
            {"fc2.weight", DType::kF32, {c_.hidden, c_.hidden}},
            {"fc2.bias", DType::kF32, {c_.hidden}},
            {"head.weight", DType::kF32, {kVocab, c_.hidden}},
            {"head.bias", DType::kF32, {kVocab}}};
  }

  std::vector<LinearLayer> LinearLayers() const override {
    return {{"fc1", kW1, true}, {"fc2", kW2, true}, {"head", kWh, true}};
  }
  std::vector<std::string> TargetModules() const override { return {"fc1", "fc2", "head"}; }
  std::string DescribeLayers() const override { return "fc1, fc2 or head"; }

  std::vector<torch::Tensor> InitBase(Rng& rng) const override {
    const double in = static_cast<double>(in_), hidden = c_.hidden;
    std::vector<torch::Tensor> w;
    w.push_back(UniformTensor(rng, {kVocab, c_.embed}, 1.0));
    w.push_back(UniformTensor(rng, {c_.hidden, in_}, 1.0 / std::sqrt(in)));
    w.push_back(UniformTensor(rng, {c_.hidden}, 1.0 / std::sqrt(in)));
    w.push_back(UniformTensor(rng, {c_.hidden, c_.hidden}, 1.0 / std::sqrt(hidden)));
    w.push_back(UniformTensor(rng, {c_.hidden}, 1.0 / std::sqrt(hidden)));
    w.push_back(UniformTensor(rng, {kVocab, c_.hidden}, 1.0 / std::sqrt(hidden)));
    w.push_back(UniformTensor(rng, {kVocab}, 1.0 / std::sqrt(hidden)));
    return w;
  }

  TokenData::Impl Tokenize(const Segments& segments) const override {
    const int k = c_.context;
    int64_t n = 0;
    for (const std::string& s : segments) n += s.size();
    std::vector<int64_t> ctx(n * k, 0), targets(n);
    int64_t row = 0;
    for (const std::string& s : segments) {
      for (size_t t = 0; t < s.size(); ++t, ++row) {
        targets[row] = static_cast<unsigned char>(s[t]);
        for (int j = 0; j < k; ++j) {
          const int64_t src = static_cast<int64_t>(t) - k + j;
          ctx[row * k + j] = src < 0 ? 0 : static_cast<unsigned char>(s[src]);
        }
      }
    }
    TokenData::Impl d;
    d.inputs = torch::from_blob(ctx.data(), {n, k}, torch::kInt64).clone();
    d.targets = torch::from_blob(targets.data(), {n}, torch::kInt64).clone();
    d.positions = n;
    return d;
  }

  torch::Tensor Forward(const std::vector<torch::Tensor>& w, const torch::Tensor& ctx,
                        LinearTape* tape) const override {
    torch::Tensor x = w[kEmbed].index_select(0, ctx.reshape({-1})).reshape({ctx.size(0), -1});
    torch::Tensor h1 = torch::relu(ApplyLinear(x, w[kW1], w[kB1], kFc1, tape));
    torch::Tensor h2 = h1 + torch::relu(ApplyLinear(h1, w[kW2], w[kB2], kFc2, tape));
    return ApplyLinear(h2, w[kWh], w[kBh], kHead, tape);
  }

  std::pair<torch::Tensor, torch::Tensor> Batch(const TokenData::Impl& d, Rng& rng,
                                                int batch) const override {
    torch::Tensor idx = RandomIndices(rng, batch, d.targets.size(0));
    return {d.inputs.index_select(0, idx), d.targets.index_select(0, idx)};
  }

  int64_t ScoreRows() const override { return 4096; }

 private:
  ModelConfig c_;
  int64_t in_;
};

}  // namespace

std::unique_ptr<Architecture> MakeMlp(const ModelConfig& config) {
  return std::make_unique<Mlp>(config);
}

}  // namespace wxp::legal::internal
