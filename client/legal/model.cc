// The architecture-independent LibTorch half of LegalModel: the base cache, LoRA factors and
// their placement, scoring and the training loops, over an internal::Architecture (mlp.cc,
// transformer.cc) that owns the network itself.
#include "client/legal/model.h"

#include <sys/stat.h>
#include <torch/optim/adam.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/legal/internal/architecture.h"
#include "client/legal/internal/config.h"
#include "client/legal/internal/placement.h"
#include "common/adapter.h"
#include "common/file_util.h"

namespace wxp::legal {
namespace {

using internal::CheckLora;
using internal::kNoTarget;
using internal::kVocab;
using internal::Loss;
using internal::Rng;
using internal::UniformTensor;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Base weights in BaseSpecs order.
using Weights = std::vector<torch::Tensor>;

// LoRA factors per linear layer (LinearLayers order): {A [r, in], B [out, r]}; both
// undefined for a layer an adapter leaves alone.
using LoraFactors = std::vector<std::pair<torch::Tensor, torch::Tensor>>;

// One adapter's factors and the factor applied to each layer's B·A.
struct ScaledFactors {
  LoraFactors factors;
  std::vector<double> scale;
};

}  // namespace

TokenData::TokenData(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TokenData::TokenData(TokenData&&) noexcept = default;
TokenData& TokenData::operator=(TokenData&&) noexcept = default;
TokenData::~TokenData() = default;
int64_t TokenData::positions() const { return impl_->positions; }
int64_t TokenData::examples() const { return impl_->inputs.size(0); }

struct LegalModel::Impl {
  ModelConfig config;
  std::unique_ptr<internal::Architecture> arch;
  std::vector<internal::LinearLayer> layers;
  std::vector<internal::LinearShape> shapes;  // per layer, for PlaceLora
  std::vector<int> own_layers;  // the layer of own module j (lora_schema tensors 2j, 2j+1)
  Schema lora_schema;
  LoraPlacement own;
  Weights base;
  std::string base_name;
  std::string base_path;
  std::string config_hash;
  bool pretrained_now = false;
  double pretrain_seconds = 0;

  double scaling() const { return config.lora_alpha / config.lora_rank; }
  std::vector<double> OwnScale() const { return std::vector<double>(layers.size(), scaling()); }

  void Init(const ModelConfig& c) {
    config = c;
    arch =
        c.architecture == Architecture::kMlp ? internal::MakeMlp(c) : internal::MakeTransformer(c);
    layers = arch->LinearLayers();
    const std::vector<TensorSpec> base_specs = arch->BaseSpecs();
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::vector<int64_t>& w = base_specs[layers[i].base_tensor].shape;  // [out, in]
      shapes.push_back({layers[i].module, w[1], w[0]});
      if (layers[i].own) own_layers.push_back(static_cast<int>(i));
    }
    // Sorted by tensor name, as the safetensors library writes PEFT's files.
    std::sort(own_layers.begin(), own_layers.end(), [&](int a, int b) {
      return layers[a].module + ".lora_A" < layers[b].module + ".lora_A";
    });
    std::vector<TensorSpec> specs;
    own.modules.assign(layers.size(), {});
    const int64_t r = c.lora_rank;
    for (size_t j = 0; j < own_layers.size(); ++j) {
      const internal::LinearShape& s = shapes[own_layers[j]];
      const std::string prefix = absl::StrCat("base_model.model.", s.module);
      specs.push_back({prefix + ".lora_A.weight", DType::kF32, {r, s.in}});
      specs.push_back({prefix + ".lora_B.weight", DType::kF32, {s.out, r}});
      own.modules[own_layers[j]] = {static_cast<int>(2 * j), static_cast<int>(2 * j + 1),
                                    scaling()};
    }
    lora_schema = Schema(std::move(specs));
    own.schema = lora_schema;
  }

  TokenData Tokenize(const Segments& segments) const {
    return TokenData(std::make_unique<TokenData::Impl>(arch->Tokenize(segments)));
  }

  // `w` with scale·B·A added to each layer the factors cover. Forming W + s·B·A costs one
  // [out, r] x [r, in] product per layer per call, far less than applying the factors to
  // every row of a batch.
  Weights WithLora(Weights w, const LoraFactors& f, const std::vector<double>& scale) const {
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& [a, b] = f[i];
      torch::Tensor& target = w[layers[i].base_tensor];
      if (a.defined()) target = target + scale[i] * b.mm(a);
    }
    return w;
  }

