// The evaluator seam: scores one candidate position. Implementations: the synthetic
// evaluator (common/synthetic.h), and on the agent the external-command and built-in
// evaluators. A failed evaluation is an error status, never a crash; callers treat it as a
// skipped evaluation.
#ifndef WXP_COMMON_EVALUATOR_H_
#define WXP_COMMON_EVALUATOR_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/utility.h"

namespace wxp {

struct EvaluationRequest {
  int particle = 0;
  int iteration = 0;               // 0 for the initial pool
  absl::Span<const float> params;  // the flat fp32 position; valid during the call only
};

class Evaluator {
 public:
  virtual ~Evaluator() = default;
  // Component scores of the position. Need not be thread-safe.
  virtual absl::StatusOr<Scores> Evaluate(const EvaluationRequest& request) = 0;
};

}  // namespace wxp

#endif  // WXP_COMMON_EVALUATOR_H_
