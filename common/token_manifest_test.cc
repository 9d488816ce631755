#include "common/token_manifest.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wxp {
namespace {

using ::testing::HasSubstr;

TokenManifestExpert Expert(char c, const std::string& arch, const std::string& config) {
  const std::string base(64, c);
  return {std::string(64, static_cast<char>(c + 1)),
          R"({"r": 2, "base_model_name_or_path": "m", "wxp_base_model_blob_id": ")" + base + "\"}",
          base,
          "m",
          {arch, config}};
}

TokenManifest Sample() {
  TokenManifest m;
  m.combination = TokenCombination::kMixture;
  m.utility = 0.5;
  m.experts = {Expert('a', "mlp", "wxp-legal-lm-v1 context=8 embed=8"),
               Expert('c', "transformer", "wxp-legal-transformer-v1 context=16 layers=1")};
  m.alpha = {3, 1};
  return m;
}

TEST(TokenManifestTest, RoundTripsWithWeights) {
  absl::StatusOr<std::string> text = SerializeTokenManifest(Sample());
  ASSERT_TRUE(text.ok()) << text.status();
  absl::StatusOr<TokenManifest> back = ParseTokenManifest(*text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->combination, TokenCombination::kMixture);
  EXPECT_EQ(back->alpha, Sample().alpha);
  EXPECT_EQ(back->weights, (std::vector<double>{0.75, 0.25}));
  ASSERT_EQ(back->experts.size(), 2u);
  EXPECT_EQ(back->experts[1].architecture.architecture, "transformer");
  EXPECT_EQ(back->experts[0].adapter_config_json, Sample().experts[0].adapter_config_json);
  EXPECT_EQ(*SerializeTokenManifest(*back), *text);
}

// Each edit of a valid manifest's JSON, and what the refusal must say.
TEST(TokenManifestTest, MalformedManifestsAreRefusedSayingWhy) {
  const nlohmann::json good = nlohmann::json::parse(*SerializeTokenManifest(Sample()));
  using Edit = std::function<void(nlohmann::json&)>;
  const std::vector<std::pair<Edit, std::string>> cases = {
      {[](nlohmann::json& j) { j = nlohmann::json::array(); }, "not a JSON object"},
      {[](nlohmann::json& j) { j["format"] = "peft"; }, "format"},
      {[](nlohmann::json& j) { j["version"] = 2; }, "version"},
      {[](nlohmann::json& j) { j.erase("combination"); }, "'combination'"},
      {[](nlohmann::json& j) { j["combination"] = "softmax"; }, "unknown token combination"},
      {[](nlohmann::json& j) { j["experts"] = nlohmann::json::array(); }, "no experts"},
      {[](nlohmann::json& j) { j["experts"][0] = 5; }, "not an object"},
      {[](nlohmann::json& j) { j["experts"][0]["adapter_blob_id"] = "xyz"; }, "blob id"},
      {[](nlohmann::json& j) { j["experts"][0].erase("architecture"); }, "'architecture'"},
      {[](nlohmann::json& j) { j["experts"][0]["architecture"] = "rnn"; },
       "unknown architecture 'rnn'"},
      {[](nlohmann::json& j) { j["experts"][1]["architecture"] = "mlp"; },
       "not of architecture 'mlp'"},
      {[](nlohmann::json& j) { j["experts"][0]["base_model_blob_id"] = std::string(64, 'f'); },
       "names another base model blob"},
      {[](nlohmann::json& j) { j["experts"][0]["adapter_config_json"] = "{}"; },
       "wxp_base_model_blob_id"},
      {[](nlohmann::json& j) { j["alpha"] = {1}; }, "alpha has 1 entries for 2 experts"},
      {[](nlohmann::json& j) { j["alpha"][0] = "x"; }, "not a number"},
      {[](nlohmann::json& j) {
         j["weights"] = {0.5, 0.5};
       },
       "weights[0]"},
      {[](nlohmann::json& j) { j["weights"] = {1}; }, "differ in length"},
      {[](nlohmann::json& j) { j["utility"] = "high"; }, "'utility'"},
  };
  for (const auto& [edit, why] : cases) {
    nlohmann::json j = good;
    edit(j);
    absl::StatusOr<TokenManifest> m = ParseTokenManifest(j.dump());
    ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << why;
    EXPECT_THAT(m.status().message(), HasSubstr(why));
  }
  EXPECT_EQ(ParseTokenManifest("{not json").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTokenManifest("").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp
