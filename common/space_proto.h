// The one conversion of a swarm's particle-space wire fields (SwarmSpec.space, decoder,
// svd_rank, per_module, combination; the same fields in GetAssignmentResponse) to
// ParticleSpaceOptions, used by the server and the agent alike.
#ifndef WXP_COMMON_SPACE_PROTO_H_
#define WXP_COMMON_SPACE_PROTO_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/particle_space.h"
#include "proto/swarm_spec.pb.h"

namespace wxp {

// UNSPECIFIED space means WEIGHTS (the documented default: a message from before the field
// existed). InvalidArgument for a space or, in EXPERT_COEFFICIENTS, a decoder that is not a
// known value, in TOKEN_MIXTURE a combination that is not a known value (UNSPECIFIED
// included) or a decoder given, and a combination given in any other space, naming the
// number; never a silent default. The remaining checks (svd_rank where it applies, a
// decoder given with WEIGHTS) are ParticleSpace::Create's.
absl::StatusOr<ParticleSpaceOptions> SpaceOptionsFromProto(
    v1::ParticleSpaceKind space, v1::CoefficientDecoder decoder, int64_t svd_rank, bool per_module,
    v1::TokenCombinationKind combination = v1::TOKEN_COMBINATION_UNSPECIFIED);

}  // namespace wxp

#endif  // WXP_COMMON_SPACE_PROTO_H_
