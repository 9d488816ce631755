#include "common/space_proto.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

using ::testing::HasSubstr;

TEST(SpaceProtoTest, UnspecifiedAndWeightsAreTheWeightsSpace) {
  for (v1::ParticleSpaceKind k : {v1::PARTICLE_SPACE_KIND_UNSPECIFIED, v1::WEIGHTS}) {
    absl::StatusOr<ParticleSpaceOptions> o =
        SpaceOptionsFromProto(k, v1::COEFFICIENT_DECODER_UNSPECIFIED, 0, false);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->kind, SpaceKind::kWeights);
  }
}

TEST(SpaceProtoTest, EveryDecoderMapsToItsOwn) {
  auto decode = [](v1::CoefficientDecoder d) {
    return SpaceOptionsFromProto(v1::EXPERT_COEFFICIENTS, d, 6, true);
  };
  ASSERT_TRUE(decode(v1::LINEAR_AB).ok());
  EXPECT_EQ(decode(v1::LINEAR_AB)->decoder, LoraDecoder::kLinearAB);
  EXPECT_EQ(decode(v1::LORA_PRODUCT)->decoder, LoraDecoder::kLoraProduct);
  EXPECT_EQ(decode(v1::LORA_PRODUCT)->svd_rank, 0);  // only the svd decoder takes a rank
  const absl::StatusOr<ParticleSpaceOptions> svd = decode(v1::LORA_PRODUCT_SVD);
  ASSERT_TRUE(svd.ok());
  EXPECT_EQ(svd->kind, SpaceKind::kExpertCoefficients);
  EXPECT_EQ(svd->decoder, LoraDecoder::kLoraProductSvd);
  EXPECT_EQ(svd->svd_rank, 6);
  EXPECT_TRUE(svd->per_module);
}

TEST(SpaceProtoTest, UnknownValuesAreErrorsNotDefaults) {
  absl::StatusOr<ParticleSpaceOptions> no_decoder =
      SpaceOptionsFromProto(v1::EXPERT_COEFFICIENTS, v1::COEFFICIENT_DECODER_UNSPECIFIED, 0, false);
  EXPECT_EQ(no_decoder.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_decoder.status().message(), HasSubstr("needs a known decoder"));
  absl::StatusOr<ParticleSpaceOptions> odd_decoder = SpaceOptionsFromProto(
      v1::EXPERT_COEFFICIENTS, static_cast<v1::CoefficientDecoder>(9), 0, false);
  EXPECT_THAT(odd_decoder.status().message(), HasSubstr("not 9"));
  absl::StatusOr<ParticleSpaceOptions> odd_space =
      SpaceOptionsFromProto(static_cast<v1::ParticleSpaceKind>(7), v1::LORA_PRODUCT, 0, false);
  EXPECT_EQ(odd_space.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(odd_space.status().message(), HasSubstr("particle space 7"));
}

TEST(SpaceProtoTest, TokenMixtureNeedsAKnownCombination) {
  for (auto [kind, want] : {std::pair{v1::MIXTURE, TokenCombination::kMixture},
                            std::pair{v1::LOG_LINEAR, TokenCombination::kLogLinear}}) {
    absl::StatusOr<ParticleSpaceOptions> o = SpaceOptionsFromProto(
        v1::TOKEN_MIXTURE, v1::COEFFICIENT_DECODER_UNSPECIFIED, 0, false, kind);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->kind, SpaceKind::kTokenMixture);
    EXPECT_EQ(o->combination, want);
  }
  for (int bad : {0, 3, 99}) {
    absl::StatusOr<ParticleSpaceOptions> o =
        SpaceOptionsFromProto(v1::TOKEN_MIXTURE, v1::COEFFICIENT_DECODER_UNSPECIFIED, 0, false,
                              static_cast<v1::TokenCombinationKind>(bad));
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(o.status().message(), HasSubstr("needs a known combination"));
  }
  EXPECT_EQ(SpaceOptionsFromProto(v1::TOKEN_MIXTURE, v1::LINEAR_AB, 0, false, v1::MIXTURE)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SpaceOptionsFromProto(v1::EXPERT_COEFFICIENTS, v1::LINEAR_AB, 0, false, v1::MIXTURE)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp
