// The only translation unit of the legal evaluator that includes LibTorch.
#include "client/legal/model.h"

#include <sys/stat.h>
#include <torch/optim/adam.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/legal/internal/placement.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "nlohmann/json.hpp"

namespace wxp::legal {
namespace {

constexpr int kVocab = 256;
using internal::CheckLora;
using internal::kLoraModules;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

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

struct BaseWeights {
  torch::Tensor embed, w1, b1, w2, b2, wh, bh;
  std::vector<torch::Tensor*> All() { return {&embed, &w1, &b1, &w2, &b2, &wh, &bh}; }
};
const char* const kBaseNames[] = {"embed.weight", "fc1.weight",  "fc1.bias", "fc2.weight",
                                  "fc2.bias",     "head.weight", "head.bias"};

// LoRA factors per target module, in kLoraModules order: {A [r, in], B [out, r]}; both
// undefined for a module an adapter leaves alone.
using LoraFactors = std::vector<std::pair<torch::Tensor, torch::Tensor>>;

// One adapter's factors and the factor applied to each module's B·A.
struct ScaledFactors {
  LoraFactors factors;
  std::array<double, 3> scale;
};

torch::Tensor Forward(const BaseWeights& w, const LoraFactors* lora, double scaling,
                      const torch::Tensor& ctx) {
  torch::Tensor w1 = w.w1, w2 = w.w2, wh = w.wh;
  if (lora != nullptr) {
    // Forming W + s·B·A costs one [out, r] x [r, in] product per layer per call, far less
    // than applying the factors to every row of a batch.
    w1 = w1 + scaling * (*lora)[0].second.mm((*lora)[0].first);
    w2 = w2 + scaling * (*lora)[1].second.mm((*lora)[1].first);
    wh = wh + scaling * (*lora)[2].second.mm((*lora)[2].first);
  }
  torch::Tensor x = w.embed.index_select(0, ctx.reshape({-1})).reshape({ctx.size(0), -1});
  torch::Tensor h1 = torch::relu(torch::addmm(w.b1, x, w1.t()));
  torch::Tensor h2 = h1 + torch::relu(torch::addmm(w.b2, h1, w2.t()));
  return torch::addmm(w.bh, h2, wh.t());
}

torch::Tensor Loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::nll_loss(torch::log_softmax(logits, 1), targets);
}

std::vector<TensorSpec> BaseSpecs(const ModelConfig& c) {
  const int64_t in = static_cast<int64_t>(c.context) * c.embed;
  return {{kBaseNames[0], DType::kF32, {kVocab, c.embed}},
          {kBaseNames[1], DType::kF32, {c.hidden, in}},
          {kBaseNames[2], DType::kF32, {c.hidden}},
          {kBaseNames[3], DType::kF32, {c.hidden, c.hidden}},
          {kBaseNames[4], DType::kF32, {c.hidden}},
          {kBaseNames[5], DType::kF32, {kVocab, c.hidden}},
          {kBaseNames[6], DType::kF32, {kVocab}}};
}

std::vector<TensorSpec> LoraSpecs(const ModelConfig& c) {
  const int64_t in = static_cast<int64_t>(c.context) * c.embed;
  const int64_t r = c.lora_rank;
  const std::vector<std::pair<int64_t, int64_t>> in_out = {
      {in, c.hidden}, {c.hidden, c.hidden}, {c.hidden, kVocab}};
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 3; ++i) {
    const std::string prefix = absl::StrCat("base_model.model.", kLoraModules[i]);
    specs.push_back({prefix + ".lora_A.weight", DType::kF32, {r, in_out[i].first}});
    specs.push_back({prefix + ".lora_B.weight", DType::kF32, {in_out[i].second, r}});
  }
  return specs;
}

absl::Status CheckConfig(const ModelConfig& c) {
  if (c.context < 1 || c.embed < 1 || c.hidden < 1 || c.lora_rank < 1 || !(c.lora_alpha > 0) ||
      c.pretrain_steps < 0 || c.pretrain_batch < 1 || !(c.pretrain_lr > 0) || c.threads < 1) {
    return absl::InvalidArgumentError(
        "legal model config: sizes, steps, batch, lr, "
        "lora_alpha and threads must be positive");
  }
  return absl::OkStatus();
}

}  // namespace

