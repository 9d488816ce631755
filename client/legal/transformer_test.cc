// The transformer architecture on the real licence corpus with a tiny configuration: its
// PEFT layout (against a real PEFT adapter from testdata/peft), causal masking, LoRA
// zero-init, determinism, how a base model file says what it is, and that everything the
// MLP serves (fine-tune, evaluation, decoded coefficient candidates, local training, a
// swarm) works on it.
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/legal/evaluator.h"
#include "client/legal/trainer.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "common/lora_decode.h"
#include "common/lora_layout.h"
#include "common/runner.h"
#include "common/safetensors.h"
#include "common/testing/testdata.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wxp::legal {
namespace {

using ::testing::HasSubstr;

std::string TmpDir(const std::string& name) {
  return std::string(getenv("TEST_TMPDIR")) + "/" + name;
}

ModelConfig TinyTransformer() {
  ModelConfig c = ModelConfig::Defaults(Architecture::kTransformer);
  c.context = 16;
  c.embed = 16;
  c.hidden = 32;
  c.layers = 2;
  c.heads = 2;
  c.lora_rank = 2;
  c.lora_alpha = 4;
  c.pretrain_steps = 80;
  c.pretrain_batch = 64;  // four windows of 16
  c.threads = 1;
  return c;
}

LegalOptions TinyOptions() {
  LegalOptions o;
  o.work_dir = TmpDir("transformer-work");
  o.model = TinyTransformer();
  return o;
}

FineTuneOptions TinyFineTune() {
  FineTuneOptions f;
  f.steps = 40;
  f.batch = 32;
  f.lr = 5e-3;
  return f;
}

class TransformerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LegalSetup> s = LoadLegalSetup(TinyOptions());
    ASSERT_TRUE(s.ok()) << s.status();
    setup_ = new LegalSetup(std::move(*s));
  }
  static void TearDownTestSuite() { delete setup_; }
  static const LegalModel& model() { return *setup_->model; }
  static TokenData Dev() { return *model().Tokenize(*setup_->corpus.Get(Split::kDev)); }
  static LegalSetup* setup_;
};
LegalSetup* TransformerTest::setup_ = nullptr;

