#include "common/space_proto.h"

#include "absl/strings/str_cat.h"

namespace wxp {

absl::StatusOr<ParticleSpaceOptions> SpaceOptionsFromProto(v1::ParticleSpaceKind space,
                                                           v1::CoefficientDecoder decoder,
                                                           int64_t svd_rank, bool per_module) {
  ParticleSpaceOptions o;
  switch (space) {
    case v1::PARTICLE_SPACE_KIND_UNSPECIFIED:
    case v1::WEIGHTS:
      return o;
    case v1::EXPERT_COEFFICIENTS:
      o.kind = SpaceKind::kExpertCoefficients;
      break;
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