std::string ModelConfig::Canonical() const {
  return absl::StrFormat(
      "wxp-legal-lm-v1 context=%d embed=%d hidden=%d lora_rank=%d lora_alpha=%.17g "
      "pretrain_steps=%d pretrain_batch=%d pretrain_lr=%.17g seed=%d",
      context, embed, hidden, lora_rank, lora_alpha, pretrain_steps, pretrain_batch, pretrain_lr,
      seed);
}

struct TokenData::Impl {
  torch::Tensor ctx;      // [N, context] int64
  torch::Tensor targets;  // [N] int64
};
TokenData::TokenData(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TokenData::TokenData(TokenData&&) noexcept = default;
TokenData& TokenData::operator=(TokenData&&) noexcept = default;
TokenData::~TokenData() = default;
int64_t TokenData::positions() const { return impl_->targets.size(0); }

struct LegalModel::Impl {
  ModelConfig config;
  Schema lora_schema;
  LoraPlacement own;
  BaseWeights base;
  std::string base_path;
  std::string config_hash;
  bool pretrained_now = false;
  double pretrain_seconds = 0;

  double scaling() const { return config.lora_alpha / config.lora_rank; }

  TokenData Tokenize(const Segments& segments) const {
    const int k = config.context;
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
    auto impl = std::make_unique<TokenData::Impl>();
    impl->ctx = torch::from_blob(ctx.data(), {n, k}, torch::kInt64).clone();
    impl->targets = torch::from_blob(targets.data(), {n}, torch::kInt64).clone();
    return TokenData(std::move(impl));
  }

  // base + Σ scale·B·A over the adapters. With one adapter the first sum is the single
  // expression W + s·B·A the model has always computed, so its own adapters score the same
  // bit for bit.
  BaseWeights Merged(const std::vector<ScaledFactors>& loras) const {
    BaseWeights merged = base;
    torch::Tensor* targets[3] = {&merged.w1, &merged.w2, &merged.wh};
    for (const ScaledFactors& l : loras) {
      for (int i = 0; i < 3; ++i) {
        const auto& [a, b] = l.factors[i];
        if (a.defined()) *targets[i] = *targets[i] + l.scale[i] * b.mm(a);
      }
    }
    return merged;
  }

  // `part_ends` as LegalModel::Score documents it (checked by the caller); empty: no parts.
  LmScores Score(const std::vector<ScaledFactors>& loras, const TokenData::Impl& data,
                 absl::Span<const int64_t> part_ends = {}) const {
    torch::NoGradGuard no_grad;
    const int64_t n = data.targets.size(0);
    constexpr int64_t kRows = 4096;  // bounds the logits buffer
    double nll = 0;
    int64_t correct = 0;
    std::vector<int64_t> part_correct(part_ends.size(), 0);
    size_t part = 0;  // the part holding position `start`
    const BaseWeights merged = Merged(loras);
    for (int64_t start = 0; start < n; start += kRows) {
      const int64_t len = std::min(kRows, n - start);
      torch::Tensor logits = Forward(merged, nullptr, 0, data.ctx.narrow(0, start, len));
      torch::Tensor target = data.targets.narrow(0, start, len);
      torch::Tensor logp = torch::log_softmax(logits, 1);
      nll -= logp.gather(1, target.unsqueeze(1)).sum().item<double>();
      torch::Tensor hit = logits.argmax(1).eq(target);
      correct += hit.sum().item<int64_t>();
      // Integer counts: the parts' sums are exact, whatever the chunking.
      for (int64_t at = start; at < start + len && part < part_ends.size(); ++part) {
        const int64_t end = std::min(part_ends[part], start + len);
        if (end > at)
          part_correct[part] += hit.narrow(0, at - start, end - at).sum().item<int64_t>();
        at = std::max(at, end);
        if (end < part_ends[part]) break;  // the part goes on in the next chunk
      }
    }
    LmScores s;
    s.part_correct = std::move(part_correct);
    s.positions = n;
    s.char_acc = n > 0 ? static_cast<double>(correct) / n : 0;
    s.loss = n > 0 ? nll / n : 0;
    return s;
  }

  void Pretrain(const TokenData::Impl& data) {
    const ModelConfig& c = config;
    Rng rng(c.seed);
    const int64_t in = static_cast<int64_t>(c.context) * c.embed;
    base.embed = UniformTensor(rng, {kVocab, c.embed}, 1.0);
    base.w1 = UniformTensor(rng, {c.hidden, in}, 1.0 / std::sqrt(in));
    base.b1 = UniformTensor(rng, {c.hidden}, 1.0 / std::sqrt(in));
    base.w2 = UniformTensor(rng, {c.hidden, c.hidden}, 1.0 / std::sqrt(c.hidden));
    base.b2 = UniformTensor(rng, {c.hidden}, 1.0 / std::sqrt(c.hidden));
    base.wh = UniformTensor(rng, {kVocab, c.hidden}, 1.0 / std::sqrt(c.hidden));
    base.bh = UniformTensor(rng, {kVocab}, 1.0 / std::sqrt(c.hidden));
    std::vector<torch::Tensor> params;
    for (torch::Tensor* t : base.All()) params.push_back(t->set_requires_grad(true));
    torch::optim::Adam opt(params, torch::optim::AdamOptions(c.pretrain_lr));
    const int64_t n = data.targets.size(0);
    for (int step = 0; step < c.pretrain_steps; ++step) {
      // Linear decay to a tenth: a short run ends settled rather than noisy.
      const double lr = c.pretrain_lr * (1.0 - 0.9 * step / std::max(1, c.pretrain_steps));
      static_cast<torch::optim::AdamOptions&>(opt.param_groups()[0].options()).lr(lr);
      torch::Tensor idx = RandomIndices(rng, c.pretrain_batch, n);
      opt.zero_grad();
      torch::Tensor loss = Loss(Forward(base, nullptr, 0, data.ctx.index_select(0, idx)),
                                data.targets.index_select(0, idx));
      loss.backward();
      opt.step();
    }
    for (torch::Tensor* t : base.All()) *t = t->detach().set_requires_grad(false);
  }

  Adapter BaseAsAdapter() const {
    Adapter a;
    a.schema = Schema(BaseSpecs(config));
    a.values.reserve(a.schema.total_params());
    BaseWeights w = base;
    for (torch::Tensor* t : w.All()) {
      torch::Tensor flat = t->contiguous().reshape({-1});
      a.values.insert(a.values.end(), flat.data_ptr<float>(),
                      flat.data_ptr<float>() + flat.numel());
    }
    a.metadata = {{"format", "pt"},
                  {"wxp_legal_config", config.Canonical()},
                  {"wxp_legal_config_hash", config_hash}};
    return a;
  }

  absl::Status LoadBase(const Adapter& a) {
    const Schema expected(BaseSpecs(config));
    if (absl::Status s = a.schema.CheckSame(expected); !s.ok()) return s;
    bool hash_ok = false;
    for (const auto& [k, v] : a.metadata)
      hash_ok |= (k == "wxp_legal_config_hash" && v == config_hash);
    if (!hash_ok) return absl::InvalidArgumentError("config hash mismatch");
    std::vector<torch::Tensor*> all = base.All();
    for (size_t i = 0; i < all.size(); ++i) {
      const TensorSpec& spec = expected.tensor(i);
      *all[i] = torch::from_blob(const_cast<float*>(a.values.data()) + expected.offset(i),
                                 spec.shape, torch::kFloat32)
                    .clone();
    }
    return absl::OkStatus();
  }

  FineTuneResult FineTune(const TokenData::Impl& d, const TokenData::Impl& fit,
                          const TokenData::Impl* held, const FineTuneOptions& options) const;

  ScaledFactors Factors(const LoraPlacement& p, absl::Span<const float> flat, double weight) const {
    ScaledFactors f;
    f.factors.resize(3);
    for (int i = 0; i < 3; ++i) {
      const LoraPlacement::Module& m = p.modules[i];
      f.scale[i] = weight * m.scaling;
      if (m.a_tensor < 0) continue;
      torch::Tensor ab[2];
      for (int j = 0; j < 2; ++j) {
        const size_t t = j == 0 ? m.a_tensor : m.b_tensor;
        ab[j] = torch::from_blob(const_cast<float*>(flat.data()) + p.schema.offset(t),
                                 p.schema.tensor(t).shape, torch::kFloat32)
                    .clone();
      }
      f.factors[i] = {ab[0], ab[1]};
    }
    return f;
  }
};

LegalModel::LegalModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LegalModel::~LegalModel() = default;
const ModelConfig& LegalModel::config() const { return impl_->config; }
const LoraPlacement& LegalModel::own_placement() const { return impl_->own; }
const Schema& LegalModel::lora_schema() const { return impl_->lora_schema; }
const std::string& LegalModel::base_path() const { return impl_->base_path; }
bool LegalModel::pretrained_now() const { return impl_->pretrained_now; }
double LegalModel::pretrain_seconds() const { return impl_->pretrain_seconds; }

std::string LegalModel::LoraConfigJson() const {
  nlohmann::json j;  // std::map-backed: keys sorted, as PEFT writes them
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["r"] = impl_->config.lora_rank;
  j["lora_alpha"] = impl_->config.lora_alpha;
  j["lora_dropout"] = 0.0;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["target_modules"] = {kLoraModules[0], kLoraModules[1], kLoraModules[2]};
  j["base_model_name_or_path"] = "wxp-legal-byte-lm-" + impl_->config_hash.substr(0, 16);
  return j.dump(2);
}

absl::StatusOr<std::shared_ptr<const LegalModel>> LegalModel::LoadOrPretrain(
    const ModelConfig& config, const Corpus& corpus, const std::string& work_dir,
    std::ostream* log) {
  if (absl::Status s = CheckConfig(config); !s.ok()) return s;
  try {
    torch::set_num_threads(config.threads);
    auto impl = std::make_unique<Impl>();
    impl->config = config;
    impl->lora_schema = Schema(LoraSpecs(config));
    impl->own.schema = impl->lora_schema;
    for (int i = 0; i < 3; ++i) impl->own.modules[i] = {2 * i, 2 * i + 1, impl->scaling()};
    impl->config_hash = Sha256Hex(config.Canonical() + "\n" + corpus.fingerprint());
    impl->base_path = absl::StrCat(work_dir.empty() ? "." : work_dir, "/legal-base-",
                                   impl->config_hash.substr(0, 16), ".safetensors");
    struct stat st;
    if (stat(impl->base_path.c_str(), &st) == 0) {
      absl::StatusOr<Adapter> cached = LoadAdapter(impl->base_path);
      absl::Status s = cached.ok() ? impl->LoadBase(*cached) : cached.status();
      if (s.ok()) {
        if (log) *log << "legal: loaded cached base " << impl->base_path << "\n";
        return std::shared_ptr<const LegalModel>(new LegalModel(std::move(impl)));
      }
      // A stale or damaged cache is rebuilt rather than trusted.
      if (log) *log << "legal: ignoring cached base " << impl->base_path << ": " << s << "\n";
    }
    absl::StatusOr<Segments> general = corpus.Get(Split::kGeneral);
    if (!general.ok()) return general.status();
    TokenData data = impl->Tokenize(*general);
    if (data.positions() == 0) {
      return absl::InvalidArgumentError("legal corpus: the general split is empty");
    }
    const auto start = std::chrono::steady_clock::now();
    impl->Pretrain(*data.impl_);
    impl->pretrain_seconds = Seconds(start);
    impl->pretrained_now = true;
    if (!work_dir.empty()) {
      if (absl::Status s = MakeDirs(work_dir); !s.ok()) return s;
    }
    if (absl::Status s = SaveSafetensors(impl->BaseAsAdapter(), impl->base_path); !s.ok()) {
      return s;
    }
    if (log) {
      *log << absl::StrFormat("legal: pretrained base (%d steps on %d bytes) in %.1f s -> %s\n",
                              config.pretrain_steps, data.positions(), impl->pretrain_seconds,
                              impl->base_path);
    }
    return std::shared_ptr<const LegalModel>(new LegalModel(std::move(impl)));
  } catch (const std::exception& e) {  // c10::Error derives from std::exception
    return absl::InternalError(absl::StrCat("legal model: libtorch: ", e.what()));
  }
}

absl::StatusOr<TokenData> LegalModel::Tokenize(const Segments& segments) const {
  try {
    return impl_->Tokenize(segments);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("legal model: libtorch: ", e.what()));
  }
}

