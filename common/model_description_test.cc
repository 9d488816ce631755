#include "common/model_description.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

using ::testing::HasSubstr;

constexpr char kMlpConfig[] =
    "wxp-legal-lm-v1 context=12 embed=12 hidden=128 lora_rank=8 lora_alpha=16 "
    "pretrain_steps=300 pretrain_batch=128 pretrain_lr=0.0030000000000000001 seed=20240607";

TEST(ModelDescriptionTest, ReadsBothArchitectures) {
  absl::StatusOr<ModelDescription> d = ParseModelDescription(
      {{"format", "pt"}, {kModelConfigKey, kMlpConfig}, {kModelArchitectureKey, "mlp"}});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->architecture, "mlp");
  EXPECT_EQ(d->config, kMlpConfig);
  EXPECT_TRUE(
      CheckModelDescription({"transformer", "wxp-legal-transformer-v1 context=64 layers=2"}).ok());
}

void ExpectRefused(const SafetensorsMetadata& m, const std::string& why) {
  absl::StatusOr<ModelDescription> d = ParseModelDescription(m);
  ASSERT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << why;
  EXPECT_THAT(d.status().message(), HasSubstr(why));
}

TEST(ModelDescriptionTest, MalformedDescriptionsAreRefusedSayingWhy) {
  ExpectRefused({{kModelConfigKey, kMlpConfig}}, "no wxp_legal_architecture");
  ExpectRefused({{kModelArchitectureKey, "mlp"}}, "no wxp_legal_config");
  ExpectRefused({}, "no wxp_legal_architecture");
  ExpectRefused({{kModelArchitectureKey, "rnn"}, {kModelConfigKey, kMlpConfig}},
                "unknown architecture 'rnn'");
  ExpectRefused({{kModelArchitectureKey, "transformer"}, {kModelConfigKey, kMlpConfig}},
                "not of architecture 'transformer'");
  ExpectRefused({{kModelArchitectureKey, "mlp"}, {kModelConfigKey, ""}}, "not of architecture");
  ExpectRefused({{kModelArchitectureKey, "mlp"}, {kModelConfigKey, "wxp-legal-lm-v1"}},
                "no settings");
  ExpectRefused({{kModelArchitectureKey, "mlp"}, {kModelConfigKey, "wxp-legal-lm-v1 embed"}},
                "not key=value");
  ExpectRefused({{kModelArchitectureKey, "mlp"}, {kModelConfigKey, "wxp-legal-lm-v1 embed=x"}},
                "'embed' is not a number");
  ExpectRefused({{kModelArchitectureKey, "mlp"}, {kModelConfigKey, "wxp-legal-lm-v1 embed=inf"}},
                "'embed' is not a number");
  ExpectRefused(
      {{kModelArchitectureKey, "mlp"}, {kModelConfigKey, "wxp-legal-lm-v1 embed=1 embed=2"}},
      "'embed' twice");
  ExpectRefused({{kModelArchitectureKey, "mlp"}, {kModelConfigKey, "wxp-legal-lm-v1  embed=1"}},
                "not key=value");
}

TEST(ModelDescriptionTest, BaseModelBlobIdFromAdapterConfig) {
  const std::string id(64, 'a');
  absl::StatusOr<std::string> got =
      BaseModelBlobId(R"({"r": 8, "wxp_base_model_blob_id": ")" + id + R"("})");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, id);
  for (const char* bad : {"[1]", "not json", R"({"r": 8})", R"({"wxp_base_model_blob_id": 3})",
                          R"({"wxp_base_model_blob_id": "ABC"})"}) {
    EXPECT_EQ(BaseModelBlobId(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace wxp
