// The transformer architecture (model.h): a Llama-shaped causal byte LM with learned
// positions, read in windows of `context` bytes.
#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>

#include "absl/strings/str_cat.h"
#include "client/legal/internal/architecture.h"

namespace wxp::legal::internal {
namespace {

// Per block, in BaseSpecs order after the two embeddings.
enum BlockWeight { kInNorm, kQ, kK, kV, kO, kPostNorm, kGate, kUp, kDown, kPerBlock };
constexpr const char* kBlockNames[] = {
    "input_layernorm",  "self_attn.q_proj", "self_attn.k_proj",
    "self_attn.v_proj", "self_attn.o_proj", "post_attention_layernorm",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
constexpr int kEmbedTokens = 0, kEmbedPositions = 1, kFirstBlock = 2;
// A block's linear layers, in LinearLayers order.
constexpr BlockWeight kProjections[] = {kQ, kK, kV, kO, kGate, kUp, kDown};

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& gain) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + 1e-5) * gain;
}

class Transformer : public Architecture {
 public:
  explicit Transformer(const ModelConfig& c) : c_(c) {}

  int Block(int layer, BlockWeight w) const { return kFirstBlock + layer * kPerBlock + w; }
  // The index of block `layer`'s projection `w` in LinearLayers order.
  static int Linear(int layer, BlockWeight w) {
    const int k =
        std::find(std::begin(kProjections), std::end(kProjections), w) - std::begin(kProjections);
    return layer * static_cast<int>(std::size(kProjections)) + k;
  }
  int FinalNorm() const { return kFirstBlock + c_.layers * kPerBlock; }
  int Head() const { return FinalNorm() + 1; }

  std::vector<TensorSpec> BaseSpecs() const override {
    const int64_t d = c_.embed, h = c_.hidden;
    std::vector<TensorSpec> s = {{"model.embed_tokens.weight", DType::kF32, {kVocab, d}},
                                 {"model.embed_positions.weight", DType::kF32, {c_.context, d}}};
    for (int l = 0; l < c_.layers; ++l) {
      const std::vector<std::vector<int64_t>> shapes = {{d}, {d, d}, {d, d}, {d, d}, {d, d},
                                                        {d}, {h, d}, {h, d}, {d, h}};
      for (int w = 0; w < kPerBlock; ++w) {
        s.push_back({absl::StrCat("model.layers.", l, ".", kBlockNames[w], ".weight"), DType::kF32,
                     shapes[w]});
      }
    }
    s.push_back({"model.norm.weight", DType::kF32, {d}});
    s.push_back({"lm_head.weight", DType::kF32, {kVocab, d}});
    return s;
  }

  std::vector<LinearLayer> LinearLayers() const override {
    std::vector<LinearLayer> out;
    for (int l = 0; l < c_.layers; ++l) {
      for (BlockWeight w : kProjections) {
        const bool mlp = w == kGate || w == kUp || w == kDown;
        out.push_back({absl::StrCat("model.layers.", l, ".", kBlockNames[w]), Block(l, w),
                       !mlp || c_.lora_mlp});
      }
    }
    return out;
  }

  std::vector<std::string> TargetModules() const override {
    std::vector<std::string> t = {"q_proj", "k_proj", "v_proj", "o_proj"};
    if (c_.lora_mlp) t.insert(t.end(), {"gate_proj", "up_proj", "down_proj"});
    return t;
  }

  std::string DescribeLayers() const override {
    return absl::StrCat(
        "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj of model.layers.0-",
        c_.layers - 1);
  }

  std::vector<torch::Tensor> InitBase(Rng& rng) const override {
    std::vector<torch::Tensor> w;
    for (const TensorSpec& s : BaseSpecs()) {
      if (s.shape.size() == 1) {
        w.push_back(torch::ones(s.shape, torch::kFloat32));  // norm gains
        continue;
      }
      const size_t i = w.size();
      double bound = 1.0 / std::sqrt(static_cast<double>(s.shape[1]));
      if (i == kEmbedTokens) bound = 1.0;
      if (i == kEmbedPositions) bound = 0.2;
      // GPT-2's scaling of the projections that write into the residual stream.
      const int in_block = (static_cast<int>(i) - kFirstBlock) % kPerBlock;
      if (i >= kFirstBlock && static_cast<int>(i) < FinalNorm() &&
          (in_block == kO || in_block == kDown)) {
        bound /= std::sqrt(2.0 * c_.layers);
      }
      w.push_back(UniformTensor(rng, s.shape, bound));
    }
    return w;
  }

