// The token-swarm evaluator over real built-in models of both architectures on the real
// corpus: a unit α is its expert (as LegalEvaluator scores it), mixtures obey what the maths
// says they must, results are deterministic, and bad experts and α are refused.
#include "client/legal/mixture_evaluator.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "client/legal/evaluator.h"
#include "common/file_util.h"
#include "common/particle_space.h"
#include "common/runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wxp::legal {
namespace {

using ::testing::HasSubstr;

ModelConfig TinyMlp() {
  ModelConfig c;
  c.context = 8;
  c.embed = 8;
  c.hidden = 32;
  c.lora_rank = 2;
  c.lora_alpha = 4;
  c.pretrain_steps = 120;
  c.pretrain_batch = 64;
  c.threads = 1;
  return c;
}

ModelConfig TinyTransformer() {
  ModelConfig c = ModelConfig::Defaults(Architecture::kTransformer);
  c.context = 16;
  c.embed = 16;
  c.hidden = 32;
  c.layers = 1;
  c.heads = 2;
  c.lora_rank = 2;
  c.lora_alpha = 4;
  c.pretrain_steps = 60;
  c.pretrain_batch = 64;
  c.threads = 1;
  return c;
}

class MixtureEvaluatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string work = std::string(getenv("TEST_TMPDIR")) + "/mixture-work";
    corpus_ = new Corpus(*Corpus::Load(""));
    FineTuneOptions ft;
    ft.steps = 30;
    ft.batch = 32;
    // Expert 0: MLP fine-tuned on GPL; 1: transformer on MPL; 2: the transformer base alone.
    struct Firm {
      ModelConfig config;
      const char* shard;
    };
    for (const Firm& f : {Firm{TinyMlp(), "GPL"}, Firm{TinyTransformer(), "MPL"}}) {
      absl::StatusOr<std::shared_ptr<const LegalModel>> m =
          LegalModel::LoadOrPretrain(f.config, *corpus_, work);
      ASSERT_TRUE(m.ok()) << m.status();
      absl::StatusOr<LegalExpert> e = FineTuneLegalExpert(**m, *corpus_, f.shard, ft);
      ASSERT_TRUE(e.ok()) << e.status();
      experts_->push_back({*m, e->adapter});
    }
    experts_->push_back({(*experts_)[1].model, Adapter{}});
  }
  static void TearDownTestSuite() {
    delete corpus_;
    experts_->clear();
  }

  static std::unique_ptr<MixtureEvaluator> Make(TokenCombination c) {
    absl::StatusOr<std::unique_ptr<MixtureEvaluator>> ev =
        MixtureEvaluator::Create(*experts_, *corpus_, Split::kDev, c);
    EXPECT_TRUE(ev.ok()) << ev.status();
    return ev.ok() ? *std::move(ev) : nullptr;
  }

  static Scores Eval(MixtureEvaluator& ev, std::vector<float> alpha) {
    absl::StatusOr<Scores> s = ev.Evaluate({0, 0, alpha});
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : Scores{};
  }

  // What LegalEvaluator reports for expert j alone.
  static Scores Single(int j) {
    const MixtureExpert& e = (*experts_)[j];
    absl::StatusOr<std::unique_ptr<LegalEvaluator>> ev =
        MakeLegalEvaluator(e.model, *corpus_, Split::kDev);
    EXPECT_TRUE(ev.ok()) << ev.status();
    absl::StatusOr<Scores> s = (*ev)->Evaluate({0, 0, e.adapter.values});
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }

  static Corpus* corpus_;
  static std::vector<MixtureExpert>* experts_;
};
Corpus* MixtureEvaluatorTest::corpus_ = nullptr;
std::vector<MixtureExpert>* MixtureEvaluatorTest::experts_ = new std::vector<MixtureExpert>();

TEST_F(MixtureEvaluatorTest, UnitAlphaIsItsExpertAlone) {
  for (TokenCombination c : {TokenCombination::kMixture, TokenCombination::kLogLinear}) {
    std::unique_ptr<MixtureEvaluator> ev = Make(c);
    ASSERT_NE(ev, nullptr);
    EXPECT_EQ(ev->num_experts(), 3);
    for (int j = 0; j < 3; ++j) {
      std::vector<float> alpha(3, 0);
      alpha[j] = 1;
      const Scores got = Eval(*ev, alpha), want = Single(j);
      ASSERT_EQ(got.size(), want.size());
      for (const auto& [name, value] : want) {
        // The same forward pass, summed in double here and in float by Score; an argmax
        // tie may fall either way, but on one position at most per thousand.
        EXPECT_NEAR(got.at(name), value, name == kLossComponent ? 1e-4 : 2e-3)
            << "expert " << j << " " << name;
      }
    }
  }
}

