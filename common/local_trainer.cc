#include "common/local_trainer.h"

#include <cmath>

#include "absl/strings/str_cat.h"

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

}  // namespace wxp
