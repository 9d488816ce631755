// The legal model and evaluator on real tensors and the real Debian licence corpus, with a
// tiny configuration so the whole file runs in seconds.
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "client/legal/evaluator.h"
#include "client/legal/testing/tiny_options.h"
#include "common/adapter.h"
#include "common/lora_decode.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wxp::legal {
namespace {

using legal_testing::TinyOptions;

FineTuneOptions TinyFineTune() {
  FineTuneOptions f;
  f.steps = 60;
  f.batch = 64;
  f.lr = 5e-3;
  return f;
}

class LegalModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LegalSetup> s = LoadLegalSetup(TinyOptions());
    ASSERT_TRUE(s.ok()) << s.status();
    setup_ = new LegalSetup(std::move(*s));
  }
  static void TearDownTestSuite() { delete setup_; }
  static LegalSetup* setup_;
};
LegalSetup* LegalModelTest::setup_ = nullptr;

TEST_F(LegalModelTest, SchemaHasPeftNamesAndShapes) {
  const Schema& s = setup_->model->lora_schema();
  ASSERT_EQ(s.size(), 6u);
  EXPECT_EQ(s.tensor(0).name, "base_model.model.fc1.lora_A.weight");
  EXPECT_EQ(s.tensor(0).shape, (std::vector<int64_t>{2, 64}));  // [r, context*embed]
  EXPECT_EQ(s.tensor(1).name, "base_model.model.fc1.lora_B.weight");
  EXPECT_EQ(s.tensor(1).shape, (std::vector<int64_t>{32, 2}));  // [out, r]
  EXPECT_EQ(s.tensor(5).name, "base_model.model.head.lora_B.weight");
  EXPECT_EQ(s.tensor(5).shape, (std::vector<int64_t>{256, 2}));
}

TEST_F(LegalModelTest, LoraChangesOutputsOnlyWhenBIsNonZero) {
  const LegalModel& m = *setup_->model;
  absl::StatusOr<TokenData> dev = m.Tokenize(*setup_->corpus.Get(Split::kDev));
  ASSERT_TRUE(dev.ok());
  absl::StatusOr<LmScores> base = m.Score({}, *dev);
  ASSERT_TRUE(base.ok()) << base.status();
  // Even the tiny test base has learned far more than uniform guessing (1/256, log 256 nats).
  EXPECT_GT(base->char_acc, 0.1);
  EXPECT_LT(base->loss, std::log(256.0) - 2);

  // Non-zero A, zero B: PEFT's initial state, exactly the base.
  const Schema& s = m.lora_schema();
  std::vector<float> lora(s.total_params(), 0.f);
  for (size_t t = 0; t < s.size(); t += 2) {
    for (int64_t j = 0; j < s.tensor(t).numel(); ++j) lora[s.offset(t) + j] = 0.3f;
  }
  absl::StatusOr<LmScores> zero_b = m.Score(lora, *dev);
  ASSERT_TRUE(zero_b.ok());
  EXPECT_EQ(zero_b->loss, base->loss);
  EXPECT_EQ(zero_b->char_acc, base->char_acc);

  for (size_t t = 1; t < s.size(); t += 2) {
    for (int64_t j = 0; j < s.tensor(t).numel(); ++j) {
      lora[s.offset(t) + j] = (j % 3 == 0 ? 0.2f : -0.1f);
    }
  }
  absl::StatusOr<LmScores> changed = m.Score(lora, *dev);
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(changed->loss, base->loss);
}

