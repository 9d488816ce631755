#include "client/agent/coefficient_space.h"

#include <string>
#include <vector>

#include "common/adapter.h"
#include "common/alpha_blob.h"
#include "common/lora_synthetic.h"
#include "gtest/gtest.h"

namespace wxp::agent {
namespace {

TEST(CoefficientSpaceTest, AlphaBlobsAreCanonicalInTheCache) {
  auto cache = BlobCache::Open(::testing::TempDir() + "/alpha-cache");
  ASSERT_TRUE(cache.ok()) << cache.status();
  const std::vector<float> alpha = {0.5f, 0.25f, 1.0f};
  auto id = PutAlphaBlob(*cache, alpha);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, *AlphaBlobId(alpha));  // the server's name for the same floats
  EXPECT_TRUE(cache->Has(*id));
  EXPECT_EQ(*PutAlphaBlob(*cache, alpha), *id);  // idempotent
  auto back = ReadAlphaBlob(cache->Path(*id));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, alpha);
  EXPECT_EQ(PutAlphaBlob(*cache, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CoefficientSpaceTest, TheAssignmentsSpaceDecodesWithEachExpertsConfig) {
  const std::string dir = ::testing::TempDir() + "/agent-space";
  auto cache = BlobCache::Open(dir);
  ASSERT_TRUE(cache.ok());
  std::vector<Adapter> experts = MakeRandomLoraExperts(2, 2, 6, 2, 7);
  std::vector<std::string> files;
  wxp::v1::GetAssignmentResponse resp;
  resp.set_space(wxp::v1::EXPERT_COEFFICIENTS);
  resp.set_decoder(wxp::v1::LORA_PRODUCT);
  for (size_t j = 0; j < experts.size(); ++j) {
    files.push_back(dir + "/expert" + std::to_string(j));
    ASSERT_TRUE(SaveSafetensors(experts[j], files.back()).ok());
    resp.add_expert_adapter_configs(experts[j].config_json.value_or(""));
  }
  auto space = MakeAgentSpace(resp, files);
  ASSERT_TRUE(space.ok()) << space.status();
  EXPECT_EQ((*space)->Dimension(), 2);
  // The decoded file is what the space decodes in memory, config included.
  const std::vector<float> alpha = {0.3f, 0.9f};
  auto id = PutAlphaBlob(*cache, alpha);
  ASSERT_TRUE(id.ok());
  auto decoded = DecodeToFile(**space, cache->Path(*id), dir + "/decoded.safetensors");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  Adapter want = *(*space)->Decode(alpha);
  EXPECT_EQ(decoded->schema.Fingerprint(), want.schema.Fingerprint());
  EXPECT_EQ(decoded->config_json, want.config_json);
  EXPECT_EQ(LoadAdapter(dir + "/decoded.safetensors")->values, want.values);

  wxp::v1::GetAssignmentResponse weights = resp;
  weights.set_space(wxp::v1::WEIGHTS);
  EXPECT_EQ(MakeAgentSpace(weights, files).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp::agent
