#include "common/lora_layout.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

using ::testing::HasSubstr;

constexpr char kQ[] = "base_model.model.layers.0.q_proj";
constexpr char kV[] = "base_model.model.layers.0.v_proj";

// An adapter over `tensors` (values zero) with the given config, if any.
Adapter Make(std::vector<TensorSpec> tensors, const char* config) {
  Adapter a;
  a.schema = Schema(std::move(tensors));
  a.values.assign(a.schema.total_params(), 0.f);
  if (config != nullptr) a.config_json = config;
  return a;
}

TensorSpec A(const std::string& module, int64_t r, int64_t in) {
  return {module + ".lora_A.weight", DType::kF32, {r, in}};
}
TensorSpec B(const std::string& module, int64_t out, int64_t r) {
  return {module + ".lora_B.weight", DType::kF32, {out, r}};
}

std::string Error(const Adapter& a) {
  absl::StatusOr<LoraLayout> l = ParseLoraLayout(a);
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument) << l.status();
  return std::string(l.status().message());
}

TEST(LoraLayoutTest, PairsFactorsAndAppliesPatternsBySuffix) {
  const Adapter a = Make({A(kQ, 4, 6), B(kQ, 5, 4), B(kV, 7, 2), A(kV, 2, 6)},
                         R"({"r": 4, "lora_alpha": 8, "fan_in_fan_out": true,
                             "base_model_name_or_path": "m",
                             "rank_pattern": {"v_proj": 2}, "alpha_pattern": {"v_proj": 6}})");
  absl::StatusOr<LoraLayout> l = ParseLoraLayout(a);
  ASSERT_TRUE(l.ok()) << l.status();
  ASSERT_EQ(l->modules.size(), 2u);
  EXPECT_EQ(l->modules[0].name, kQ);
  EXPECT_EQ(l->modules[0].rank, 4);
  EXPECT_EQ(l->modules[0].in_features, 6);
  EXPECT_EQ(l->modules[0].out_features, 5);
  EXPECT_EQ(l->modules[0].scaling, 2.0);
  EXPECT_EQ(l->modules[1].name, kV);
  EXPECT_EQ(l->modules[1].a_tensor, 3u);
  EXPECT_EQ(l->modules[1].b_tensor, 2u);
  EXPECT_EQ(l->modules[1].scaling, 3.0);
  EXPECT_EQ(l->base_model, "m");
  EXPECT_EQ(l->fan_in_fan_out, true);
  EXPECT_EQ(l->Find(kV), 1);
  EXPECT_EQ(l->Find("nope"), -1);
  EXPECT_EQ(PeftModuleKey(kQ), "layers.0.q_proj");
}

TEST(LoraLayoutTest, RsLoraAndNoConfig) {
  absl::StatusOr<LoraLayout> rs = ParseLoraLayout(
      Make({A(kQ, 4, 6), B(kQ, 5, 4)}, R"({"r": 4, "lora_alpha": 8, "use_rslora": true})"));
  ASSERT_TRUE(rs.ok()) << rs.status();
  EXPECT_EQ(rs->modules[0].scaling, 4.0);
  absl::StatusOr<LoraLayout> bare = ParseLoraLayout(Make({A(kQ, 3, 6), B(kQ, 5, 3)}, nullptr));
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->modules[0].scaling, 1.0);
  EXPECT_FALSE(bare->fan_in_fan_out.has_value());
}

