#include "common/swarm_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/swarm_engine.h"
#include "common/swarm_move.h"

namespace wxp {

absl::StatusOr<std::vector<std::vector<float>>> GrowPool(std::vector<std::vector<float>> experts,
                                                         int pool_size, uint64_t seed, int groups) {
  const int n = static_cast<int>(experts.size());
  WXP_ASSIGN_OR_RETURN(std::vector<Crossover> plan, PlanPool(n, pool_size, seed, groups));
  const size_t dim = experts[0].size();
  if (dim % static_cast<size_t>(groups) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "positions of ", dim, " values do not split into ", groups, " coordinate groups"));
  }
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
    const float* a = pool[c.parent_a].data();
    const float* b = pool[c.parent_b].data();
    if (c.group_w.empty()) {
      Interpolate(c.w, a, b, child.data(), static_cast<int64_t>(dim));
    } else {
      for (size_t i = 0; i < dim; ++i) {
        Interpolate(c.group_w[i % c.group_w.size()], a + i, b + i, child.data() + i, 1);
      }
    }
    pool.push_back(std::move(child));
  }
  return pool;
}

}  // namespace wxp
