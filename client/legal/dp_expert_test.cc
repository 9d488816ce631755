// DP fine-tuning of the legal model end to end, on the real Debian licence corpus with a
// tiny configuration: the budget is met and recorded in the PEFT directory, runs are
// reproducible, and bad budgets are refused.
#include "client/legal/dp_expert.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "client/legal/testing/tiny_options.h"
#include "common/adapter.h"
#include "common/dp_accountant.h"
#include "common/dp_record.h"
#include "gtest/gtest.h"

namespace wxp::legal {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

using legal_testing::TinyOptions;

FineTuneOptions TinyFineTune() {
  FineTuneOptions f;
  f.steps = 30;
  f.batch = 32;
  f.lr = 5e-3;
  return f;
}

class DpExpertTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LegalSetup> s = LoadLegalSetup(TinyOptions());
    ASSERT_TRUE(s.ok()) << s.status();
    setup_ = new LegalSetup(std::move(*s));
    shard_ = setup_->corpus.ShardNames().front();
    absl::StatusOr<TokenData> d =
        setup_->model->Tokenize(*setup_->corpus.Get(Split::kTrain, shard_));
    ASSERT_TRUE(d.ok());
    examples_ = d->examples();
  }
  static void TearDownTestSuite() { delete setup_; }
  absl::StatusOr<DpLegalExpert> Train(const DpBudget& b, FineTuneOptions f = TinyFineTune()) {
    return FineTuneDpLegalExpert(*setup_->model, setup_->corpus, shard_, f, b);
  }
  static LegalSetup* setup_;
  static std::string shard_;
  static int64_t examples_;
};
LegalSetup* DpExpertTest::setup_ = nullptr;
std::string DpExpertTest::shard_;
int64_t DpExpertTest::examples_ = 0;

TEST_F(DpExpertTest, MeetsTheBudgetAndRecordsItInThePeftDirectory) {
  ASSERT_GT(examples_, 1000);
  absl::StatusOr<DpLegalExpert> e = Train({4.0, 1e-5, 1.0});
  ASSERT_TRUE(e.ok()) << e.status();
  const dp::PrivacyRecord& r = e->record;
  EXPECT_LE(r.epsilon, 4.0);
  EXPECT_GT(r.epsilon, 3.99);  // calibrated to the budget, not far below it
  EXPECT_EQ(r.delta, 1e-5);
  EXPECT_EQ(r.examples, examples_);
  ASSERT_EQ(r.phases.size(), 1u);
  EXPECT_DOUBLE_EQ(r.phases[0].sample_rate, 32.0 / examples_);
  EXPECT_EQ(r.phases[0].steps, 30);
  EXPECT_EQ(r.phases[0].clip_norm, 1.0);
  EXPECT_GT(r.phases[0].noise_multiplier, 0);
  // The accountant agrees with the record.
  absl::StatusOr<dp::PrivacySpent> spent = dp::ComputeEpsilon({r.phases[0].sgm()}, 1e-5);
  ASSERT_TRUE(spent.ok());
  EXPECT_EQ(spent->epsilon, r.epsilon);
  for (float v : e->expert.adapter.values) ASSERT_TRUE(std::isfinite(v));

  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/dp-expert";
  ASSERT_TRUE(SaveAdapterDir(e->expert.adapter, dir).ok());
  absl::StatusOr<Adapter> back = LoadAdapter(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  absl::StatusOr<std::optional<dp::PrivacyRecord>> found = dp::FindPrivacyRecord(back->metadata);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->epsilon, r.epsilon);
  // The PEFT config is the model's own, untouched (the record is not in it).
  EXPECT_EQ(back->config_json, setup_->model->LoraConfigJson());
  // Still scores as a LoRA of the model.
  EXPECT_TRUE(setup_->model->Score(back->values, *setup_->model->Tokenize({"GPL text"})).ok());
}

TEST_F(DpExpertTest, ReproducibleForASeedAndNoisierForASmallerBudget) {
  absl::StatusOr<DpLegalExpert> a = Train({8.0, 1e-5, 1.0});
  absl::StatusOr<DpLegalExpert> b = Train({8.0, 1e-5, 1.0});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->expert.adapter.values, b->expert.adapter.values);
  FineTuneOptions other = TinyFineTune();
  other.seed = 2;  // other batches and noise (same initialisation)
  absl::StatusOr<DpLegalExpert> c = Train({8.0, 1e-5, 1.0}, other);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->expert.adapter.values, c->expert.adapter.values);
  absl::StatusOr<DpLegalExpert> tight = Train({1.0, 1e-5, 1.0});
  ASSERT_TRUE(tight.ok());
  EXPECT_GT(tight->record.phases[0].noise_multiplier, a->record.phases[0].noise_multiplier);
}

TEST_F(DpExpertTest, PlainDpSgdWithoutNoiseOrClippingTrains) {
  // σ = 0 and C = +inf through the model's own options: DP-SGD's machinery as plain
  // Poisson-batched training, which must lower the loss like ordinary fine-tuning does.
  FineTuneOptions f = TinyFineTune();
  f.dp = {kInf, 0, 64.0 / examples_};
  absl::StatusOr<FineTuneResult> r =
      setup_->model->FineTune(*setup_->corpus.Get(Split::kTrain, shard_), f);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->final_loss, r->initial_loss);
}

TEST_F(DpExpertTest, RefusesBadBudgets) {
  const auto bad = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(Train({0, 1e-5, 1}).status().code(), bad);
  EXPECT_EQ(Train({-1, 1e-5, 1}).status().code(), bad);
  EXPECT_EQ(Train({kInf, 1e-5, 1}).status().code(), bad);
  EXPECT_EQ(Train({4, 0, 1}).status().code(), bad);
  EXPECT_EQ(Train({4, 1, 1}).status().code(), bad);
  EXPECT_EQ(Train({4, 1e-5, 0}).status().code(), bad);
  EXPECT_EQ(Train({4, 1e-5, kInf}).status().code(), bad);
  const absl::Status big_delta = Train({4, 1.0 / examples_, 1}).status();
  EXPECT_EQ(big_delta.code(), bad);
  EXPECT_NE(big_delta.message().find("below 1/N"), std::string::npos) << big_delta;
  FineTuneOptions early = TinyFineTune();
  early.eval_every = 5;
  EXPECT_EQ(Train({4, 1e-5, 1}, early).status().code(), bad);
  // The model refuses DP settings that make no sense, and DP with early stopping.
  FineTuneOptions f = TinyFineTune();
  f.dp = {kInf, 1.0, 0.01};  // noise without a clipping bound
  EXPECT_EQ(setup_->model->FineTune(*setup_->corpus.Get(Split::kTrain, shard_), f).status().code(),
            bad);
  f.dp = {1.0, 1.0, 0.01};
  f.eval_every = 5;
  EXPECT_EQ(setup_->model->FineTune(*setup_->corpus.Get(Split::kTrain, shard_), f).status().code(),
            bad);
}

}  // namespace
}  // namespace wxp::legal