TEST(LoraLayoutTest, RefusesWhatIsNotAPlainLora) {
  const char* cfg = R"({"r": 4, "lora_alpha": 8})";
  EXPECT_THAT(Error(Make({A(kQ, 4, 6)}, cfg)),
              HasSubstr("'" + std::string(kQ) + ".lora_A.weight' has no matching"));
  EXPECT_THAT(Error(Make({B(kQ, 5, 4)}, cfg)),
              HasSubstr("'" + std::string(kQ) + ".lora_B.weight' has no matching"));
  EXPECT_THAT(Error(Make({A(kQ, 4, 6), B(kQ, 5, 3)}, cfg)), HasSubstr("disagree on the rank"));
  EXPECT_THAT(Error(Make({A(kQ, 2, 6), B(kQ, 5, 2)}, cfg)),
              HasSubstr("has rank 2 but adapter_config.json gives the module r = 4"));
  EXPECT_THAT(Error(Make({{"base_model.model.wte.lora_embedding_A", DType::kF32, {4, 9}}}, cfg)),
              HasSubstr("LoRA embedding factor"));
  EXPECT_THAT(Error(Make({A(kQ, 4, 6),
                          B(kQ, 5, 4),
                          {std::string(kQ) + ".lora_magnitude_vector", DType::kF32, {5}}},
                         cfg)),
              HasSubstr("DoRA magnitude vector"));
  EXPECT_THAT(
      Error(Make({A(kQ, 4, 6), B(kQ, 5, 4)}, R"({"r": 4, "lora_alpha": 8, "use_dora": true})")),
      HasSubstr("use_dora is true"));
  EXPECT_THAT(Error(Make({A(kQ, 4, 6), B(kQ, 5, 4), {"lm_head.weight", DType::kF32, {5, 6}}}, cfg)),
              HasSubstr("tensor 'lm_head.weight' is not a LoRA factor"));
  EXPECT_THAT(Error(Make({A(kQ, 4, 6), B(kQ, 5, 4)},
                         R"({"r": 4, "lora_alpha": 8, "rank_pattern": {"^.*q_proj$": 4}})")),
              HasSubstr("regular-expression keys are not supported"));
  // JSON cannot spell an infinite lora_alpha (1e400 is not valid JSON to the parser) and
  // alpha / r with r >= 1 cannot overflow, so the non-finite-scaling check is a backstop.
  EXPECT_THAT(Error(Make({A(kQ, 4, 6), B(kQ, 5, 4)}, R"({"r": 4, "lora_alpha": 1e400})")),
              HasSubstr("not valid JSON"));
  EXPECT_THAT(
      Error(Make({{std::string(kQ) + ".lora_A.weight", DType::kF32, {24}}, B(kQ, 5, 4)}, cfg)),
      HasSubstr("not 2-D"));
}

TEST(LoraLayoutTest, CompatibleExpertsMayDifferInRankScalingAndModules) {
  const Adapter e0 = Make({A(kQ, 4, 6), B(kQ, 5, 4)}, R"({"r": 4, "lora_alpha": 8})");
  const Adapter e1 =
      Make({A(kV, 8, 6), B(kV, 3, 8), A(kQ, 8, 6), B(kQ, 5, 8)}, R"({"r": 8, "lora_alpha": 4})");
  absl::StatusOr<LoraExpertSet> set = CheckCompatibleExperts({&e0, &e1});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->modules, (std::vector<std::string>{kQ, kV}));
  EXPECT_EQ(set->out_features, (std::vector<int64_t>{5, 3}));
  EXPECT_EQ(set->layouts[1].modules[1].scaling, 0.5);
}

TEST(LoraLayoutTest, IncompatibleExpertsAreNamed) {
  const Adapter e0 = Make({A(kQ, 4, 6), B(kQ, 5, 4)},
                          R"({"r": 4, "lora_alpha": 8, "base_model_name_or_path": "gpt2"})");
  const Adapter wide = Make({A(kQ, 4, 7), B(kQ, 5, 4)}, R"({"r": 4, "lora_alpha": 8})");
  const Adapter other = Make({A(kQ, 4, 6), B(kQ, 5, 4)},
                             R"({"r": 4, "lora_alpha": 8, "base_model_name_or_path": "llama"})");
  const Adapter conv =
      Make({A(kQ, 4, 6), B(kQ, 5, 4)}, R"({"r": 4, "lora_alpha": 8, "fan_in_fan_out": true})");
  const Adapter linear =
      Make({A(kQ, 4, 6), B(kQ, 5, 4)}, R"({"r": 4, "lora_alpha": 8, "fan_in_fan_out": false})");
  const Adapter broken = Make({A(kQ, 4, 6)}, R"({"r": 4, "lora_alpha": 8})");
  EXPECT_THAT(CheckCompatibleExperts({&e0, &wide}).status().message(),
              HasSubstr("experts 0 and 1 disagree on module"));
  EXPECT_THAT(CheckCompatibleExperts({&e0, &other}).status().message(),
              HasSubstr("different base models ('gpt2' vs 'llama')"));
  // The base model is compared only when every expert names one.
  const Adapter bare = Make({A(kQ, 4, 6), B(kQ, 5, 4)}, nullptr);
  EXPECT_TRUE(CheckCompatibleExperts({&e0, &other, &bare}).ok());
  EXPECT_THAT(CheckCompatibleExperts({&conv, &linear}).status().message(),
              HasSubstr("fan_in_fan_out"));
  EXPECT_THAT(CheckCompatibleExperts({&e0, &broken}).status().message(),
              HasSubstr("expert 1: tensor"));
  EXPECT_EQ(CheckCompatibleExperts({}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp
