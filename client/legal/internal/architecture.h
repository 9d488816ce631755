// The seam between LegalModel (model.cc: caching, LoRA, scoring, training loops) and the
// network it runs (mlp.cc, transformer.cc). Includes LibTorch: only the model library's own
// translation units include this header.
#ifndef WXP_CLIENT_LEGAL_INTERNAL_ARCHITECTURE_H_
#define WXP_CLIENT_LEGAL_INTERNAL_ARCHITECTURE_H_

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "client/legal/corpus.h"
#include "client/legal/model.h"
#include "common/dp_sgd.h"
#include "common/rng.h"
#include "common/schema.h"

namespace wxp::legal {

// Text as a network consumes it. `inputs` and `targets` are rows for scoring that cover
// every position of the text exactly once, in text order; a target of kNoTarget (the
// transformer's padding) is not a position. Training batches are drawn by the architecture
// (Architecture::Batch), possibly from other fields.
struct TokenData::Impl {
  torch::Tensor inputs;   // int64, [rows, ...]
  torch::Tensor targets;  // int64, [rows] or [rows, T]
  bool padded = false;    // whether targets may hold kNoTarget
  int64_t positions = 0;
  // Transformer only: each segment as [0, bytes...] followed by `context` pad entries (0 as
  // input, kNoTarget as target), so any window start inside a segment reads
  // flat_inputs/flat_targets[start, start + context) without crossing into the next one.
  torch::Tensor flat_inputs, flat_targets;
  torch::Tensor starts;  // int64: every window start with at least one real target
};

namespace internal {

inline constexpr int kVocab = 256;
inline constexpr int64_t kNoTarget = -100;  // nll_loss's default ignore_index

// A counter-based generator (splitmix64): reproducible everywhere, unlike torch's global RNG
// whose stream other code in the process may advance.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double Uniform() { return (Next() >> 11) * (1.0 / 9007199254740992.0); }
  int64_t Below(int64_t n) { return static_cast<int64_t>(Next() % static_cast<uint64_t>(n)); }

 private:
  uint64_t state_;
};

// U(±bound) values of `shape`, drawn in order from `rng`.
torch::Tensor UniformTensor(Rng& rng, std::vector<int64_t> shape, double bound);
// `count` indices in [0, below), drawn in order from `rng`.
torch::Tensor RandomIndices(Rng& rng, int64_t count, int64_t below);

// Mean next-byte cross-entropy of `logits` [..., 256] against `targets` (kNoTarget ignored).
torch::Tensor Loss(const torch::Tensor& logits, const torch::Tensor& targets);

// What a forward pass applied at each linear layer a LoRA may sit on, for per-example
// gradients (LoraPerExampleGradients): every application's input [rows, ..., in] and output
// [rows, ..., out] (bias included), in the order applied.
struct LinearTape {
  struct Entry {
    int layer;  // in Architecture::LinearLayers order
    torch::Tensor input, output;
  };
  std::vector<Entry> entries;
};

// x · wᵀ (+ bias, when defined): linear layer `layer` (LinearLayers order) of a forward
// pass, recorded on `tape` when there is one. 2-D x with a bias is one addmm.
torch::Tensor ApplyLinear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias,
                          int layer, LinearTape* tape);

// Per-example gradients for DpSgdStep: row r of the result ([rows, dim], F32) is the gradient
// of example `rows[r]`'s mean loss with respect to every trainable parameter, flattened and
// concatenated in the order DpSgdStep's `params` list them.
using PerExampleGradients = std::function<torch::Tensor(const torch::Tensor& rows)>;

