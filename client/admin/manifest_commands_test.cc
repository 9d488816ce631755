// `wxpctl manifest inspect|eval` on a real export directory (a manifest and the experts'
// blobs), and what malformed manifests and blobs get: a one-line error, exit 1.
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "client/admin/run_for_test.h"
#include "client/legal/evaluator.h"
#include "client/legal/mixture_evaluator.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "common/model_description.h"
#include "common/sha256.h"
#include "common/token_manifest.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wxp::admin {
namespace {

class ManifestCommandsTest : public ::testing::Test {
 protected:
  // An export directory of two MLP experts (two firms' fine-tunes of one tiny base).
  static void SetUpTestSuite() {
    const std::string tmp = getenv("TEST_TMPDIR");
    dir_ = new std::string(tmp + "/export");
    ASSERT_TRUE(MakeDirs(*dir_).ok());
    legal::LegalOptions o;
    o.work_dir = tmp + "/vendor";
    o.model.context = 8;
    o.model.embed = 8;
    o.model.hidden = 32;
    o.model.lora_rank = 2;
    o.model.lora_alpha = 4;
    o.model.pretrain_steps = 60;
    o.model.threads = 1;
    absl::StatusOr<legal::LegalSetup> setup = legal::LoadLegalSetup(o);
    ASSERT_TRUE(setup.ok()) << setup.status();
    TokenManifest m;
    m.combination = TokenCombination::kLogLinear;
    int seed = 1;
    for (const char* shard : {"GPL", "MPL"}) {
      legal::FineTuneOptions ft;
      ft.steps = 10;
      ft.seed = ft.init_seed = seed++;
      absl::StatusOr<legal::LegalExpert> e =
          legal::FineTuneLegalExpert(*setup->model, setup->corpus, shard, ft);
      ASSERT_TRUE(e.ok()) << e.status();
      const std::string expert = tmp + "/expert-" + shard;
      ASSERT_TRUE(legal::SaveTokenExpertDir(*setup->model, e->adapter, expert).ok());
      TokenManifestExpert x;
      x.adapter_config_json = *ReadFile(expert + "/" + kPeftConfigFile);
      for (auto [file, id] :
           {std::pair{std::string(kPeftWeightsFile), &x.adapter_blob_id},
            std::pair{std::string(kExpertBaseModelFile), &x.base_model_blob_id}}) {
        const std::string bytes = *ReadFile(expert + "/" + file);
        *id = Sha256Hex(bytes);
        ASSERT_TRUE(WriteFileAtomically(*dir_ + "/" + *id + ".safetensors", bytes).ok());
      }
      x.base_model = setup->model->base_model_name();
      x.architecture = *ParseModelDescription(
          SafetensorsFile::Open(expert + "/" + kExpertBaseModelFile)->metadata());
      m.experts.push_back(x);
    }
    m.alpha = {0.75f, 0.5f};
    ASSERT_TRUE(
        WriteFileAtomically(*dir_ + "/" + kTokenManifestFile, *SerializeTokenManifest(m)).ok());
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string* dir_;
};
std::string* ManifestCommandsTest::dir_ = nullptr;

TEST_F(ManifestCommandsTest, InspectShowsExpertsArchitecturesAndWeights) {
  CliOutput r = RunCli({"manifest", "inspect", *dir_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("2 experts, combination log_linear"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mlp"), std::string::npos) << r.out;
  CliOutput j = RunCli({"manifest", "inspect", *dir_ + "/" + kTokenManifestFile, "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_TRUE(ParseTokenManifest(j.out).ok()) << j.out;
}

TEST_F(ManifestCommandsTest, EvalScoresTheCombinationAsTheEvaluatorDoes) {
  const std::string work = std::string(getenv("TEST_TMPDIR")) + "/eval-work";
  CliOutput r = RunCli({"manifest", "eval", *dir_, "--work_dir", work, "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const double acc = j["scores"]["char_acc"];
  EXPECT_GT(acc, 0.05);
  EXPECT_TRUE(j["scores"].contains("loss"));
  EXPECT_TRUE(j["scores"].contains("char_acc/GPL"));
}

// --alpha scores other coefficients over the same experts in one run, one line each: the
// manifest's own first (the same scores as without the flag), then each expert alone, which
// is the same model under either combination.
TEST_F(ManifestCommandsTest, EvalScoresEachAlphaOfTheFlagOnItsOwnLine) {
  const std::string work = std::string(getenv("TEST_TMPDIR")) + "/eval-alpha-work";
  CliOutput own = RunCli({"manifest", "eval", *dir_, "--work_dir", work, "--threads", "1"});
  ASSERT_EQ(own.code, 0) << own.err;
  std::map<std::string, std::vector<nlohmann::json>> lines;
  for (const char* c : {"log_linear", "mixture"}) {
    CliOutput r = RunCli({"manifest", "eval", *dir_, "--work_dir", work, "--threads", "1",
                          "--alpha", "0.75,0.5;1,0;0,1", "--combination", c});
    ASSERT_EQ(r.code, 0) << r.err;
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      lines[c].push_back(nlohmann::json::parse(line));
    }
    ASSERT_EQ(lines[c].size(), 3u) << r.out;
    EXPECT_EQ(lines[c][1]["alpha"], nlohmann::json::parse("[1.0, 0.0]"));
    EXPECT_EQ(lines[c][0]["combination"], c);
  }
  // The manifest's combination is log_linear and its alpha (0.75, 0.5).
  EXPECT_EQ(lines["log_linear"][0]["scores"], nlohmann::json::parse(own.out)["scores"]);
  EXPECT_NE(lines["mixture"][0]["scores"], lines["log_linear"][0]["scores"]);
  for (int j : {1, 2}) {
    EXPECT_EQ(lines["mixture"][j]["scores"]["char_acc"],
              lines["log_linear"][j]["scores"]["char_acc"])
        << "expert " << j - 1 << " alone";
  }
  // Refused before any work: a vector of the wrong length, a word, an unknown combination.
  for (const std::vector<std::string>& extra : {std::vector<std::string>{"--alpha", "1,0,0"},
                                                {"--alpha", "1,zero"},
                                                {"--alpha", "1,0;1"},
                                                {"--combination", "product"}}) {
    std::vector<std::string> args = {"manifest", "eval", *dir_, "--work_dir", work};
    args.insert(args.end(), extra.begin(), extra.end());
    CliOutput r = RunCli(args);
    EXPECT_EQ(r.code, 2) << extra[1];
    EXPECT_NE(r.err.find(extra[0]), std::string::npos) << r.err;
  }
}

TEST_F(ManifestCommandsTest, GenerateContinuesThePromptTheSameWayEachTime) {
  const std::string work = std::string(getenv("TEST_TMPDIR")) + "/generate-work";
  const std::vector<std::string> args = {"manifest",     "generate",  *dir_, "--work_dir",
                                         work,           "--threads", "1",   "--prompt",
                                         "This licence", "--bytes",   "30"};
  CliOutput r = RunCli(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("This licence", 0), 0u) << r.out;
  EXPECT_EQ(r.out.size(), std::string("This licence").size() + 30 + 1) << r.out;
  EXPECT_EQ(RunCli(args).out, r.out);
  std::vector<std::string> sampled = args;
  sampled.insert(sampled.end(), {"--temperature", "0.8", "--seed", "3"});
  CliOutput s = RunCli(sampled);
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(RunCli(sampled).out, s.out);
  // Usage errors.
  EXPECT_EQ(RunCli({"manifest", "generate", *dir_}).code, 2);  // no --prompt
  for (const std::vector<std::string>& bad : {std::vector<std::string>{"--bytes", "0"},
                                              {"--bytes", "4097"},
                                              {"--temperature", "-1"},
                                              {"--seed", "x"},
                                              {"--alpha", "1,0;0,1"}}) {
    std::vector<std::string> a = args;
    a.insert(a.end(), bad.begin(), bad.end());
    EXPECT_EQ(RunCli(a).code, 2) << bad[0] << " " << bad[1];
  }
}

TEST_F(ManifestCommandsTest, MalformedManifestsAndBlobsAreRefusedInOneLine) {
  const std::string tmp = getenv("TEST_TMPDIR");
  const std::string bad = tmp + "/bad.json";
  nlohmann::json m = nlohmann::json::parse(*ReadFile(*dir_ + "/" + kTokenManifestFile));
  m["experts"][1]["architecture"] = "rnn";
  ASSERT_TRUE(WriteFileAtomically(bad, m.dump()).ok());
  for (const char* cmd : {"inspect", "eval"}) {
    CliOutput r = RunCli({"manifest", cmd, bad});
    EXPECT_EQ(r.code, 1) << cmd;
    EXPECT_EQ(r.err.rfind("wxpctl: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("unknown architecture 'rnn'"), std::string::npos) << r.err;
  }
  ASSERT_TRUE(WriteFileAtomically(bad, "{\"format\": ").ok());
  CliOutput r = RunCli({"manifest", "inspect", bad});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not a JSON object"), std::string::npos) << r.err;
  // A blob file that is not the blob its name says.
  const std::string copy = tmp + "/export-copy";
  std::filesystem::copy(*dir_, copy);
  const TokenManifest good = *ParseTokenManifest(*ReadFile(*dir_ + "/" + kTokenManifestFile));
  ASSERT_TRUE(
      WriteFileAtomically(copy + "/" + good.experts[0].adapter_blob_id + ".safetensors", "tampered")
          .ok());
  r = RunCli({"manifest", "eval", copy, "--work_dir", tmp + "/w"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is not blob"), std::string::npos) << r.err;
  // Usage.
  EXPECT_EQ(RunCli({"manifest"}).code, 2);
  EXPECT_EQ(RunCli({"manifest", "frobnicate"}).code, 2);
  EXPECT_EQ(RunCli({"manifest", "inspect"}).code, 2);
  EXPECT_EQ(RunCli({"manifest", "eval", *dir_, "--split", "train"}).code, 2);
}

}  // namespace
}  // namespace wxp::admin