TEST(ModelConfigTest, CanonicalRoundTripsAndTheMlpsIsUnchanged) {
  // The MLP's text (and so its base names and cached files) predates the architectures.
  EXPECT_EQ(ModelConfig().Canonical(),
            "wxp-legal-lm-v1 context=12 embed=12 hidden=128 lora_rank=8 lora_alpha=16 "
            "pretrain_steps=300 pretrain_batch=128 pretrain_lr=0.0030000000000000001 "
            "seed=20240607");
  for (const ModelConfig& c : {ModelConfig(), TinyTransformer()}) {
    absl::StatusOr<ModelConfig> back = ModelConfig::FromCanonical(c.Canonical());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->Canonical(), c.Canonical());
    EXPECT_EQ(back->architecture, c.architecture);
  }
  ModelConfig lora_mlp = TinyTransformer();
  lora_mlp.lora_mlp = true;
  EXPECT_TRUE(ModelConfig::FromCanonical(lora_mlp.Canonical())->lora_mlp);
  const std::string t = TinyTransformer().Canonical();
  for (const std::string& bad :
       {std::string("wxp-legal-rnn-v1 context=1"), t + " layers=3", t.substr(0, t.find(" seed=")),
        absl::StrCat(t.substr(0, t.find(" heads=2")), " heads=3", t.substr(t.find(" heads=2") + 8)),
        std::string("")}) {
    EXPECT_EQ(ModelConfig::FromCanonical(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(*ParseArchitecture("transformer"), Architecture::kTransformer);
  EXPECT_FALSE(ParseArchitecture("rnn").ok());
}

TEST_F(TransformerTest, LoraSchemaIsAPeftLlamaLoraInPeftsOrder) {
  const Schema& s = model().lora_schema();
  ASSERT_EQ(s.size(), 2u * 4 * 2);  // A and B, four projections, two layers
  EXPECT_EQ(s.tensor(0).name, "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight");
  EXPECT_EQ(s.tensor(0).shape, (std::vector<int64_t>{2, 16}));  // [r, embed]
  EXPECT_EQ(s.tensor(1).name, "base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight");
  EXPECT_EQ(s.tensor(1).shape, (std::vector<int64_t>{16, 2}));  // [out, r]
  EXPECT_EQ(s.tensor(15).name, "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight");
  for (size_t i = 1; i < s.size(); ++i) EXPECT_LT(s.tensor(i - 1).name, s.tensor(i).name);

  ModelConfig c = TinyTransformer();
  c.lora_mlp = true;
  c.layers = 11;  // "layers.10" sorts before "layers.2", as in PEFT's files
  c.pretrain_steps = 0;
  absl::StatusOr<std::shared_ptr<const LegalModel>> wide =
      LegalModel::LoadOrPretrain(c, setup_->corpus, TmpDir("wide"));
  ASSERT_TRUE(wide.ok()) << wide.status();
  const Schema& w = (*wide)->lora_schema();
  EXPECT_EQ(w.size(), 2u * 7 * 11);
  EXPECT_EQ(w.tensor(0).name, "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
  EXPECT_EQ(w.tensor(0).shape, (std::vector<int64_t>{2, 32}));  // [r, hidden]
  EXPECT_EQ(w.tensor(14).name, "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight");
  EXPECT_EQ(w.tensor(28).name, "base_model.model.model.layers.10.mlp.down_proj.lora_A.weight");
  for (size_t i = 1; i < w.size(); ++i) EXPECT_LT(w.tensor(i - 1).name, w.tensor(i).name);
  EXPECT_THAT((*wide)->LoraConfigJson(), HasSubstr(R"("target_modules": [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj"
  ])"));
}

// The layout of a real PEFT adapter (testdata/peft, written by PEFT 0.17.1): what ours must
// be indistinguishable from.
TEST_F(TransformerTest, SavedAdapterHasTheLayoutOfARealPeftAdapter) {
  absl::StatusOr<LegalExpert> e =
      FineTuneLegalExpert(model(), setup_->corpus, "MPL", TinyFineTune());
  ASSERT_TRUE(e.ok()) << e.status();
  const std::string dir = TmpDir("expert-mpl");
  ASSERT_TRUE(SaveAdapterDir(e->adapter, dir).ok());
  absl::StatusOr<Adapter> ours = LoadAdapter(dir);
  ASSERT_TRUE(ours.ok()) << ours.status();
  EXPECT_EQ(ours->schema, model().lora_schema());
  EXPECT_EQ(ours->values, e->adapter.values);

  absl::StatusOr<LoraConfig> cfg = ParseLoraConfig(*ours->config_json);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->peft_type, "LORA");
  EXPECT_EQ(cfg->task_type, "CAUSAL_LM");
  EXPECT_EQ(cfg->r, 2);
  EXPECT_EQ(cfg->lora_alpha, 4.0);
  EXPECT_EQ(cfg->target_modules,
            (std::vector<std::string>{"q_proj", "k_proj", "v_proj", "o_proj"}));
  EXPECT_EQ(cfg->base_model_name_or_path, model().base_model_name());
  EXPECT_THAT(cfg->base_model_name_or_path, ::testing::StartsWith("wxp-legal-byte-transformer-"));
  absl::StatusOr<LoraLayout> layout = ParseLoraLayout(*ours);
  ASSERT_TRUE(layout.ok()) << layout.status();
  ASSERT_EQ(layout->modules.size(), 8u);
  EXPECT_EQ(layout->modules[0].name, "base_model.model.model.layers.0.self_attn.k_proj");
  EXPECT_EQ(layout->modules[0].scaling, 2.0);

  std::optional<std::string> testdata = testing::SharedTestdataDir();
  if (!testdata) GTEST_SKIP() << "shared/testdata not found beside the workspace";
  const std::string peft = *testdata + "/peft/gpt2_tigrinya_lora_f32";
  // adapter_config.json: exactly PEFT's keys, in its (sorted) order.
  auto keys = [](const std::string& json_text) {
    std::vector<std::string> k;
    const nlohmann::ordered_json j = nlohmann::ordered_json::parse(json_text);
    for (auto it = j.begin(); it != j.end(); ++it) k.push_back(it.key());
    return k;
  };
  absl::StatusOr<std::string> real_config = ReadFile(peft + "/adapter_config.json");
  ASSERT_TRUE(real_config.ok());
  EXPECT_EQ(keys(*ours->config_json), keys(*real_config));
  // The weights file: the same metadata, F32 factors named base_model.model.<module>.
  // lora_<A|B>.weight, laid out in name order, A [r, in] and B [out, r] with the config's r.
  for (const std::string& path :
       {peft + "/adapter_model.safetensors", dir + "/adapter_model.safetensors"}) {
    absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->metadata(), (SafetensorsMetadata{{"format", "pt"}})) << path;
    const std::regex name(R"(base_model\.model\.[a-z_.0-9]+\.lora_([AB])\.weight)");
    absl::StatusOr<LoraConfig> c =
        ParseLoraConfig(*ReadFile(path.substr(0, path.rfind('/')) + "/adapter_config.json"));
    for (size_t i = 0; i < f->tensors().size(); ++i) {
      const TensorView& t = f->tensors()[i];
      std::smatch m;
      ASSERT_TRUE(std::regex_match(t.name, m, name)) << t.name;
      EXPECT_EQ(t.dtype, DType::kF32);
      ASSERT_EQ(t.shape.size(), 2u);
      EXPECT_EQ(m[1] == "A" ? t.shape[0] : t.shape[1], *c->r) << t.name;
      if (i > 0) {
        EXPECT_LT(f->tensors()[i - 1].name, t.name) << path;
      }
    }
  }
}

TEST_F(TransformerTest, ALaterByteNeverChangesAnEarlierPrediction) {
  // Two windows' worth, so the change is seen within a window and across the border.
  std::string text = *ReadFile("/usr/share/common-licenses/Apache-2.0");
  text = text.substr(0, 40);
  absl::StatusOr<TokenData> a = model().Tokenize({text});
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->positions(), 40);
  absl::StatusOr<std::vector<float>> base = model().Logits({}, *a, 40);
  ASSERT_TRUE(base.ok()) << base.status();
  ASSERT_EQ(base->size(), 40u * 256);
  for (int changed : {5, 20, 39}) {
    std::string other = text;
    other[changed] = static_cast<char>(other[changed] ^ 0x55);
    absl::StatusOr<std::vector<float>> got = model().Logits({}, *model().Tokenize({other}), 40);
    ASSERT_TRUE(got.ok());
    // Row t predicts byte t from the bytes before it: rows up to `changed` are untouched.
    const size_t same = (changed + 1) * 256;
    EXPECT_EQ(std::vector<float>(got->begin(), got->begin() + same),
              std::vector<float>(base->begin(), base->begin() + same))
        << changed;
    if (changed + 1 < 40) {  // the next row reads the changed byte
      EXPECT_NE(std::vector<float>(got->begin() + same, got->begin() + same + 256),
                std::vector<float>(base->begin() + same, base->begin() + same + 256))
          << changed;
    }
  }
}

TEST_F(TransformerTest, ZeroBIsTheBaseAndScoresAreDeterministic) {
  const TokenData dev = Dev();
  absl::StatusOr<LmScores> base = model().Score({}, dev);
  ASSERT_TRUE(base.ok()) << base.status();
  EXPECT_GT(base->char_acc, 0.1);
  EXPECT_LT(base->loss, std::log(256.0) - 2);
  EXPECT_EQ(base->positions, dev.positions());

  const Schema& s = model().lora_schema();
  std::vector<float> lora(s.total_params(), 0.f);
  for (size_t t = 0; t < s.size(); t += 2) {
    for (int64_t j = 0; j < s.tensor(t).numel(); ++j) lora[s.offset(t) + j] = 0.3f;
  }
  EXPECT_EQ(*model().Logits({}, dev, 300),
            *model().Logits({{&model().own_placement(), lora, 1}}, dev, 300));
  absl::StatusOr<LmScores> zero_b = model().Score(lora, dev);
  ASSERT_TRUE(zero_b.ok());
  EXPECT_EQ(zero_b->loss, base->loss);
  for (size_t t = 1; t < s.size(); t += 2) {
    for (int64_t j = 0; j < s.tensor(t).numel(); ++j)
      lora[s.offset(t) + j] = (j % 3 ? -0.1f : 0.2f);
  }
  EXPECT_NE(model().Score(lora, dev)->loss, base->loss);

  // A second pretraining elsewhere writes the same bytes; fine-tuning repeats itself.
  LegalOptions o = TinyOptions();
  o.work_dir = TmpDir("transformer-again");
  absl::StatusOr<LegalSetup> again = LoadLegalSetup(o);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->model->pretrained_now());
  EXPECT_EQ(*ReadFile(again->model->base_path()), *ReadFile(model().base_path()));
  absl::StatusOr<LegalExpert> e1 =
      FineTuneLegalExpert(model(), setup_->corpus, "GPL", TinyFineTune());
  absl::StatusOr<LegalExpert> e2 =
      FineTuneLegalExpert(*again->model, again->corpus, "GPL", TinyFineTune());
  ASSERT_TRUE(e1.ok() && e2.ok());
  EXPECT_EQ(e1->adapter.values, e2->adapter.values);
  EXPECT_LT(e1->stats.final_loss, e1->stats.initial_loss);
}

