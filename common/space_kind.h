// The kinds of space a swarm searches (SPEC 4.3), on their own so that code which only
// needs to know the kind (the runner, local-training checks) does not depend on decoding.
// ParticleSpace (common/particle_space.h) documents what each kind's positions are.
#ifndef WXP_COMMON_SPACE_KIND_H_
#define WXP_COMMON_SPACE_KIND_H_

namespace wxp {

// kTokenMixture (SPEC 4.5): positions are α over whole expert models, combined per token
// (common/token_combination.h) rather than decoded into an adapter.
enum class SpaceKind { kWeights, kExpertCoefficients, kTokenMixture };

}  // namespace wxp

#endif  // WXP_COMMON_SPACE_KIND_H_