  // base + Σ scale·B·A over the adapters. With one adapter the sum is the single
  // expression W + s·B·A training computes, so its own adapters score the same bit for bit.
  Weights Merged(const std::vector<ScaledFactors>& loras) const {
    Weights merged = base;
    for (const ScaledFactors& l : loras) merged = WithLora(std::move(merged), l.factors, l.scale);
    return merged;
  }

  // `part_ends` as LegalModel::Score documents it (checked by the caller); empty: no parts.
  LmScores Score(const std::vector<ScaledFactors>& loras, const TokenData::Impl& data,
                 absl::Span<const int64_t> part_ends = {}) const {
    torch::NoGradGuard no_grad;
    const int64_t rows = data.inputs.size(0), chunk = arch->ScoreRows();
    double nll = 0;
    int64_t correct = 0;
    std::vector<int64_t> part_correct(part_ends.size(), 0);
    size_t part = 0;  // the part holding position `pos`
    int64_t pos = 0;  // positions (real targets, in text order) before this chunk
    const Weights merged = Merged(loras);
    for (int64_t start = 0; start < rows; start += chunk) {
      const int64_t len = std::min(chunk, rows - start);
      torch::Tensor logits =
          arch->Forward(merged, data.inputs.narrow(0, start, len), nullptr).reshape({-1, kVocab});
      torch::Tensor target = data.targets.narrow(0, start, len).reshape({-1});
      torch::Tensor logp = torch::log_softmax(logits, 1);
      torch::Tensor hit = logits.argmax(1).eq(target);
      if (data.padded) {
        const torch::Tensor real = target.ne(kNoTarget);
        nll -= logp.gather(1, target.clamp_min(0).unsqueeze(1))
                   .squeeze(1)
                   .masked_select(real)
                   .sum()
                   .item<double>();
        hit = hit.masked_select(real);  // padding is no position
      } else {
        nll -= logp.gather(1, target.unsqueeze(1)).sum().item<double>();
      }
      correct += hit.sum().item<int64_t>();
      // Integer counts: the parts' sums are exact, whatever the chunking.
      const int64_t count = hit.size(0);
      for (int64_t at = pos; at < pos + count && part < part_ends.size(); ++part) {
        const int64_t end = std::min(part_ends[part], pos + count);
        if (end > at) part_correct[part] += hit.narrow(0, at - pos, end - at).sum().item<int64_t>();
        at = std::max(at, end);
        if (end < part_ends[part]) break;  // the part goes on in the next chunk
      }
      pos += count;
    }
    LmScores s;
    s.part_correct = std::move(part_correct);
    s.positions = data.positions;
    s.char_acc = s.positions > 0 ? static_cast<double>(correct) / s.positions : 0;
    s.loss = s.positions > 0 ? nll / s.positions : 0;
    return s;
  }

  // Logits [min(n, positions), 256] of `w` on the first positions of `data`.
  torch::Tensor PositionLogits(const Weights& w, const TokenData::Impl& data, int64_t n) const {
    if (!data.padded) return arch->Forward(w, data.inputs.narrow(0, 0, n), nullptr).contiguous();
    std::vector<torch::Tensor> parts;
    int64_t have = 0;
    const int64_t rows = data.inputs.size(0), chunk = arch->ScoreRows();
    for (int64_t start = 0; start < rows && have < n; start += chunk) {
      const int64_t len = std::min(chunk, rows - start);
      const torch::Tensor real =
          data.targets.narrow(0, start, len).reshape({-1}).ne(kNoTarget).nonzero().squeeze(1);
      parts.push_back(arch->Forward(w, data.inputs.narrow(0, start, len), nullptr)
                          .reshape({-1, kVocab})
                          .index_select(0, real));
      have += parts.back().size(0);
    }
    if (parts.empty()) return torch::zeros({0, kVocab}, torch::kFloat32);
    return torch::cat(parts).narrow(0, 0, n).contiguous();
  }

  void Pretrain(const TokenData::Impl& data) {
    const ModelConfig& c = config;
    Rng rng(c.seed);
    base = arch->InitBase(rng);
    std::vector<torch::Tensor> params;
    for (torch::Tensor& t : base) params.push_back(t.set_requires_grad(true));
    torch::optim::Adam opt(params, torch::optim::AdamOptions(c.pretrain_lr));
    for (int step = 0; step < c.pretrain_steps; ++step) {
      // Linear decay to a tenth: a short run ends settled rather than noisy.
      const double lr = c.pretrain_lr * (1.0 - 0.9 * step / std::max(1, c.pretrain_steps));
      static_cast<torch::optim::AdamOptions&>(opt.param_groups()[0].options()).lr(lr);
      auto [x, y] = arch->Batch(data, rng, c.pretrain_batch);
      opt.zero_grad();
      torch::Tensor loss = Loss(arch->Forward(base, x, nullptr), y);
      loss.backward();
      opt.step();
    }
    for (torch::Tensor& t : base) t = t.detach().set_requires_grad(false);
  }

  Adapter BaseAsAdapter() const {
    Adapter a;
    a.schema = Schema(arch->BaseSpecs());
    a.values.reserve(a.schema.total_params());
    for (const torch::Tensor& t : base) {
      torch::Tensor flat = t.contiguous().reshape({-1});
      a.values.insert(a.values.end(), flat.data_ptr<float>(),
                      flat.data_ptr<float>() + flat.numel());
    }
    a.metadata = {{"format", "pt"},
                  {internal::kConfigKey, config.Canonical()},
                  {internal::kArchitectureKey, ArchitectureName(config.architecture)},
                  {internal::kConfigHashKey, config_hash}};
    return a;
  }

  absl::Status LoadBase(const Adapter& a) {
    const Schema expected(arch->BaseSpecs());
    if (absl::Status s = a.schema.CheckSame(expected); !s.ok()) return s;
    bool hash_ok = false;
    for (const auto& [k, v] : a.metadata) {
      hash_ok |= (k == internal::kConfigHashKey && v == config_hash);
      if (k == internal::kArchitectureKey && v != ArchitectureName(config.architecture)) {
        return absl::InvalidArgumentError(absl::StrCat("architecture '", v, "' in its metadata"));
      }
    }
    if (!hash_ok) return absl::InvalidArgumentError("config hash mismatch");
    base.clear();
    for (size_t i = 0; i < expected.size(); ++i) {
      base.push_back(torch::from_blob(const_cast<float*>(a.values.data()) + expected.offset(i),
                                      expected.tensor(i).shape, torch::kFloat32)
                         .clone());
    }
    return absl::OkStatus();
  }

  FineTuneResult FineTune(const TokenData::Impl& d, const TokenData::Impl& fit,
                          const TokenData::Impl* held, const FineTuneOptions& options) const;

