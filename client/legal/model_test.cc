// The legal model and evaluator on real tensors and the real Debian licence corpus, with a
// tiny configuration so the whole file runs in seconds.
#include <cstdlib>

#include "client/legal/evaluator.h"
#include "common/adapter.h"
#include "gtest/gtest.h"

namespace wxp::legal {
namespace {

LegalOptions TinyOptions() {
  LegalOptions o;
  o.work_dir = std::string(getenv("TEST_TMPDIR")) + "/legal-work";
  o.model.context = 8;
  o.model.embed = 8;
  o.model.hidden = 32;
  o.model.lora_rank = 2;
  o.model.lora_alpha = 4;
  o.model.pretrain_steps = 150;
  o.model.pretrain_batch = 64;
  o.model.threads = 1;
  return o;
}

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
