#include "common/rerank.h"

#include "common/status_macros.h"

namespace wxp {

absl::StatusOr<std::vector<double>> RerankUnderWeights(
    const UtilityFunction& utility, const std::vector<StoredEvaluation>& evaluations,
    SwarmEngine* engine) {
  std::vector<double> values;
  std::vector<SwarmEngine::Rescored> rescored;
  for (const StoredEvaluation& e : evaluations) {
    WXP_ASSIGN_OR_RETURN(double value, utility.Combine(e.scores));
    values.push_back(value);
    rescored.push_back({e.position, value, e.held, e.may_lead});
  }
  if (engine != nullptr) WXP_RETURN_IF_ERROR(engine->Rerank(rescored));
  return values;
}

}  // namespace wxp