// One DP-SGD step (common/dp_sgd.h): Poisson-samples rows of `examples` with
// dp.sample_rate from `sampler`, takes their gradients from `per_example` (at most `chunk`
// rows a call), clips each over all parameters together, sums, adds noise from `noise` and
// writes the result, divided by the expected batch, into every param's grad. Returns the
// number of rows sampled. Throws what LibTorch throws; a per-example gradient of the wrong
// shape or with a non-finite value throws std::runtime_error.
int64_t DpSgdStep(int64_t examples, const dp::DpSgdParams& dp,
                  const PerExampleGradients& per_example, int64_t chunk,
                  const std::vector<torch::Tensor>& params, CounterRng& sampler, CounterRng& noise);

// A linear layer a LoRA can sit on: its weight [out, in] is base tensor `base_tensor`.
struct LinearLayer {
  std::string module;  // the PEFT module path below "base_model.model."
  int base_tensor = 0;
  bool own = false;  // whether the model's own adapters train it
};

class Architecture {
 public:
  virtual ~Architecture() = default;
  // The base weights (F32), in file order.
  virtual std::vector<TensorSpec> BaseSpecs() const = 0;
  // Every linear layer a LoRA may sit on, in LoraPlacement::modules order; `own` marks those
  // the model's own adapters train (their schema lists them sorted by name, as PEFT's files
  // do).
  virtual std::vector<LinearLayer> LinearLayers() const = 0;
  // target_modules of the own adapters' config.
  virtual std::vector<std::string> TargetModules() const = 0;
  // How PlaceLora's refusal names the layers ("fc1, fc2 or head").
  virtual std::string DescribeLayers() const = 0;
  // Fresh base weights in BaseSpecs order, drawn from `rng`.
  virtual std::vector<torch::Tensor> InitBase(Rng& rng) const = 0;
  virtual TokenData::Impl Tokenize(const Segments& segments) const = 0;
  // Logits [rows, ..., 256] of `weights` (BaseSpecs order, any LoRA already added) on
  // `inputs` rows, every linear layer applied with ApplyLinear (recorded on `tape`, if
  // any). Rows never interact: a row's logits depend on its own inputs only.
  virtual torch::Tensor Forward(const std::vector<torch::Tensor>& weights,
                                const torch::Tensor& inputs, LinearTape* tape) const = 0;
  // A training batch of about `batch` examples from `data`: {inputs, targets}.
  virtual std::pair<torch::Tensor, torch::Tensor> Batch(const TokenData::Impl& data, Rng& rng,
                                                        int batch) const = 0;
  // Scoring rows per forward pass (bounds the logits buffer).
  virtual int64_t ScoreRows() const = 0;
};

// A trainable LoRA on linear layer `layer`: the layer's weight is W + scale · b · a.
struct TrainableLora {
  int layer;           // in Architecture::LinearLayers order
  torch::Tensor a, b;  // [r, in], [out, r]
  double scale;
};

// Per-example gradients (PerExampleGradients' layout: per LoRA, a then b) of each row's
// mean loss over its real targets, for `inputs`/`targets` rows under `merged` (the base with
// every LoRA in `lora` added), from one batched forward and backward pass: the gradient of
// layer output y at row i is that row's alone (rows never interact), so
//   d loss_i / d a = scale · Σ_t (bᵀ g_it) x_itᵀ,   d loss_i / d b = scale · Σ_t g_it (a x_it)ᵀ
// over the row's positions t (the per-sample trick of Goodfellow, "Efficient Per-Example
// Gradient Computations", 2015, as Opacus applies it to linear layers). Throws
// std::runtime_error if a LoRA's layer was not applied.
torch::Tensor LoraPerExampleGradients(const Architecture& arch, std::vector<torch::Tensor> merged,
                                      const std::vector<TrainableLora>& lora,
                                      const torch::Tensor& inputs, const torch::Tensor& targets);

std::unique_ptr<Architecture> MakeMlp(const ModelConfig& config);
std::unique_ptr<Architecture> MakeTransformer(const ModelConfig& config);

}  // namespace internal
}  // namespace wxp::legal

#endif  // WXP_CLIENT_LEGAL_INTERNAL_ARCHITECTURE_H_