  TokenData::Impl Tokenize(const Segments& segments) const override {
    const int64_t t_len = c_.context;
    std::vector<int64_t> flat_in, flat_tgt, starts, tile_in, tile_tgt;
    int64_t positions = 0;
    for (const std::string& s : segments) {
      if (s.empty()) continue;
      const int64_t base = static_cast<int64_t>(flat_in.size());
      const int64_t n = static_cast<int64_t>(s.size());
      flat_in.push_back(0);  // what the first byte is predicted from
      for (int64_t j = 0; j < n; ++j) {
        const int64_t b = static_cast<unsigned char>(s[j]);
        if (j + 1 < n) flat_in.push_back(b);
        flat_tgt.push_back(b);
        starts.push_back(base + j);
      }
      flat_in.resize(base + n + t_len, 0);
      flat_tgt.resize(base + n + t_len, kNoTarget);
      for (int64_t j = 0; j < n; j += t_len) {
        tile_in.insert(tile_in.end(), flat_in.begin() + base + j,
                       flat_in.begin() + base + j + t_len);
        tile_tgt.insert(tile_tgt.end(), flat_tgt.begin() + base + j,
                        flat_tgt.begin() + base + j + t_len);
      }
      positions += n;
    }
    auto tensor = [](std::vector<int64_t>& v, std::vector<int64_t> shape) {
      return torch::from_blob(v.data(), shape, torch::kInt64).clone();
    };
    const int64_t tiles = static_cast<int64_t>(tile_in.size()) / t_len;
    TokenData::Impl d;
    d.inputs = tensor(tile_in, {tiles, t_len});
    d.targets = tensor(tile_tgt, {tiles, t_len});
    d.padded = true;
    d.positions = positions;
    d.flat_inputs = tensor(flat_in, {static_cast<int64_t>(flat_in.size())});
    d.flat_targets = tensor(flat_tgt, {static_cast<int64_t>(flat_tgt.size())});
    d.starts = tensor(starts, {static_cast<int64_t>(starts.size())});
    return d;
  }

  torch::Tensor Forward(const std::vector<torch::Tensor>& w, const torch::Tensor& x,
                        LinearTape* tape) const override {
    const int64_t batch = x.size(0), t_len = x.size(1), d = c_.embed, heads = c_.heads;
    const int64_t dh = d / heads;
    torch::Tensor h = w[kEmbedTokens].index_select(0, x.reshape({-1})).reshape({batch, t_len, d}) +
                      w[kEmbedPositions].narrow(0, 0, t_len);
    // True above the diagonal: a position never attends to a later one.
    const torch::Tensor future = torch::ones({t_len, t_len}, torch::kBool).triu(1);
    const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
    const torch::Tensor none;
    for (int l = 0; l < c_.layers; ++l) {
      auto linear = [&](const torch::Tensor& in, BlockWeight proj) {
        return ApplyLinear(in, w[Block(l, proj)], none, Linear(l, proj), tape);
      };
      const torch::Tensor a = RmsNorm(h, w[Block(l, kInNorm)]);
      auto split_heads = [&](BlockWeight proj) {
        return linear(a, proj).reshape({batch, t_len, heads, dh}).transpose(1, 2);
      };
      const torch::Tensor q = split_heads(kQ), k = split_heads(kK), v = split_heads(kV);
      const torch::Tensor att =
          torch::softmax(torch::matmul(q, k.transpose(-2, -1))
                             .mul(scale)
                             .masked_fill(future, -std::numeric_limits<float>::infinity()),
                         -1);
      const torch::Tensor o = torch::matmul(att, v).transpose(1, 2).reshape({batch, t_len, d});
      h = h + linear(o, kO);
      const torch::Tensor m = RmsNorm(h, w[Block(l, kPostNorm)]);
      const torch::Tensor gated = torch::silu(linear(m, kGate)) * linear(m, kUp);
      h = h + linear(gated, kDown);
    }
    // The head carries no LoRA (not a LinearLayer): a plain matmul.
    return torch::matmul(RmsNorm(h, w[FinalNorm()]), w[Head()].t());
  }

  std::pair<torch::Tensor, torch::Tensor> Batch(const TokenData::Impl& d, Rng& rng,
                                                int batch) const override {
    const int64_t windows = (static_cast<int64_t>(batch) + c_.context - 1) / c_.context;
    const torch::Tensor start =
        d.starts.index_select(0, RandomIndices(rng, windows, d.starts.size(0)));
    const torch::Tensor at =
        (start.unsqueeze(1) + torch::arange(c_.context, torch::kInt64)).reshape({-1});
    return {d.flat_inputs.index_select(0, at).reshape({windows, c_.context}),
            d.flat_targets.index_select(0, at).reshape({windows, c_.context})};
  }

  int64_t ScoreRows() const override { return std::max<int64_t>(1, 4096 / c_.context); }

 private:
  ModelConfig c_;
};

}  // namespace

std::unique_ptr<Architecture> MakeTransformer(const ModelConfig& config) {
  return std::make_unique<Transformer>(config);
}

}  // namespace wxp::legal::internal
