// The built-in evaluator's per-family components on a hand-made corpus whose two families
// the base model finds very different: "pattern" (a short repeated phrase, which the base
// learns from the general split) and "noise" (random bytes, which nothing predicts), plus a
// family too small to have a dev part. Each char_acc/<family> must be that family's slice
// of the dev split, and the mix must be what it was before families existed.
#include "client/legal/evaluator.h"

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace wxp::legal {
namespace {

LegalOptions TinyOptions(const std::string& corpus_dir) {
  LegalOptions o;
  o.corpus_dir = corpus_dir;
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

// Three firms' directories: 30 chunks of pattern, 30 of noise, and a 100-byte shard.
std::string WriteCorpus() {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/families";
  std::filesystem::create_directories(dir + "/pattern");
  std::filesystem::create_directories(dir + "/noise");
  std::filesystem::create_directories(dir + "/tiny");
  std::string pattern, noise, tiny(100, 'x');
  while (pattern.size() < 30 * kChunkBytes) pattern += "the licensee shall keep this notice. ";
  uint64_t state = 12345;
  for (int i = 0; i < 30 * kChunkBytes; ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    noise.push_back(static_cast<char>(32 + (state >> 33) % 95));
  }
  EXPECT_TRUE(WriteFileAtomically(dir + "/pattern/text", pattern).ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/noise/text", noise).ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/tiny/text", tiny).ok());
  return dir;
}

class LegalEvaluatorFamiliesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LegalSetup> s = LoadLegalSetup(TinyOptions(WriteCorpus()));
    ASSERT_TRUE(s.ok()) << s.status();
    setup_ = new LegalSetup(std::move(*s));
  }
  static void TearDownTestSuite() { delete setup_; }

  // The family's dev part scored on its own, as a check of the slice.
  static LmScores Alone(const std::string& family) {
    absl::StatusOr<Segments> part = setup_->corpus.GetForShard(Split::kDev, family);
    EXPECT_TRUE(part.ok()) << part.status();
    absl::StatusOr<TokenData> data = setup_->model->Tokenize(*part);
    EXPECT_TRUE(data.ok());
    absl::StatusOr<LmScores> s = setup_->model->Score({}, *data);
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }

  static LegalSetup* setup_;
};
LegalSetup* LegalEvaluatorFamiliesTest::setup_ = nullptr;

TEST_F(LegalEvaluatorFamiliesTest, EachFamilyIsScoredOnItsOwnSliceOfTheMix) {
  ASSERT_TRUE(setup_->corpus.GetForShard(Split::kDev, "tiny")->empty())
      << "the test needs a family without a dev part";
  absl::StatusOr<std::unique_ptr<LegalEvaluator>> ev =
      MakeLegalEvaluator(setup_->model, setup_->corpus, Split::kDev);
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_EQ((*ev)->families(), (std::vector<std::string>{"noise", "pattern"}));
  const std::vector<float> base;  // the base model alone: no training noise in the check
  absl::StatusOr<Scores> scores = (*ev)->Evaluate({0, 0, base});
  ASSERT_TRUE(scores.ok()) << scores.status();
  EXPECT_EQ(scores->size(), 4u) << "char_acc, loss and one per family with a dev part";
  ASSERT_EQ(scores->count("char_acc/noise"), 1u);
  ASSERT_EQ(scores->count("char_acc/pattern"), 1u);
  EXPECT_EQ(scores->count("char_acc/tiny"), 0u) << "no dev bytes, no accuracy";
  EXPECT_EQ(FamilyCharAccComponent("GPL"), "char_acc/GPL");

  // The families are told apart: the base predicts the repeated phrase, not the noise.
  const double noise = scores->at("char_acc/noise"), pattern = scores->at("char_acc/pattern");
  EXPECT_GT(pattern, noise + 0.2);
  // Each equals its part scored alone (within one byte: a batch of other rows may round a
  // logit differently and flip an argmax tie).
  const LmScores noise_alone = Alone("noise"), pattern_alone = Alone("pattern");
  EXPECT_NEAR(noise, noise_alone.char_acc, 1.0 / noise_alone.positions);
  EXPECT_NEAR(pattern, pattern_alone.char_acc, 1.0 / pattern_alone.positions);
  // The mix is the positions-weighted mean of the families, and bit for bit the score of
  // the whole split as one text (what char_acc was before families).
  const int64_t n = noise_alone.positions + pattern_alone.positions;
  EXPECT_EQ(n, (*ev)->positions());
  EXPECT_NEAR(scores->at(kCharAccComponent),
              (noise * noise_alone.positions + pattern * pattern_alone.positions) / n, 1e-12);
  absl::StatusOr<TokenData> mix = setup_->model->Tokenize(*setup_->corpus.Get(Split::kDev));
  ASSERT_TRUE(mix.ok());
  absl::StatusOr<LmScores> whole = setup_->model->Score({}, *mix);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(scores->at(kCharAccComponent), whole->char_acc);
  EXPECT_EQ(scores->at(kLossComponent), whole->loss);
}

TEST_F(LegalEvaluatorFamiliesTest, PartsAreCountedAcrossChunksAndCheckedForShape) {
  const LegalModel& m = *setup_->model;
  // Enough positions for several 4096-row chunks, so parts straddle chunk borders.
  Segments text;
  for (int i = 0; i < 6; ++i) text.push_back(*ReadFile(WriteCorpus() + "/pattern/text"));
  absl::StatusOr<TokenData> data = m.Tokenize(text);
  ASSERT_TRUE(data.ok());
  const int64_t n = data->positions();
  ASSERT_GT(n, 3 * 4096);
  const std::vector<int64_t> ends = {0, 4000, 4000, 4097, n - 1, n};  // empty parts included
  absl::StatusOr<LmScores> parts = m.Score(m.own_placement(), {}, *data, ends);
  ASSERT_TRUE(parts.ok()) << parts.status();
  absl::StatusOr<LmScores> whole = m.Score({}, *data);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(parts->char_acc, whole->char_acc);
  EXPECT_EQ(parts->loss, whole->loss);
  EXPECT_TRUE(whole->part_correct.empty());
  ASSERT_EQ(parts->part_correct.size(), ends.size());
  int64_t sum = 0;
  for (size_t j = 0; j < ends.size(); ++j) {
    const int64_t len = ends[j] - (j ? ends[j - 1] : 0);
    EXPECT_GE(parts->part_correct[j], 0);
    EXPECT_LE(parts->part_correct[j], len) << j;
    if (len == 0) {
      EXPECT_EQ(parts->part_correct[j], 0) << j;
    }
    sum += parts->part_correct[j];
  }
  EXPECT_EQ(static_cast<double>(sum) / n, whole->char_acc);
  // One part is the whole split.
  absl::StatusOr<LmScores> again = m.Score(m.own_placement(), {}, *data, {n});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->part_correct, std::vector<int64_t>{sum});

  const std::vector<std::vector<int64_t>> bad = {{}, {n - 1}, {n + 1}, {-1, n}, {10, 5, n}};
  for (size_t j = 0; j < bad.size(); ++j) {
    EXPECT_EQ(m.Score(m.own_placement(), {}, *data, bad[j]).status().code(),
              absl::StatusCode::kInvalidArgument)
        << j;
  }
}

}  // namespace
}  // namespace wxp::legal