TEST_F(LegalModelTest, FineTuneLowersOwnShardLossAndWritesALoadablePeftDir) {
  absl::StatusOr<LegalExpert> e =
      FineTuneLegalExpert(*setup_->model, setup_->corpus, "MPL", TinyFineTune());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_LT(e->stats.final_loss, e->stats.initial_loss);

  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/expert-mpl";
  ASSERT_TRUE(SaveAdapterDir(e->adapter, dir).ok());
  absl::StatusOr<Adapter> loaded = LoadAdapter(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->schema.CheckSame(setup_->model->lora_schema()).ok());
  EXPECT_EQ(loaded->values, e->adapter.values);
  ASSERT_TRUE(loaded->config_json.has_value());
  absl::StatusOr<LoraConfig> cfg = ParseLoraConfig(*loaded->config_json);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->peft_type, "LORA");
  EXPECT_EQ(cfg->r, 2);
  EXPECT_EQ(cfg->lora_alpha, 4.0);
  EXPECT_EQ(cfg->target_modules, (std::vector<std::string>{"fc1", "fc2", "head"}));

  // The same seeds give the same expert; a different data seed a different one.
  absl::StatusOr<LegalExpert> again =
      FineTuneLegalExpert(*setup_->model, setup_->corpus, "MPL", TinyFineTune());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->adapter.values, e->adapter.values);

  absl::StatusOr<LegalExpert> unknown =
      FineTuneLegalExpert(*setup_->model, setup_->corpus, "NoSuchFirm", TinyFineTune());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LegalModelTest, EarlyStoppingKeepsTheBestHeldOutCheckpoint) {
  const LegalModel& m = *setup_->model;
  absl::StatusOr<Segments> train = setup_->corpus.Get(Split::kTrain, "MPL");
  ASSERT_TRUE(train.ok());
  FineTuneOptions f = TinyFineTune();
  f.steps = 2000;
  f.lr = 0.1;  // far too high on purpose: the held-out loss turns up early
  f.eval_every = 10;
  f.patience = 2;
  absl::StatusOr<FineTuneResult> r = m.FineTune(*train, f);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_GE(r->held_out_curve.size(), 3u);
  EXPECT_EQ(r->held_out_curve.front().first, 0);
  EXPECT_LT(r->steps_run, f.steps);
  EXPECT_EQ(r->steps_run, r->held_out_curve.back().first);
  // Stopped exactly `patience` evaluations after the best one, and returned that one.
  size_t best = 0;
  for (size_t i = 0; i < r->held_out_curve.size(); ++i) {
    if (r->held_out_curve[i].second < r->held_out_curve[best].second) best = i;
  }
  EXPECT_EQ(r->held_out_curve.size() - 1 - best, static_cast<size_t>(f.patience));
  EXPECT_EQ(r->best_step, r->held_out_curve[best].first);
  absl::StatusOr<TokenData> held = m.Tokenize(SplitOffHeldOut(*train, f.held_out_every).held_out);
  ASSERT_TRUE(held.ok());
  absl::StatusOr<LmScores> held_scores =
      r->best_step == 0 ? m.Score({}, *held) : m.Score(r->lora, *held);
  ASSERT_TRUE(held_scores.ok());
  EXPECT_NEAR(held_scores->loss, r->held_out_curve[best].second, 1e-5);

  // Without eval_every: exactly `steps` steps, no curve (the old behaviour).
  absl::StatusOr<FineTuneResult> fixed = m.FineTune(*train, TinyFineTune());
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->steps_run, TinyFineTune().steps);
  EXPECT_TRUE(fixed->held_out_curve.empty());

  FineTuneOptions bad = f;
  bad.patience = 0;
  EXPECT_EQ(m.FineTune(*train, bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = f;
  bad.held_out_every = 1;
  EXPECT_EQ(m.FineTune(*train, bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LegalModelTest, EvaluatorIsDeterministicAndChecksItsInput) {
  LegalOptions o = TinyOptions();
  absl::StatusOr<std::unique_ptr<Evaluator>> ev =
      MakeLegalEvaluator(o, setup_->model->lora_schema());
  ASSERT_TRUE(ev.ok()) << ev.status();
  absl::StatusOr<LegalExpert> e =
      FineTuneLegalExpert(*setup_->model, setup_->corpus, "GPL", TinyFineTune());
  ASSERT_TRUE(e.ok());
  absl::StatusOr<Scores> a = (*ev)->Evaluate({0, 0, e->adapter.values});
  absl::StatusOr<Scores> b = (*ev)->Evaluate({1, 3, e->adapter.values});
  ASSERT_TRUE(a.ok() && b.ok()) << a.status();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->count(kCharAccComponent), 1u);
  EXPECT_EQ(a->count(kLossComponent), 1u);

  // A second load hits the cache (no pretraining) and scores identically.
  absl::StatusOr<LegalSetup> reloaded = LoadLegalSetup(o);
  ASSERT_TRUE(reloaded.ok());
  EXPECT_FALSE(reloaded->model->pretrained_now());
  absl::StatusOr<std::unique_ptr<LegalEvaluator>> ev2 =
      MakeLegalEvaluator(reloaded->model, reloaded->corpus, Split::kDev);
  ASSERT_TRUE(ev2.ok());
  EXPECT_EQ(*(*ev2)->Evaluate({0, 0, e->adapter.values}), *a);

  std::vector<float> short_params(10, 0.f);
  EXPECT_EQ((*ev)->Evaluate({0, 0, short_params}).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<float> nan_params = e->adapter.values;
  nan_params[3] = std::nanf("");
  EXPECT_EQ((*ev)->Evaluate({0, 0, nan_params}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A synthetic PEFT LoRA of the model on `modules` (indices into fc1, fc2, head) with
// deterministic small values: what an expert of another rank or scaling looks like.
Adapter SyntheticLora(const LegalModel& m, const std::vector<int>& modules, int64_t rank,
                      double alpha, uint64_t seed) {
  const char* const names[] = {"fc1", "fc2", "head"};
  const Schema& own = m.lora_schema();
  std::vector<TensorSpec> specs;
  std::string targets;
  for (int i : modules) {
    const std::string prefix = absl::StrCat("base_model.model.", names[i]);
    specs.push_back({prefix + ".lora_A.weight", DType::kF32, {rank, own.tensor(2 * i).shape[1]}});
    specs.push_back(
        {prefix + ".lora_B.weight", DType::kF32, {own.tensor(2 * i + 1).shape[0], rank}});
    absl::StrAppend(&targets, targets.empty() ? "" : ", ", "\"", names[i], "\"");
  }
  Adapter a;
  a.schema = Schema(std::move(specs));
  a.values.resize(a.schema.total_params());
  uint64_t state = seed * 0x9e3779b97f4a7c15ULL + 7;
  for (float& x : a.values) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    x = static_cast<float>(static_cast<int64_t>(state >> 40) % 2001 - 1000) / 10000.f;
  }
  a.config_json = absl::StrCat(R"({"peft_type": "LORA", "r": )", rank, R"(, "lora_alpha": )", alpha,
                               R"(, "target_modules": [)", targets, "]}");
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

TEST_F(LegalModelTest, CatDecodedExpertsScoreAsTheirSummedDeltas) {
  const LegalModel& m = *setup_->model;
  absl::StatusOr<TokenData> dev = m.Tokenize(*setup_->corpus.Get(Split::kDev));
  ASSERT_TRUE(dev.ok());
  // Two rank-8 experts with different scalings (2 and 1): cat-decoded, a rank-16 LoRA.
  const Adapter e1 = SyntheticLora(m, {0, 1, 2}, 8, 16, 1);
  const Adapter e2 = SyntheticLora(m, {0, 1, 2}, 8, 8, 2);
  absl::StatusOr<Adapter> d = DecodeLora({&e1, &e2}, LoraCoefficients::PerExpert({0.6, -0.9}), {});
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->schema.tensor(0).shape[0], 16);
  absl::StatusOr<LoraPlacement> p1 = m.PlaceLora(e1.schema, e1.config_json);
  absl::StatusOr<LoraPlacement> p2 = m.PlaceLora(e2.schema, e2.config_json);
  absl::StatusOr<LoraPlacement> pd = m.PlaceLora(d->schema, d->config_json);
  ASSERT_TRUE(p1.ok() && p2.ok() && pd.ok()) << pd.status();
  EXPECT_EQ(p1->modules[2].scaling, 2.0);
  EXPECT_EQ(pd->modules[0].scaling, 1.0);

  const std::vector<PlacedLora> decoded = {{&*pd, d->values, 1}};
  const std::vector<PlacedLora> summed = {{&*p1, e1.values, 0.6}, {&*p2, e2.values, -0.9}};
  absl::StatusOr<std::vector<float>> got = m.Logits(decoded, *dev, 512);
  absl::StatusOr<std::vector<float>> want = m.Logits(summed, *dev, 512);
  absl::StatusOr<std::vector<float>> base = m.Logits({}, *dev, 512);
  ASSERT_TRUE(got.ok() && want.ok() && base.ok()) << got.status();
  ASSERT_EQ(got->size(), 512u * 256);
  EXPECT_LT(RelDiff(*got, *want), 1e-5);
  EXPECT_GT(RelDiff(*base, *want), 1e-3);  // the deltas matter

  // The evaluator built for the decoded schema and config scores the same.
  absl::StatusOr<std::unique_ptr<Evaluator>> ev =
      MakeLegalEvaluator(TinyOptions(), d->schema, d->config_json);
  ASSERT_TRUE(ev.ok()) << ev.status();
  absl::StatusOr<Scores> scores = (*ev)->Evaluate({0, 0, d->values});
  absl::StatusOr<LmScores> direct = m.Score(*pd, d->values, *dev);
  ASSERT_TRUE(scores.ok() && direct.ok()) << scores.status();
  EXPECT_EQ(scores->at(kLossComponent), direct->loss);

  // An expert on a subset of the modules (head only, rank 3), listed first: the decoded
  // tensors come in another order and fc1/fc2 hold only e1's part.
  const Adapter e3 = SyntheticLora(m, {2}, 3, 6, 3);
  absl::StatusOr<Adapter> d2 = DecodeLora({&e3, &e1}, LoraCoefficients::PerExpert({1.5, 0.5}), {});
  ASSERT_TRUE(d2.ok()) << d2.status();
  absl::StatusOr<LoraPlacement> p3 = m.PlaceLora(e3.schema, e3.config_json);
  absl::StatusOr<LoraPlacement> pd2 = m.PlaceLora(d2->schema, d2->config_json);
  ASSERT_TRUE(p3.ok() && pd2.ok()) << pd2.status();
  EXPECT_EQ(p3->modules[0].a_tensor, -1);
  const std::vector<PlacedLora> decoded2 = {{&*pd2, d2->values, 1}};
  const std::vector<PlacedLora> summed2 = {{&*p3, e3.values, 1.5}, {&*p1, e1.values, 0.5}};
  EXPECT_LT(RelDiff(*m.Logits(decoded2, *dev, 512), *m.Logits(summed2, *dev, 512)), 1e-5);
}

TEST_F(LegalModelTest, OwnAdaptersScoreTheSameThroughAnyPlacement) {
  const LegalModel& m = *setup_->model;
  absl::StatusOr<TokenData> dev = m.Tokenize(*setup_->corpus.Get(Split::kDev));
  ASSERT_TRUE(dev.ok());
  const Adapter own = MakeLegalAdapter(m, SyntheticLora(m, {0, 1, 2}, 2, 4, 9).values);
  absl::StatusOr<LoraPlacement> placed = m.PlaceLora(own.schema, own.config_json);
  absl::StatusOr<LoraPlacement> bare = m.PlaceLora(own.schema, std::nullopt);
  ASSERT_TRUE(placed.ok() && bare.ok()) << placed.status();
  absl::StatusOr<LmScores> a = m.Score(own.values, *dev);
  absl::StatusOr<LmScores> b = m.Score(*placed, own.values, *dev);
  absl::StatusOr<LmScores> c = m.Score(*bare, own.values, *dev);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->loss, b->loss);
  EXPECT_EQ(a->char_acc, b->char_acc);
  EXPECT_EQ(a->loss, c->loss);
}

TEST_F(LegalModelTest, PlacementRefusals) {
  using ::testing::HasSubstr;
  const LegalModel& m = *setup_->model;
  const Adapter r8 = SyntheticLora(m, {0, 1, 2}, 8, 16, 1);
  EXPECT_THAT(std::string(m.PlaceLora(r8.schema, std::nullopt).status().message()),
              HasSubstr("without its adapter_config.json only the model's own rank-2"));
  Adapter fc3 = r8;
  fc3.schema = Schema({{"base_model.model.fc3.lora_A.weight", DType::kF32, {8, 64}},
                       {"base_model.model.fc3.lora_B.weight", DType::kF32, {32, 8}}});
  EXPECT_THAT(std::string(m.PlaceLora(fc3.schema, fc3.config_json).status().message()),
              HasSubstr("is not on fc1, fc2 or head"));
  Adapter narrow = r8;
  narrow.schema = Schema({{"base_model.model.fc2.lora_A.weight", DType::kF32, {8, 31}},
                          {"base_model.model.fc2.lora_B.weight", DType::kF32, {32, 8}}});
  EXPECT_THAT(std::string(m.PlaceLora(narrow.schema, narrow.config_json).status().message()),
              HasSubstr("has (out, in) = (32, 31); the model's is (32, 32)"));
  Adapter rank_mismatch = r8;
  rank_mismatch.config_json = R"({"r": 4, "lora_alpha": 8})";
  EXPECT_THAT(
      std::string(m.PlaceLora(rank_mismatch.schema, rank_mismatch.config_json).status().message()),
      HasSubstr("legal model: tensor"));
}

TEST_F(LegalModelTest, FactoryErrors) {
  LegalOptions o = TinyOptions();
  Schema wrong({{"base_model.model.fc1.lora_A.weight", DType::kF32, {3, 64}}});
  EXPECT_EQ(MakeLegalEvaluator(o, wrong).status().code(), absl::StatusCode::kInvalidArgument);
  o.split = "train";
  EXPECT_EQ(MakeLegalEvaluator(o, setup_->model->lora_schema()).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = TinyOptions();
  o.corpus_dir = "/nonexistent/wxp-corpus";
  EXPECT_EQ(MakeLegalEvaluator(o, setup_->model->lora_schema()).status().code(),
            absl::StatusCode::kNotFound);
  o = TinyOptions();
  EXPECT_EQ(FineTuneLegalExpert(o, TinyFineTune()).status().code(),
            absl::StatusCode::kInvalidArgument);  // no shard
}

}  // namespace
}  // namespace wxp::legal
