// The initial pool of Model Swarms as positions (SPEC 4 step 1): the experts, then the
// crossover children SwarmEngine's PlanPool decides, computed with swarm_move's
// Interpolate. The one implementation of pool growth: the server builds its pool with it
// (and stores the children as blobs), the in-process runner builds its own with it, so both
// hold identical bytes for the same experts and seed.
#ifndef WXP_COMMON_SWARM_POOL_H_
#define WXP_COMMON_SWARM_POOL_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace wxp {

// The `pool_size` positions grown from `experts` (already in pool order, see PoolOrder):
// positions 0..n-1 are the experts, the rest the children of
// PlanPool(n, pool_size, seed, groups) in order. With `groups` > 1 coordinate i belongs to
// group i % groups and is interpolated with that group's weight; one group is the paper's
// crossover, a single w for the whole position. InvalidArgument if the experts differ in
// length, their length is not a multiple of `groups`, or as PlanPool.
absl::StatusOr<std::vector<std::vector<float>>> GrowPool(std::vector<std::vector<float>> experts,
                                                         int pool_size, uint64_t seed,
                                                         int groups = 1);

}  // namespace wxp

#endif  // WXP_COMMON_SWARM_POOL_H_