  ScaledFactors Factors(const LoraPlacement& p, absl::Span<const float> flat, double weight) const {
    ScaledFactors f;
    f.factors.resize(layers.size());
    f.scale.resize(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
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
const std::string& LegalModel::base_model_name() const { return impl_->base_name; }
bool LegalModel::pretrained_now() const { return impl_->pretrained_now; }
double LegalModel::pretrain_seconds() const { return impl_->pretrain_seconds; }

std::string LegalModel::LoraConfigJson() const {
  return internal::LoraConfigJson(impl_->config, impl_->base_name, impl_->arch->TargetModules());
}

absl::StatusOr<std::shared_ptr<const LegalModel>> LegalModel::LoadOrPretrain(
    const ModelConfig& config, const Corpus& corpus, const std::string& work_dir,
    std::ostream* log) {
  if (absl::Status s = internal::CheckConfig(config); !s.ok()) return s;
  try {
    torch::set_num_threads(config.threads);
    auto impl = std::make_unique<Impl>();
    impl->Init(config);
    impl->config_hash = internal::ConfigHash(config, corpus.fingerprint());
    impl->base_name = LegalBaseName(config, corpus.fingerprint());
    impl->base_path = LegalBasePath(work_dir, impl->base_name);
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
      *log << absl::StrFormat("legal: pretrained %s base (%d steps on %d bytes) in %.1f s -> %s\n",
                              ArchitectureName(config.architecture), config.pretrain_steps,
                              data.positions(), impl->pretrain_seconds, impl->base_path);
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
  return internal::PlaceLora(impl_->own, impl_->config.lora_rank, impl_->shapes,
                             impl_->arch->DescribeLayers(), schema, config_json);
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
    torch::Tensor logits = impl_->PositionLogits(impl_->Merged(scaled), *data.impl_, n);
    return std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("legal model: libtorch: ", e.what()));
  }
}

absl::StatusOr<LegalModel::PositionLogProbs> LegalModel::LogProbs(const LoraPlacement& placement,
                                                                  absl::Span<const float> lora,
                                                                  const TokenData& data) const {
  if (!lora.empty()) {
    if (absl::Status s = CheckLora(placement, lora); !s.ok()) return s;
  }
  try {
    torch::NoGradGuard no_grad;
    std::vector<ScaledFactors> scaled;
    if (!lora.empty()) scaled.push_back(impl_->Factors(placement, lora, 1.0));
    const TokenData::Impl& d = *data.impl_;
    const torch::Tensor logp =
        torch::log_softmax(impl_->PositionLogits(impl_->Merged(scaled), d, d.positions), 1)
            .contiguous();
    torch::Tensor targets = d.targets.reshape({-1});
    if (d.padded) targets = targets.masked_select(targets.ne(kNoTarget));
    targets = targets.to(torch::kUInt8).contiguous();
    PositionLogProbs out;
    out.log_probs.assign(logp.data_ptr<float>(), logp.data_ptr<float>() + logp.numel());
    out.targets.assign(targets.data_ptr<uint8_t>(), targets.data_ptr<uint8_t>() + targets.numel());
    return out;
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
  if (absl::Status s = options.dp.Validate(); !s.ok()) return s;
  if (options.dp.enabled() && options.eval_every != 0) {
    return absl::InvalidArgumentError("legal fine-tune: DP-SGD runs without early stopping");
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
  const std::vector<double> s = OwnScale();
  LoraFactors f(layers.size());
  if (options.start.empty()) {
    // PEFT's initialisation: A ~ U(±1/sqrt(in)) (kaiming-uniform with a = sqrt(5)), B = 0,
    // so the untrained adapter is the base exactly.
    if (options.report_losses) result.initial_loss = Score({}, d).loss;
    Rng init(options.init_seed);
    for (size_t j = 0; j < own_layers.size(); ++j) {
      const std::vector<int64_t>& a_shape = lora_schema.tensor(2 * j).shape;
      const std::vector<int64_t>& b_shape = lora_schema.tensor(2 * j + 1).shape;
      f[own_layers[j]] = {
          UniformTensor(init, a_shape, 1.0 / std::sqrt(static_cast<double>(a_shape[1]))),
          torch::zeros(b_shape, torch::kFloat32)};
    }
  } else {
    f = Factors(own, options.start, 1.0).factors;
    if (options.report_losses) result.initial_loss = Score({ScaledFactors{f, s}}, d).loss;
  }
  std::vector<torch::Tensor> params;
  for (int i : own_layers) {
    params.push_back(f[i].first.set_requires_grad(true));
    params.push_back(f[i].second.set_requires_grad(true));
  }
  auto snapshot = [&f] {
    LoraFactors copy(f.size());
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i].first.defined())
        copy[i] = {f[i].first.detach().clone(), f[i].second.detach().clone()};
    }
    return copy;
  };
  LoraFactors best = snapshot();
  double best_loss = 0;
  int since_best = 0;
  // Scores the held-out part at `step`; true when training should stop.
  auto evaluate = [&](int step) {
    const double loss = Score({ScaledFactors{snapshot(), s}}, *held).loss;
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
  CounterRng dp_sampler(options.seed, RngStream::kDpSampling);
  CounterRng dp_noise(options.seed, RngStream::kDpNoise);
  for (int step = 1; step <= options.steps; ++step) {
    opt.zero_grad();
    if (options.dp.enabled()) {
      Weights merged;
      std::vector<internal::TrainableLora> lora;
      {
        torch::NoGradGuard no_grad;
        merged = WithLora(base, f, s);
        for (int i : own_layers)
          lora.push_back({i, f[i].first.detach(), f[i].second.detach(), s[i]});
      }
      auto per_example = [&](const torch::Tensor& rows) {
        return internal::LoraPerExampleGradients(*arch, merged, lora,
                                                 fit.inputs.index_select(0, rows),
                                                 fit.targets.index_select(0, rows));
      };
      internal::DpSgdStep(fit.inputs.size(0), options.dp, per_example, arch->ScoreRows(), params,
                          dp_sampler, dp_noise);
    } else {
      auto [x, y] = arch->Batch(fit, order, options.batch);
      Loss(arch->Forward(WithLora(base, f, s), x, nullptr), y).backward();
    }
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
  for (int i : own_layers) {
    for (const torch::Tensor& t : {f[i].first, f[i].second}) {
      torch::Tensor flat = t.contiguous().reshape({-1});
      result.lora.insert(result.lora.end(), flat.data_ptr<float>(),
                         flat.data_ptr<float>() + flat.numel());
    }
  }
  if (options.report_losses) result.final_loss = Score({ScaledFactors{f, s}}, d).loss;
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
