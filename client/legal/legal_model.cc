#include "client/legal/legal_model.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace wxp::legal {
namespace {

constexpr int kIn = kContext * kEmbed;
constexpr double kScale = 2.0;  // lora_alpha / r
constexpr char kConfigKey[] = "wxp_legal_config";

struct Base {
  torch::Tensor emb, w1, b1, w2, b2;
};
struct Lora {
  torch::Tensor a1, b1, a2, b2;
};

// Next-byte windows over a text: context [L, kContext] (zero-padded at the start) and
// target [L].
struct Windows {
  torch::Tensor context, target;
};

Windows MakeWindows(const std::string& text) {
  const int64_t n = static_cast<int64_t>(text.size());
  auto bytes = torch::from_blob(const_cast<char*>(text.data()), {n}, torch::kUInt8)
                   .to(torch::kLong);
  auto padded = torch::cat({torch::zeros({kContext}, torch::kLong), bytes});
  return {padded.unfold(0, kContext, 1).slice(0, 0, n).contiguous(), bytes};
}

torch::Tensor Forward(const Base& w, const Lora* l, const torch::Tensor& ctx) {
  auto x = w.emb.index_select(0, ctx.reshape({-1})).reshape({ctx.size(0), kIn});
  auto h = torch::addmm(w.b1, x, w.w1.t());
  if (l != nullptr) h = h + kScale * x.mm(l->a1.t()).mm(l->b1.t());
  h = torch::tanh(h);
  auto logits = torch::addmm(w.b2, h, w.w2.t());
  if (l != nullptr) logits = logits + kScale * h.mm(l->a2.t()).mm(l->b2.t());
  return logits;
}

std::string ConfigString(const LegalCorpus& corpus, const PretrainOptions& o) {
  return absl::StrCat("legal-v1 context=", kContext, " embed=", kEmbed, " hidden=", kHidden,
                      " steps=", o.steps, " batch=", o.batch, " lr=", o.learning_rate,
                      " seed=", o.seed, " data=", Sha256Hex(corpus.base_mix));
}

std::string BasePath(const std::string& dir) { return dir + "/" + kBaseFile; }

// Catches LibTorch's exceptions at the library edge.
template <typename F>
auto Guard(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (msg.size() > 500) msg = msg.substr(0, 500);
    return absl::InternalError(absl::StrCat(what, ": LibTorch failed: ", msg));
  }
}

absl::StatusOr<Base> LoadBase(const std::string& dir) {
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(BasePath(dir));
  if (!f.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no base model in ", dir, " (run `wxpctl legal pretrain --work_dir ", dir,
        "`): ", f.status().message()));
  }
  std::map<std::string, torch::Tensor> t;
  for (const TensorView& v : f->tensors()) {
    if (v.dtype != DType::kF32) return absl::DataLossError(BasePath(dir) + " is not F32");
    t[v.name] = torch::from_blob(const_cast<char*>(v.data.data()), v.shape, torch::kFloat).clone();
  }
  for (const char* name : {"emb", "fc1.weight", "fc1.bias", "head.weight", "head.bias"}) {
    if (!t.count(name)) return absl::DataLossError(absl::StrCat(BasePath(dir), " lacks ", name));
  }
  return Base{t["emb"], t["fc1.weight"], t["fc1.bias"], t["head.weight"], t["head.bias"]};
}

absl::StatusOr<std::string> BaseConfig(const std::string& dir) {
  WXP_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(BasePath(dir)));
  for (const auto& [k, v] : f.metadata()) {
    if (k == kConfigKey) return v;
  }
  return std::string();
}

Lora LoraFromFlat(absl::Span<const float> p) {
  float* d = const_cast<float*>(p.data());
  const int64_t s1 = kRank * kIn, s2 = kHidden * kRank, s3 = kRank * kHidden;
  return {torch::from_blob(d, {kRank, kIn}, torch::kFloat),
          torch::from_blob(d + s1, {kHidden, kRank}, torch::kFloat),
          torch::from_blob(d + s1 + s2, {kRank, kHidden}, torch::kFloat),
          torch::from_blob(d + s1 + s2 + s3, {256, kRank}, torch::kFloat)};
}

struct Totals {
  double acc = 0, loss = 0;
};

Totals Score(const Base& w, const Lora* l, const Windows& win) {
  torch::NoGradGuard no_grad;
  const int64_t n = win.target.size(0);
  double correct = 0, loss = 0;
  for (int64_t i = 0; i < n; i += 8192) {
    const int64_t m = std::min<int64_t>(8192, n - i);
    auto logits = Forward(w, l, win.context.slice(0, i, i + m));
    auto target = win.target.slice(0, i, i + m);
    correct += logits.argmax(1).eq(target).sum().item<double>();
    loss += torch::nn::functional::cross_entropy(
                logits, target,
                torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                .item<double>();
  }
  return {n > 0 ? correct / n : 0, n > 0 ? loss / n : 0};
}

}  // namespace

Schema LoraSchema() {
  return Schema({{"base_model.model.fc1.lora_A.weight", DType::kF32, {kRank, kIn}},
                 {"base_model.model.fc1.lora_B.weight", DType::kF32, {kHidden, kRank}},
                 {"base_model.model.head.lora_A.weight", DType::kF32, {kRank, kHidden}},
                 {"base_model.model.head.lora_B.weight", DType::kF32, {256, kRank}}});
}

absl::StatusOr<Split> ParseSplit(const std::string& name) {
  if (name.empty() || name == "dev") return Split::kDev;
  if (name == "test") return Split::kTest;
  return absl::InvalidArgumentError(absl::StrCat("split must be dev or test, not '", name, "'"));
}

absl::StatusOr<bool> EnsureBaseModel(const LegalCorpus& corpus, const std::string& base_dir,
                                     const PretrainOptions& o,
                                     const std::function<void(const std::string&)>& log) {
  const std::string config = ConfigString(corpus, o);
  if (absl::StatusOr<std::string> have = BaseConfig(base_dir); have.ok() && *have == config) {
    return false;
  }
  WXP_RETURN_IF_ERROR(MakeDirs(base_dir));
  return Guard("pretraining", [&]() -> absl::StatusOr<bool> {
    at::set_num_threads(o.threads);
    torch::manual_seed(o.seed);
    const absl::Time start = absl::Now();
    Base w{torch::randn({256, kEmbed}) * 0.3,
           torch::randn({kHidden, kIn}) / std::sqrt(double(kIn)), torch::zeros({kHidden}),
           torch::randn({256, kHidden}) / std::sqrt(double(kHidden)), torch::zeros({256})};
    for (torch::Tensor* t : {&w.emb, &w.w1, &w.b1, &w.w2, &w.b2}) t->set_requires_grad(true);
    torch::optim::Adam opt({w.emb, w.w1, w.b1, w.w2, w.b2},
                           torch::optim::AdamOptions(o.learning_rate));
    const Windows win = MakeWindows(corpus.base_mix);
    const int64_t n = win.target.size(0);
    for (int step = 1; step <= o.steps; ++step) {
      auto idx = torch::randint(n, {o.batch}, torch::kLong);
      auto loss = torch::nn::functional::cross_entropy(
          Forward(w, nullptr, win.context.index_select(0, idx)), win.target.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
      if (log && (step % 250 == 0 || step == o.steps)) {
        log(absl::StrFormat("pretrain step %d/%d loss %.3f (%.1f s)", step, o.steps,
                            loss.item<double>(), absl::ToDoubleSeconds(absl::Now() - start)));
      }
    }
    std::vector<torch::Tensor> keep;
    std::vector<TensorToWrite> out;
    const std::vector<std::pair<const char*, torch::Tensor*>> named = {
        {"emb", &w.emb}, {"fc1.weight", &w.w1}, {"fc1.bias", &w.b1},
        {"head.weight", &w.w2}, {"head.bias", &w.b2}};
    for (const auto& [name, t] : named) {
      keep.push_back(t->detach().contiguous());
      const torch::Tensor& c = keep.back();
      out.push_back({name, DType::kF32, c.sizes().vec(),
                     absl::string_view(static_cast<const char*>(c.data_ptr()), c.nbytes())});
    }
    WXP_RETURN_IF_ERROR(WriteSafetensors(BasePath(base_dir), out, {{kConfigKey, config}}));
    return true;
  });
}

absl::StatusOr<FinetuneResult> FinetuneExpert(const LegalCorpus& corpus,
                                              const std::string& base_dir,
                                              const std::string& shard,
                                              const FinetuneOptions& o) {
  auto it = corpus.train.find(shard);
  if (it == corpus.train.end()) {
    return absl::NotFoundError(absl::StrCat("no shard '", shard, "'; the corpus has: ",
                                            absl::StrJoin(corpus.shards, ", ")));
  }
  WXP_ASSIGN_OR_RETURN(Base w, LoadBase(base_dir));
  return Guard("fine-tuning", [&]() -> absl::StatusOr<FinetuneResult> {
    at::set_num_threads(o.threads);
    torch::manual_seed(o.seed);
    // PEFT's initialisation: A random, B zero, so the untrained adapter is the identity.
    Lora l{torch::randn({kRank, kIn}) / std::sqrt(double(kIn)), torch::zeros({kHidden, kRank}),
           torch::randn({kRank, kHidden}) / std::sqrt(double(kHidden)),
           torch::zeros({256, kRank})};
    for (torch::Tensor* t : {&l.a1, &l.b1, &l.a2, &l.b2}) t->set_requires_grad(true);
    torch::optim::Adam opt({l.a1, l.b1, l.a2, l.b2}, torch::optim::AdamOptions(o.learning_rate));
    const Windows win = MakeWindows(it->second);
    const int64_t n = win.target.size(0);
    FinetuneResult r;
    r.loss_before = Score(w, nullptr, win).loss;
    for (int step = 0; step < o.steps; ++step) {
      auto idx = torch::randint(n, {o.batch}, torch::kLong);
      auto loss = torch::nn::functional::cross_entropy(
          Forward(w, &l, win.context.index_select(0, idx)), win.target.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    r.loss_after = Score(w, &l, win).loss;
    Adapter& a = r.adapter;
    a.schema = LoraSchema();
    for (torch::Tensor* t : {&l.a1, &l.b1, &l.a2, &l.b2}) {
      torch::Tensor c = t->detach().contiguous();
      a.values.insert(a.values.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    }
    a.config_json = absl::StrCat(
        "{\n  \"base_model_name_or_path\": \"wxp-legal-base\",\n  \"lora_alpha\": ",
        2 * kRank, ",\n  \"lora_dropout\": 0.0,\n  \"peft_type\": \"LORA\",\n  \"r\": ", kRank,
        ",\n  \"target_modules\": [\n    \"fc1\",\n    \"head\"\n  ],\n"
        "  \"task_type\": \"CAUSAL_LM\"\n}\n");
    a.metadata = {{"format", "pt"}, {"wxp_legal_shard", shard}};
    return r;
  });
}

struct LegalEvaluator::Model {
  Base base;
  Windows split;
  int threads = 1;
};

LegalEvaluator::LegalEvaluator(std::unique_ptr<Model> m) : m_(std::move(m)) {}
LegalEvaluator::~LegalEvaluator() = default;

absl::StatusOr<std::unique_ptr<LegalEvaluator>> LegalEvaluator::Create(
    const LegalCorpus& corpus, const std::string& base_dir, Split split, int threads) {
  WXP_ASSIGN_OR_RETURN(Base base, LoadBase(base_dir));
  return Guard("loading the evaluator", [&]() -> absl::StatusOr<std::unique_ptr<LegalEvaluator>> {
    auto m = std::make_unique<Model>();
    m->base = std::move(base);
    m->split = MakeWindows(split == Split::kDev ? corpus.dev : corpus.test);
    m->threads = threads;
    return std::unique_ptr<LegalEvaluator>(new LegalEvaluator(std::move(m)));
  });
}

absl::StatusOr<Scores> LegalEvaluator::EvaluateOn(absl::Span<const float> params,
                                                  const std::string& text) {
  if (static_cast<int64_t>(params.size()) != LoraSchema().total_params()) {
    return absl::InvalidArgumentError(absl::StrCat("a legal-model LoRA has ",
                                                   LoraSchema().total_params(),
                                                   " parameters, not ", params.size()));
  }
  return Guard("evaluation", [&]() -> absl::StatusOr<Scores> {
    at::set_num_threads(m_->threads);
    const Lora l = LoraFromFlat(params);
    const Totals t = Score(m_->base, &l, text.empty() ? m_->split : MakeWindows(text));
    if (!std::isfinite(t.loss)) {
      return absl::InvalidArgumentError("the candidate makes the model's loss non-finite");
    }
    return Scores{{"char_acc", t.acc}, {"loss", t.loss}};
  });
}

absl::StatusOr<Scores> LegalEvaluator::Evaluate(const EvaluationRequest& request) {
  return EvaluateOn(request.params, "");
}

}  // namespace wxp::legal