TEST_F(TransformerTest, TheBaseFileSaysWhatItIs) {
  absl::StatusOr<ModelConfig> c = ReadLegalBaseConfig(model().base_path());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->Canonical(), TinyTransformer().Canonical());
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(model().base_path());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->tensors()[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(f->tensors().back().name, "lm_head.weight");

  // Metadata that contradicts itself, or none: refused with the file's name.
  absl::StatusOr<Adapter> a = LoadAdapter(model().base_path());
  ASSERT_TRUE(a.ok());
  for (auto& [k, v] : a->metadata) {
    if (k == "wxp_legal_architecture") v = "mlp";
  }
  const std::string lying = TmpDir("lying.safetensors");
  ASSERT_TRUE(SaveSafetensors(*a, lying).ok());
  EXPECT_THAT(std::string(ReadLegalBaseConfig(lying).status().message()),
              HasSubstr("metadata says architecture 'mlp'"));
  a->metadata = {{"format", "pt"}};
  ASSERT_TRUE(SaveSafetensors(*a, lying).ok());
  EXPECT_THAT(std::string(ReadLegalBaseConfig(lying).status().message()),
              HasSubstr("no wxp_legal_config"));
  EXPECT_EQ(ReadLegalBaseConfig(TmpDir("missing")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TransformerTest, TheBaseComesFromWhatTheAdaptersName) {
  const std::string config = model().LoraConfigJson();
  // An agent configured with nothing but the base directory finds the transformer.
  LegalOptions o;
  o.work_dir = TinyOptions().work_dir;
  o.model.threads = 1;
  o.base_from_adapter_config = config;
  absl::StatusOr<ModelConfig> c = ResolveLegalBase(o, setup_->corpus);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->Canonical(), TinyTransformer().Canonical());
  absl::StatusOr<std::unique_ptr<Evaluator>> ev =
      MakeLegalEvaluator(o, model().lora_schema(), config);
  ASSERT_TRUE(ev.ok()) << ev.status();
  std::vector<float> zeros(model().lora_schema().total_params(), 0.f);
  EXPECT_EQ((*ev)->Evaluate({0, 0, zeros})->at(kLossComponent), model().Score({}, Dev())->loss);

  // Elsewhere the base is missing, and it is not a default configuration.
  o.work_dir = TmpDir("empty-base-dir");
  EXPECT_THAT(std::string(ResolveLegalBase(o, setup_->corpus).status().message()),
              HasSubstr("not in " + o.work_dir + "/legal-base-"));
  EXPECT_EQ(ResolveLegalBase(o, setup_->corpus).status().code(), absl::StatusCode::kNotFound);
  // Without a name: the configured model, as before.
  o.base_from_adapter_config = R"({"peft_type": "LORA", "base_model_name_or_path": "gpt2"})";
  EXPECT_EQ(ResolveLegalBase(o, setup_->corpus)->Canonical(), ModelConfig().Canonical());

  // An MLP's adapter on the transformer, and the other way round: refused by name.
  LegalOptions mlp;
  mlp.work_dir = TmpDir("mlp-work");
  mlp.model.context = 8;
  mlp.model.embed = 8;
  mlp.model.hidden = 16;
  mlp.model.pretrain_steps = 5;
  mlp.model.threads = 1;
  absl::StatusOr<LegalSetup> m = LoadLegalSetup(mlp);
  ASSERT_TRUE(m.ok()) << m.status();
  const Adapter mlp_adapter =
      MakeLegalAdapter(*m->model, std::vector<float>(m->model->lora_schema().total_params()));
  absl::Status s = CheckLegalBase(model(), mlp_adapter.config_json);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("fine-tuned from base model wxp-legal-byte-lm-"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("(mlp), not from this one"));
  EXPECT_THAT(
      std::string(MakeLegalEvaluator(TinyOptions(), mlp_adapter.schema, mlp_adapter.config_json)
                      .status()
                      .message()),
      HasSubstr("(transformer)"));
  EXPECT_EQ(CheckLegalBase(*m->model, config).code(), absl::StatusCode::kInvalidArgument);
}

// A PEFT LoRA of a Llama-shaped model on `modules` (layer 0 and 1 paths below
// "base_model.model.") with deterministic values.
Adapter SyntheticLora(const LegalModel& m, const std::vector<std::string>& modules, int64_t rank,
                      double alpha, uint64_t seed) {
  std::vector<TensorSpec> specs;
  const int64_t d = m.config().embed, h = m.config().hidden;
  for (const std::string& mod : modules) {
    const bool down = absl::StrContains(mod, "down_proj");
    const bool up = absl::StrContains(mod, "gate_proj") || absl::StrContains(mod, "up_proj");
    const std::string prefix = "base_model.model." + mod;
    specs.push_back({prefix + ".lora_A.weight", DType::kF32, {rank, down ? h : d}});
    specs.push_back({prefix + ".lora_B.weight", DType::kF32, {up ? h : d, rank}});
  }
  Adapter a;
  a.schema = Schema(std::move(specs));
  a.values.resize(a.schema.total_params());
  uint64_t state = seed * 0x9e3779b97f4a7c15ULL + 7;
  for (float& x : a.values) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    x = static_cast<float>(static_cast<int64_t>(state >> 40) % 2001 - 1000) / 10000.f;
  }
  a.config_json =
      absl::StrCat(R"({"peft_type": "LORA", "r": )", rank, R"(, "lora_alpha": )", alpha, "}");
  return a;
}