absl::StatusOr<LoraPlacement> LegalModel::PlaceLora(
    const Schema& schema, const std::optional<std::string>& config_json) const {
  return internal::PlaceLora(impl_->own, impl_->config.lora_rank, schema, config_json);
}

absl::StatusOr<LmScores> LegalModel::Score(absl::Span<const float> lora,
                                           const TokenData& data) const {
  return Score(impl_->own, lora, data);
}

absl::StatusOr<LmScores> LegalModel::Score(const LoraPlacement& placement,
                                           absl::Span<const float> lora,
                                           const TokenData& data) const {
  const int64_t all = data.positions();
  absl::StatusOr<LmScores> s = Score(placement, lora, data, absl::MakeConstSpan(&all, 1));
  if (s.ok()) s->part_correct.clear();
  return s;
}

absl::StatusOr<LmScores> LegalModel::Score(const LoraPlacement& placement,
                                           absl::Span<const float> lora, const TokenData& data,
                                           absl::Span<const int64_t> part_ends) const {
  if (absl::Status s = internal::CheckPartEnds(part_ends, data.positions()); !s.ok()) return s;
  if (!lora.empty()) {
    if (absl::Status s = CheckLora(placement, lora); !s.ok()) return s;
  }
  try {
    if (lora.empty()) return impl_->Score({}, *data.impl_, part_ends);
    return impl_->Score({impl_->Factors(placement, lora, 1.0)}, *data.impl_, part_ends);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("legal model: libtorch: ", e.what()));
  }
}

