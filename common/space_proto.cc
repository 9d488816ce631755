#include "common/space_proto.h"

#include "absl/strings/str_cat.h"

namespace wxp {

absl::StatusOr<ParticleSpaceOptions> SpaceOptionsFromProto(v1::ParticleSpaceKind space,
                                                           v1::CoefficientDecoder decoder,
                                                           int64_t svd_rank, bool per_module,
                                                           v1::TokenCombinationKind combination) {
  ParticleSpaceOptions o;
  if (space != v1::TOKEN_MIXTURE && combination != v1::TOKEN_COMBINATION_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        "a token combination applies to the TOKEN_MIXTURE space only");
  }
  switch (space) {
    case v1::PARTICLE_SPACE_KIND_UNSPECIFIED:
    case v1::WEIGHTS:
      return o;
    case v1::EXPERT_COEFFICIENTS:
      o.kind = SpaceKind::kExpertCoefficients;
      break;
    case v1::TOKEN_MIXTURE:
      o.kind = SpaceKind::kTokenMixture;
      if (decoder != v1::COEFFICIENT_DECODER_UNSPECIFIED) {
        return absl::InvalidArgumentError("TOKEN_MIXTURE takes no decoder");
      }
      if (combination == v1::MIXTURE) {
        o.combination = TokenCombination::kMixture;
      } else if (combination == v1::LOG_LINEAR) {
        o.combination = TokenCombination::kLogLinear;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("TOKEN_MIXTURE needs a known combination (MIXTURE or LOG_LINEAR), not ",
                         static_cast<int>(combination)));
      }
      o.svd_rank = svd_rank;
      o.per_module = per_module;
      return o;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("particle space ", static_cast<int>(space), " is not a known space"));
  }
  switch (decoder) {
    case v1::LINEAR_AB:
      o.decoder = LoraDecoder::kLinearAB;
      break;
    case v1::LORA_PRODUCT:
      o.decoder = LoraDecoder::kLoraProduct;
      break;
    case v1::LORA_PRODUCT_SVD:
      o.decoder = LoraDecoder::kLoraProductSvd;
      o.svd_rank = svd_rank;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("EXPERT_COEFFICIENTS needs a known decoder (LINEAR_AB, LORA_PRODUCT or "
                       "LORA_PRODUCT_SVD), not ",
                       static_cast<int>(decoder)));
  }
  o.per_module = per_module;
  return o;
}

}  // namespace wxp