TEST_F(MixtureEvaluatorTest, MixtureLossIsAtMostTheWeightedLossOfItsExperts) {
  // Jensen: -log Σ w_j p_j <= Σ w_j (-log p_j) at every position, so also on average.
  std::unique_ptr<MixtureEvaluator> ev = Make(TokenCombination::kMixture);
  const double l0 = Eval(*ev, {1, 0, 0})[kLossComponent];
  const double l1 = Eval(*ev, {0, 1, 0})[kLossComponent];
  const double mixed = Eval(*ev, {1, 3, 0})[kLossComponent];
  EXPECT_LE(mixed, 0.25 * l0 + 0.75 * l1);
  // Scale does not matter, negative coefficients drop their expert.
  EXPECT_EQ(Eval(*ev, {2, 6, 0}), Eval(*ev, {1, 3, 0}));
  EXPECT_EQ(Eval(*ev, {1, 3, -5}), Eval(*ev, {1, 3, 0}));
  // No positive coefficient: the uniform mixture.
  EXPECT_EQ(Eval(*ev, {-1, -1, -2}), Eval(*ev, {1, 1, 1}));
}

TEST_F(MixtureEvaluatorTest, LogLinearZeroIsUniformAndNegativeWeightsWork) {
  std::unique_ptr<MixtureEvaluator> ev = Make(TokenCombination::kLogLinear);
  const Scores zero = Eval(*ev, {0, 0, 0});
  EXPECT_NEAR(zero.at(kLossComponent), std::log(256.0), 1e-9);
  // Proxy tuning's shape: tuned transformer minus its base, added to the MLP expert.
  const Scores proxy = Eval(*ev, {1, 1, -1});
  EXPECT_TRUE(std::isfinite(proxy.at(kLossComponent)));
  EXPECT_GT(proxy.at(kCharAccComponent), 0);
}

TEST_F(MixtureEvaluatorTest, ScoresEveryFamilyAndIsDeterministic) {
  for (TokenCombination c : {TokenCombination::kMixture, TokenCombination::kLogLinear}) {
    std::unique_ptr<MixtureEvaluator> a = Make(c), b = Make(c);
    const std::vector<float> alpha = {0.7f, 0.5f, -0.1f};
    const Scores sa = Eval(*a, alpha);
    EXPECT_EQ(sa, Eval(*a, alpha));
    EXPECT_EQ(sa, Eval(*b, alpha));  // bit for bit, from freshly computed log-probabilities
    EXPECT_EQ(sa.size(), 2 + a->families().size());
    for (const std::string& f : a->families()) EXPECT_EQ(sa.count(FamilyCharAccComponent(f)), 1);
  }
}

