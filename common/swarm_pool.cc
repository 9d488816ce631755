#include "common/swarm_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/swarm_engine.h"
#include "common/swarm_move.h"

namespace wxp {

absl::StatusOr<std::vector<std::vector<float>>> GrowPool(std::vector<std::vector<float>> experts,
                                                         int pool_size, uint64_t seed) {
  const int n = static_cast<int>(experts.size());
  WXP_ASSIGN_OR_RETURN(std::vector<Crossover> plan, PlanPool(n, pool_size, seed));
  const size_t dim = experts[0].size();
  for (int i = 1; i < n; ++i) {
    if (experts[i].size() != dim) {
      return absl::InvalidArgumentError(absl::StrCat("expert ", i, " has ", experts[i].size(),
                                                     " parameters, expert 0 has ", dim));
    }
  }
  std::vector<std::vector<float>> pool = std::move(experts);
  pool.reserve(pool_size);
  for (const Crossover& c : plan) {
    std::vector<float> child(dim);
    Interpolate(c.w, pool[c.parent_a].data(), pool[c.parent_b].data(), child.data(),
                static_cast<int64_t>(dim));
    pool.push_back(std::move(child));
  }
  return pool;
}

}  // namespace wxp
