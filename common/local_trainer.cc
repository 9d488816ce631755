#include "common/local_trainer.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace wxp {

absl::Status LocalTrainingParams::Validate(SpaceKind space) const {
  if (every_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("local training: every_k must be >= 0 (0 = off), got ", every_k));
  }
  if (!enabled()) return absl::OkStatus();
  if (space != SpaceKind::kWeights) {
    return absl::InvalidArgumentError(
        "local training needs the WEIGHTS space: positions in a coefficient space are "
        "coefficients over the experts, not weights a gradient step can train");
  }
  if (steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("local training: steps must be >= 1, got ", steps));
  }
  if (!(std::isfinite(learning_rate) && learning_rate > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local training: learning rate must be a finite number > 0, got ", learning_rate));
  }
  if (batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("local training: batch must be >= 1, got ", batch));
  }
  return absl::OkStatus();
}

absl::StatusOr<LocalTrainingParams> ParseLocalTraining(absl::string_view text, SpaceKind space) {
  LocalTrainingParams p;
  if (text.empty()) return p;
  const std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &p.every_k) ||
      !absl::SimpleAtoi(parts[1], &p.steps) || !absl::SimpleAtod(parts[2], &p.learning_rate) ||
      !absl::SimpleAtoi(parts[3], &p.batch) || p.every_k < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("local training: expected EVERY_K:STEPS:LR:BATCH with EVERY_K >= 1, e.g. "
                     "2:20:0.005:64; got '",
                     text, "'"));
  }
  if (absl::Status s = p.Validate(space); !s.ok()) return s;
  return p;
}

}  // namespace wxp