// B5-T's bootstrap resamples per-position hits: they must be what char_acc counts.
TEST_F(MixtureEvaluatorTest, HitsAreThePositionsCharAccCounts) {
  for (TokenCombination c : {TokenCombination::kMixture, TokenCombination::kLogLinear}) {
    std::unique_ptr<MixtureEvaluator> ev = Make(c);
    ASSERT_NE(ev, nullptr);
    for (const std::vector<float>& alpha :
         {std::vector<float>{1, 0, 0}, std::vector<float>{0.7f, 0.5f, -0.1f}}) {
      absl::StatusOr<std::vector<uint8_t>> hits = ev->Hits(alpha);
      ASSERT_TRUE(hits.ok()) << hits.status();
      ASSERT_EQ(static_cast<int64_t>(hits->size()), ev->positions());
      int64_t n = 0;
      for (uint8_t h : *hits) {
        ASSERT_LE(h, 1);
        n += h;
      }
      EXPECT_EQ(static_cast<double>(n) / ev->positions(), Eval(*ev, alpha)[kCharAccComponent]);
    }
    EXPECT_EQ(ev->Hits(std::vector<float>{1, 1}).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(MixtureEvaluatorTest, BadAlphaIsRefused) {
  std::unique_ptr<MixtureEvaluator> ev = Make(TokenCombination::kMixture);
  std::vector<float> two = {1, 1};
  absl::StatusOr<Scores> s = ev->Evaluate({0, 0, two});
  ASSERT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("2 coefficients for 3 experts"));
  std::vector<float> nan = {1, std::nanf(""), 0};
  EXPECT_EQ(ev->Evaluate({0, 0, nan}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(MixtureEvaluatorTest, BadExpertsAreRefusedNamingThem) {
  const auto invalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(MixtureEvaluator::Create({}, *corpus_, Split::kDev, TokenCombination::kMixture)
                .status()
                .code(),
            invalid);
  // The MLP's adapter on the transformer base: named by the adapter's config.
  std::vector<MixtureExpert> wrong = {(*experts_)[0],
                                      {(*experts_)[1].model, (*experts_)[0].adapter}};
  absl::StatusOr<std::unique_ptr<MixtureEvaluator>> ev =
      MixtureEvaluator::Create(wrong, *corpus_, Split::kDev, TokenCombination::kMixture);
  ASSERT_EQ(ev.status().code(), invalid);
  EXPECT_THAT(ev.status().message(), HasSubstr("token swarm expert 1"));
  // Without a config, the MLP's schema does not fit the transformer's layers.
  wrong[1].adapter.config_json.reset();
  ev = MixtureEvaluator::Create(wrong, *corpus_, Split::kDev, TokenCombination::kMixture);
  ASSERT_EQ(ev.status().code(), invalid);
  EXPECT_THAT(ev.status().message(), HasSubstr("token swarm expert 1"));
  std::vector<MixtureExpert> no_model = {{nullptr, Adapter{}}};
  EXPECT_EQ(MixtureEvaluator::Create(no_model, *corpus_, Split::kDev, TokenCombination::kMixture)
                .status()
                .code(),
            invalid);
  EXPECT_EQ(MixtureEvaluator::Create(*experts_, *corpus_, Split::kTrain, TokenCombination::kMixture)
                .status()
                .code(),
            invalid);
}

// The in-process runner searches a token-mixture space with this evaluator: the same PSO
// on alpha, from the experts' unit vectors; deterministic, and never worse than the best
// expert (the experts are in the pool).
TEST_F(MixtureEvaluatorTest, RunnerSearchesTokenMixtures) {
  std::vector<Adapter> adapters;
  for (const MixtureExpert& e : *experts_) adapters.push_back(e.adapter);
  const UtilityFunction utility = *UtilityFunction::Create({{kLossComponent, false, 1.0}});
  for (TokenCombination c : {TokenCombination::kMixture, TokenCombination::kLogLinear}) {
    ParticleSpaceOptions o;
    o.kind = SpaceKind::kTokenMixture;
    o.combination = c;
    absl::StatusOr<std::unique_ptr<ParticleSpace>> space = ParticleSpace::Create(adapters, o);
    ASSERT_TRUE(space.ok()) << space.status();
    std::unique_ptr<MixtureEvaluator> ev = Make(c);
    RunnerOptions ro;
    ro.space = SpaceKind::kTokenMixture;
    ro.crossover_groups = (*space)->CrossoverGroups();
    // Small (pool 4, two iterations: 12 evaluations a run) because every evaluation scores
    // the dev split with three models, and this test runs under ASan.
    ro.params.seed = 7;
    ro.params.pool_size = 4;
    ro.params.max_iterations = 2;
    absl::StatusOr<RunResult> a = RunSwarm((*space)->InitialPositions(), utility, *ev, ro);
    ASSERT_TRUE(a.ok()) << a.status();
    absl::StatusOr<RunResult> b = RunSwarm((*space)->InitialPositions(), utility, *ev, ro);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(a->best, b->best);
    EXPECT_EQ(a->best_utility, b->best_utility);
    ASSERT_EQ(a->best.size(), 3);
    double best_expert = -1e300;
    for (int j = 0; j < 3; ++j) best_expert = std::max(best_expert, a->initial_utilities[j]);
    EXPECT_GE(a->best_utility, best_expert) << TokenCombinationName(c);
    EXPECT_EQ(a->best_utility, *utility.Combine(Eval(*ev, a->best)));
    // Local training has no meaning on alpha over whole models.
    ro.local_training.every_k = 1;
    ro.local_training.steps = 1;
    ro.local_training.learning_rate = 0.1;
    ro.local_training.batch = 1;
    EXPECT_EQ(RunSwarm((*space)->InitialPositions(), utility, *ev, ro).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

// An agent's experts arrive as files (blobs): loading them gives the same models, and a
// file that is no base model of this corpus is refused before anything is pretrained.
// Each generated byte is the argmax of the combination at that byte's own position when the
// whole text is scored as Evaluate scores a split: the next byte is predicted from exactly
// the context a scored position has.
TEST_F(MixtureEvaluatorTest, GreedyTextIsTheCombinationsArgmaxAtEveryPosition) {
  const std::string prompt = "This program is free software; you can redistribute it";
  const std::vector<float> alpha = {0.6f, 0.9f, -0.3f};
  GenerateOptions o;
  o.bytes = 24;
  for (TokenCombination c : {TokenCombination::kMixture, TokenCombination::kLogLinear}) {
    absl::StatusOr<std::string> text = GenerateText(*experts_, c, alpha, prompt, o);
    ASSERT_TRUE(text.ok()) << text.status();
    ASSERT_EQ(text->size(), 24u);
    const std::string all = prompt + *text;
    std::vector<std::vector<float>> lp;
    for (const MixtureExpert& e : *experts_) {
      const LoraPlacement placement =
          e.adapter.values.empty() ? e.model->own_placement()
                                   : *e.model->PlaceLora(e.adapter.schema, e.adapter.config_json);
      absl::StatusOr<TokenData> data = e.model->Tokenize({all});
      ASSERT_TRUE(data.ok());
      absl::StatusOr<LegalModel::PositionLogProbs> p =
          e.model->LogProbs(placement, e.adapter.values, *data);
      ASSERT_TRUE(p.ok()) << p.status();
      ASSERT_EQ(p->log_probs.size(), all.size() * 256);
      lp.push_back(std::move(p->log_probs));
    }
    const std::vector<double> weights = *CombinationWeights(c, alpha);
    for (size_t t = prompt.size(); t < all.size(); ++t) {
      std::vector<absl::Span<const float>> rows;
      for (const std::vector<float>& x : lp)
        rows.push_back(absl::MakeConstSpan(x).subspan(t * 256, 256));
      std::vector<double> out(256);
      ASSERT_TRUE(CombineLogProbs(c, weights, rows, absl::MakeSpan(out)).ok());
      EXPECT_EQ(std::max_element(out.begin(), out.end()) - out.begin(),
                static_cast<unsigned char>(all[t]))
          << "position " << t << " of " << all;
    }
    // Deterministic.
    EXPECT_EQ(*GenerateText(*experts_, c, alpha, prompt, o), *text);
  }
}

TEST_F(MixtureEvaluatorTest, SampledTextDependsOnTheSeedOnlyAndBadOptionsAreRefused) {
  const std::vector<float> alpha = {1, 1, 0};
  GenerateOptions o;
  o.bytes = 40;
  o.temperature = 1;
  const TokenCombination c = TokenCombination::kMixture;
  const std::string a = *GenerateText(*experts_, c, alpha, "Copyright ", o);
  EXPECT_EQ(*GenerateText(*experts_, c, alpha, "Copyright ", o), a);
  o.seed = 2;
  EXPECT_NE(*GenerateText(*experts_, c, alpha, "Copyright ", o), a);
  EXPECT_EQ(GenerateText(*experts_, c, {1, 1}, "x", o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.temperature = -1;
  EXPECT_EQ(GenerateText(*experts_, c, alpha, "x", o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.temperature = 0;
  o.bytes = 0;
  EXPECT_EQ(GenerateText(*experts_, c, alpha, "x", o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.bytes = 3;
  EXPECT_EQ(GenerateText({}, c, {}, "x", o).status().code(), absl::StatusCode::kInvalidArgument);
  // An empty prompt: the first byte is predicted from nothing, as a text's first byte is.
  absl::StatusOr<std::string> from_nothing = GenerateText(*experts_, c, alpha, "", o);
  ASSERT_TRUE(from_nothing.ok()) << from_nothing.status();
  EXPECT_EQ(from_nothing->size(), 3u);
}

TEST_F(MixtureEvaluatorTest, LoadsExpertsFromFilesWithoutPretraining) {
  const std::string tmp = std::string(getenv("TEST_TMPDIR"));
  const MixtureExpert& mlp = (*experts_)[0];
  ASSERT_TRUE(SaveAdapterDir(mlp.adapter, tmp + "/expert0").ok());
  MixtureExpertFiles files{mlp.model->base_path(), tmp + "/expert0/adapter_model.safetensors",
                           *mlp.adapter.config_json};
  absl::StatusOr<MixtureExpert> loaded = LoadMixtureExpert(files, *corpus_, tmp + "/agent-work", 1);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE(loaded->model->pretrained_now());
  EXPECT_EQ(loaded->model->base_model_name(), mlp.model->base_model_name());
  EXPECT_EQ(loaded->adapter.values, mlp.adapter.values);
  // Not a base model: the adapter file itself.
  MixtureExpertFiles bad = files;
  bad.base_model_path = files.adapter_path;
  absl::StatusOr<MixtureExpert> refused = LoadMixtureExpert(bad, *corpus_, tmp + "/w2", 1);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("not a base model"));
  // A base model of another corpus (same bytes, a corpus with another fingerprint).
  const std::string other = tmp + "/other-corpus";
  ASSERT_TRUE(MakeDirs(other).ok());
  ASSERT_TRUE(WriteFileAtomically(other + "/text", std::string(4000, 'z')).ok());
  absl::StatusOr<Corpus> other_corpus = Corpus::Load(other);
  ASSERT_TRUE(other_corpus.ok()) << other_corpus.status();
  refused = LoadMixtureExpert(files, *other_corpus, tmp + "/w3", 1);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("another corpus"));
}

}  // namespace
}  // namespace wxp::legal
