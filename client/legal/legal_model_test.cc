#include "client/legal/legal_model.h"

#include <filesystem>
#include <fstream>

#include "client/legal/corpus.h"
#include "common/adapter.h"
#include "gtest/gtest.h"

namespace wxp::legal {
namespace {
namespace fs = std::filesystem;

TEST(CorpusTest, LicenceFamiliesFromFileNames) {
  EXPECT_EQ(LicenceFamily("GPL-2"), "GPL");
  EXPECT_EQ(LicenceFamily("LGPL-2.1"), "LGPL");
  EXPECT_EQ(LicenceFamily("Apache-2.0"), "Apache");
  EXPECT_EQ(LicenceFamily("CC0-1.0"), "CC0");
  EXPECT_EQ(LicenceFamily("Artistic"), "Artistic");
  EXPECT_EQ(LicenceFamily("MIT-style"), "MIT-style");
}

TEST(CorpusTest, DebianLicencesSplitIntoDisjointShardsAndHeldOutMixes) {
  auto c = LoadLegalCorpus("");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_GE(c->shards.size(), 2u);
  for (const auto& s : c->shards) EXPECT_GT(c->train.at(s).size(), 2000u) << s;
  EXPECT_GT(c->dev.size(), 1000u);
  EXPECT_GT(c->test.size(), c->dev.size());
  EXPECT_GT(c->base_mix.size(), 1000u);
  // A held-out block is not in any firm's training text.
  const std::string probe = c->test.substr(0, 200);
  for (const auto& s : c->shards) EXPECT_EQ(c->train.at(s).find(probe), std::string::npos);
}

TEST(CorpusTest, ClearErrors) {
  EXPECT_EQ(LoadLegalCorpus("/nonexistent/corpus").status().code(), absl::StatusCode::kNotFound);
  const std::string dir = ::testing::TempDir() + "/tiny_corpus";
  fs::remove_all(dir);
  fs::create_directories(dir + "/only-firm");
  std::ofstream(dir + "/only-firm/a.txt") << std::string(5000, 'x');
  EXPECT_EQ(LoadLegalCorpus(dir).status().code(), absl::StatusCode::kInvalidArgument);
}

// A small corpus of sub-directories (one per firm) keeps the model tests quick.
class LegalModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/legal_model");
    fs::remove_all(*dir_);
    const std::vector<std::pair<std::string, std::string>> firms = {
        {"contracts", "The Licensee shall indemnify the Licensor against all claims. "},
        {"privacy", "Personal data is processed lawfully, fairly and transparently. "},
        {"patents", "Each contributor grants a perpetual, royalty-free patent licence. "}};
    for (const auto& [name, sentence] : firms) {
      fs::create_directories(*dir_ + "/corpus/" + name);
      std::ofstream out(*dir_ + "/corpus/" + name + "/text.txt");
      for (int i = 0; i < 120; ++i) out << sentence << "Clause " << i << ". ";
    }
    corpus_ = new LegalCorpus(*LoadLegalCorpus(*dir_ + "/corpus"));
    PretrainOptions o;
    o.steps = 60;
    ASSERT_TRUE(*EnsureBaseModel(*corpus_, *dir_ + "/base", o));
    // The same configuration is reused, not retrained.
    EXPECT_FALSE(*EnsureBaseModel(*corpus_, *dir_ + "/base", o));
  }
  static std::string* dir_;
  static LegalCorpus* corpus_;
};
std::string* LegalModelTest::dir_ = nullptr;
LegalCorpus* LegalModelTest::corpus_ = nullptr;

TEST_F(LegalModelTest, FineTuningLowersTheLossOnTheFirmsShardAndWritesAPeftAdapter) {
  FinetuneOptions o;
  o.steps = 80;
  auto r = FinetuneExpert(*corpus_, *dir_ + "/base", "contracts", o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->loss_after, r->loss_before);
  ASSERT_TRUE(SaveAdapterDir(r->adapter, *dir_ + "/expert").ok());
  auto loaded = LoadAdapter(*dir_ + "/expert");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->schema, LoraSchema());
  EXPECT_EQ(loaded->values, r->adapter.values);
  auto cfg = ParseLoraConfig(*loaded->config_json);
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->peft_type, "LORA");
  EXPECT_EQ(*cfg->r, kRank);
  EXPECT_EQ(FinetuneExpert(*corpus_, *dir_ + "/base", "nope", o).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LegalModelTest, TheLoraChangesTheModelAndScoresAreDeterministic) {
  auto e = LegalEvaluator::Create(*corpus_, *dir_ + "/base", Split::kDev);
  ASSERT_TRUE(e.ok()) << e.status();
  const int64_t n = LoraSchema().total_params();
  std::vector<float> zero(n, 0.0f);
  // B = 0 (PEFT's initialisation): exactly the base model, whatever A holds.
  std::vector<float> a_only = zero;
  for (int64_t i = 0; i < kRank * kContext * kEmbed; ++i) a_only[i] = 0.5f;
  auto base = (*e)->Evaluate({0, 0, zero});
  auto same = (*e)->Evaluate({0, 0, a_only});
  ASSERT_TRUE(base.ok() && same.ok());
  EXPECT_EQ(*base, *same);
  FinetuneOptions o;
  o.steps = 40;
  auto r = FinetuneExpert(*corpus_, *dir_ + "/base", "privacy", o);
  ASSERT_TRUE(r.ok());
  auto tuned = (*e)->Evaluate({0, 0, r->adapter.values});
  ASSERT_TRUE(tuned.ok());
  EXPECT_NE(tuned->at("loss"), base->at("loss"));
  EXPECT_EQ(*(*e)->Evaluate({0, 0, r->adapter.values}), *tuned);
  EXPECT_GE(tuned->at("char_acc"), 0.0);
  EXPECT_LE(tuned->at("char_acc"), 1.0);
  EXPECT_EQ((*e)->Evaluate({0, 0, std::vector<float>(5, 0.0f)}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LegalModelTest, AMissingBaseIsAClearError) {
  auto e = LegalEvaluator::Create(*corpus_, *dir_ + "/no-base-here", Split::kTest);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(e.status().message().find("wxpctl legal pretrain"), std::string::npos);
}

}  // namespace
}  // namespace wxp::legal
