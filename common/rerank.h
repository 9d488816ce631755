// Dynamic utility (SPEC 4.2): a running swarm's weight change, as one operation for every
// owner of a SwarmEngine (the server's coordinator on `wxpctl weights set`, the in-process
// runner's RunnerOptions::utility_changes), so both re-rank alike.
#ifndef WXP_COMMON_RERANK_H_
#define WXP_COMMON_RERANK_H_

#include <vector>

#include "absl/status/statusor.h"
#include "common/swarm_engine.h"
#include "common/utility.h"

namespace wxp {

// A successful evaluation as its owner keeps it: the components, not only the utility.
struct StoredEvaluation {
  PositionRef position;
  Scores scores;
  bool held = false;  // the owner holds the position's bytes: p_i, g, g_w may point at it
  // False for a claim an audit policy has not confirmed (SPEC 12): it may be p_i or g_w,
  // not g (SwarmEngine::Rescored::may_lead).
  bool may_lead = true;
};

// Every evaluation's utility under `utility` (UtilityFunction::Combine of its stored scores;
// nothing is re-evaluated), in the order given, and `engine`, if given, re-ranked on them
// (SwarmEngine::Rerank: each particle's latest utility takes its new value; p_i, g and g_w
// are re-chosen among the held positions). A Combine error (a stored score the new weights
// refuse) or Rerank's error leaves the engine untouched.
absl::StatusOr<std::vector<double>> RerankUnderWeights(
    const UtilityFunction& utility, const std::vector<StoredEvaluation>& evaluations,
    SwarmEngine* engine);

}  // namespace wxp

#endif  // WXP_COMMON_RERANK_H_