double RelDiff(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * static_cast<double>(got[i] - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

TEST_F(TransformerTest, ForeignAndDecodedLorasAreScoredAsTheirDeltas) {
  const TokenData dev = Dev();
  // Experts of other ranks, one also on the MLP projections the own adapters leave alone.
  const Adapter e1 =
      SyntheticLora(model(),
                    {"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.v_proj",
                     "model.layers.1.mlp.down_proj", "model.layers.0.mlp.gate_proj"},
                    4, 8, 1);
  const Adapter e2 = SyntheticLora(model(), {"model.layers.1.self_attn.v_proj"}, 3, 3, 2);
  absl::StatusOr<Adapter> d = DecodeLora({&e1, &e2}, LoraCoefficients::PerExpert({0.6, -0.9}), {});
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<LoraPlacement> p1 = model().PlaceLora(e1.schema, e1.config_json);
  absl::StatusOr<LoraPlacement> p2 = model().PlaceLora(e2.schema, e2.config_json);
  absl::StatusOr<LoraPlacement> pd = model().PlaceLora(d->schema, d->config_json);
  ASSERT_TRUE(p1.ok() && p2.ok() && pd.ok()) << p1.status() << pd.status();
  const std::vector<PlacedLora> decoded = {{&*pd, d->values, 1}};
  const std::vector<PlacedLora> summed = {{&*p1, e1.values, 0.6}, {&*p2, e2.values, -0.9}};
  absl::StatusOr<std::vector<float>> got = model().Logits(decoded, dev, 300);
  absl::StatusOr<std::vector<float>> want = model().Logits(summed, dev, 300);
  absl::StatusOr<std::vector<float>> base = model().Logits({}, dev, 300);
  ASSERT_TRUE(got.ok() && want.ok() && base.ok()) << got.status();
  EXPECT_LT(RelDiff(*got, *want), 1e-5);
  EXPECT_GT(RelDiff(*base, *want), 1e-3);

  const Adapter beyond = SyntheticLora(model(), {"model.layers.2.self_attn.q_proj"}, 2, 2, 3);
  EXPECT_THAT(std::string(model().PlaceLora(beyond.schema, beyond.config_json).status().message()),
              HasSubstr("is not on q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj "
                        "of model.layers.0-1"));
}

TEST_F(TransformerTest, LocalTrainingAndASwarmRunAndRepeatThemselves) {
  std::vector<std::vector<float>> experts;
  for (const char* shard : {"GPL", "MPL"}) {
    FineTuneOptions ft = TinyFineTune();
    ft.seed = ft.init_seed = experts.size() + 1;
    absl::StatusOr<LegalExpert> e = FineTuneLegalExpert(model(), setup_->corpus, shard, ft);
    ASSERT_TRUE(e.ok()) << e.status();
    experts.push_back(e->adapter.values);
  }
  auto run = [&]() -> absl::StatusOr<RunResult> {
    auto evaluator = MakeLegalEvaluator(setup_->model, setup_->corpus, Split::kDev);
    auto trainer = MakeLegalTrainer(setup_->model, setup_->corpus, "GPL");
    if (!evaluator.ok()) return evaluator.status();
    if (!trainer.ok()) return trainer.status();
    RunnerOptions o;
    o.params.seed = 4;
    o.params.max_iterations = 2;
    o.local_training = {1, 3, 5e-3, 16};
    o.trainer = trainer->get();
    return RunSwarm(experts, *UtilityFunction::Create({{kCharAccComponent, true, 1.0}}),
                    **evaluator, o);
  };
  absl::StatusOr<RunResult> a = run(), b = run();
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(a->history[1].trained, 4);
  EXPECT_EQ(a->history[1].training_failed, 0);
  EXPECT_EQ(std::memcmp(a->best.data(), b->best.data(), a->best.size() * sizeof(float)), 0);
  EXPECT_GE(a->history.back().global_best_utility, a->history.front().global_best_utility);
}

}  // namespace
}  // namespace wxp::legal