absl::StatusOr<std::vector<float>> LegalModel::Logits(absl::Span<const PlacedLora> loras,
                                                      const TokenData& data, int64_t rows) const {
  for (const PlacedLora& l : loras) {
    if (l.placement == nullptr) return absl::InvalidArgumentError("legal model: no placement");
    if (absl::Status s = CheckLora(*l.placement, l.values); !s.ok()) return s;
  }
  try {
    torch::NoGradGuard no_grad;
    std::vector<ScaledFactors> scaled;
    for (const PlacedLora& l : loras) {
      scaled.push_back(impl_->Factors(*l.placement, l.values, l.weight));
    }
    const int64_t n = std::min(std::max<int64_t>(rows, 0), data.positions());
    torch::Tensor logits =
        Forward(impl_->Merged(scaled), nullptr, 0, data.impl_->ctx.narrow(0, 0, n)).contiguous();
    return std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("legal model: libtorch: ", e.what()));
  }
}

namespace {

absl::Status CheckFineTune(const FineTuneOptions& options, const LoraPlacement& own) {
  if (options.steps < 1 || options.batch < 1 || !(options.lr > 0)) {
    return absl::InvalidArgumentError("legal fine-tune: steps, batch and lr must be positive");
  }
  if (options.eval_every < 0 ||
      (options.eval_every > 0 && (options.patience < 1 || options.held_out_every < 2))) {
    return absl::InvalidArgumentError(
        "legal fine-tune: eval_every must be >= 0, and with it patience >= 1 and "
        "held_out_every >= 2");
  }
  if (!options.start.empty()) {
    if (absl::Status s = CheckLora(own, options.start); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("legal fine-tune: start: ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

// The one training loop: fits on `fit`, reports losses on `d`, and with `held` (early
// stopping) keeps the best held-out checkpoint. Throws what LibTorch throws.
FineTuneResult LegalModel::Impl::FineTune(const TokenData::Impl& d, const TokenData::Impl& fit,
                                          const TokenData::Impl* held,
                                          const FineTuneOptions& options) const {
  const auto start = std::chrono::steady_clock::now();
  const bool early = held != nullptr;
  FineTuneResult result;
  const double s = scaling();
  LoraFactors f;
  if (options.start.empty()) {
    // PEFT's initialisation: A ~ U(±1/sqrt(in)) (kaiming-uniform with a = sqrt(5)), B = 0,
    // so the untrained adapter is the base exactly.
    if (options.report_losses) result.initial_loss = Score({}, d).loss;
    Rng init(options.init_seed);
    for (int i = 0; i < 3; ++i) {
      const std::vector<int64_t>& a_shape = lora_schema.tensor(2 * i).shape;
      const std::vector<int64_t>& b_shape = lora_schema.tensor(2 * i + 1).shape;
      f.push_back({UniformTensor(init, a_shape, 1.0 / std::sqrt(static_cast<double>(a_shape[1]))),
                   torch::zeros(b_shape, torch::kFloat32)});
    }
  } else {
    f = Factors(own, options.start, 1.0).factors;
    if (options.report_losses) result.initial_loss = Score({ScaledFactors{f, {s, s, s}}}, d).loss;
  }
  std::vector<torch::Tensor> params;
  for (auto& [a, b] : f) {
    params.push_back(a.set_requires_grad(true));
    params.push_back(b.set_requires_grad(true));
  }
  auto snapshot = [&f] {
    LoraFactors copy;
    for (auto& [a, b] : f) copy.push_back({a.detach().clone(), b.detach().clone()});
    return copy;
  };
  LoraFactors best = snapshot();
  double best_loss = 0;
  int since_best = 0;
  // Scores the held-out part at `step`; true when training should stop.
  auto evaluate = [&](int step) {
    const double loss = Score({ScaledFactors{snapshot(), {s, s, s}}}, *held).loss;
    result.held_out_curve.push_back({step, loss});
    if (step == 0 || loss < best_loss) {
      best_loss = loss, best = snapshot(), result.best_step = step, since_best = 0;
      return false;
    }
    return ++since_best >= options.patience;
  };
  if (early) evaluate(0);
  torch::optim::Adam opt(params, torch::optim::AdamOptions(options.lr));
  Rng order(options.seed);
  const int64_t fit_n = fit.targets.size(0);
  for (int step = 1; step <= options.steps; ++step) {
    torch::Tensor idx = RandomIndices(order, options.batch, fit_n);
    opt.zero_grad();
    torch::Tensor loss =
        Loss(Forward(base, &f, s, fit.ctx.index_select(0, idx)), fit.targets.index_select(0, idx));
    loss.backward();
    opt.step();
    result.steps_run = step;
    if (early && step % options.eval_every == 0 && evaluate(step)) break;
  }
  if (early) {
    if (result.steps_run % options.eval_every != 0) evaluate(result.steps_run);
    f = std::move(best);
  } else {
    f = snapshot();
  }
  result.lora.reserve(lora_schema.total_params());
  for (auto& [a, b] : f) {
    for (torch::Tensor t : {a, b}) {
      torch::Tensor flat = t.contiguous().reshape({-1});
      result.lora.insert(result.lora.end(), flat.data_ptr<float>(),
                         flat.data_ptr<float>() + flat.numel());
    }
  }
  if (options.report_losses) result.final_loss = Score({ScaledFactors{f, {s, s, s}}}, d).loss;
  result.seconds = Seconds(start);
  return result;
}

absl::StatusOr<FineTuneResult> LegalModel::FineTune(const Segments& train,
                                                    const FineTuneOptions& options) const {
  if (absl::Status s = CheckFineTune(options, impl_->own); !s.ok()) return s;
  try {
    TokenData data = impl_->Tokenize(train);
    if (data.positions() == 0) {
      return absl::InvalidArgumentError("legal fine-tune: the shard's train split is empty");
    }
    if (options.eval_every == 0) return impl_->FineTune(*data.impl_, *data.impl_, nullptr, options);
    // With early stopping the firm fits on part of its text and watches the rest.
    HeldOutSplit parts = SplitOffHeldOut(train, options.held_out_every);
    TokenData fit = impl_->Tokenize(parts.fit), held = impl_->Tokenize(parts.held_out);
    if (fit.positions() == 0 || held.positions() == 0) {
      return absl::InvalidArgumentError(
          "legal fine-tune: the train split is too short to hold a part out");
    }
    return impl_->FineTune(*data.impl_, *fit.impl_, held.impl_.get(), options);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("legal model: libtorch: ", e.what()));
  }
}

absl::StatusOr<FineTuneResult> LegalModel::FineTune(const TokenData& train,
                                                    const FineTuneOptions& options) const {
  if (absl::Status s = CheckFineTune(options, impl_->own); !s.ok()) return s;
  if (options.eval_every != 0) {
    return absl::InvalidArgumentError(
        "legal fine-tune: early stopping needs the train text, not tokenized data");
  }
  if (train.positions() == 0) {
    return absl::InvalidArgumentError("legal fine-tune: the train data is empty");
  }
  try {
    return impl_->FineTune(*train.impl_, *train.impl_, nullptr, options);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("legal model: libtorch: ", e.what()));
  }
}

}  // namespace wxp::legal
