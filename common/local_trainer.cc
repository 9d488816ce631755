#include "common/local_trainer.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/swarm_engine.h"

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
  if (!(dp_epsilon == 0 || (std::isfinite(dp_epsilon) && dp_epsilon > 0))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local training: dp_epsilon must be 0 (no DP) or a finite number > 0, got ", dp_epsilon));
  }
  if (dp_epsilon > 0 && !(dp_delta > 0 && dp_delta < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("local training: dp_delta must be in (0, 1) with dp_epsilon, got ", dp_delta));
  }
  if (dp_epsilon == 0 && dp_delta != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local training: dp_delta without dp_epsilon (set both, or neither), got ", dp_delta));
  }
  if (!(dp_clip_norm == 0 || (std::isfinite(dp_clip_norm) && dp_clip_norm > 0))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local training: dp_clip_norm must be 0 (= 1) or a finite number > 0, got ", dp_clip_norm));
  }
  return absl::OkStatus();
}

int64_t LocalTrainingParams::MaxStepsPerSite(int max_iterations, int pool_size) const {
  if (!enabled() || max_iterations < 1 || pool_size < 1) return 0;
  return static_cast<int64_t>(max_iterations / every_k) * steps * pool_size;
}

TrainingRequest MakeTrainingRequest(const LocalTrainingParams& training, uint64_t swarm_seed,
                                    int max_iterations, int pool_size, int particle, int iteration,
                                    absl::Span<const float> x) {
  TrainingRequest r;
  r.particle = particle;
  r.iteration = iteration;
  r.seed = LocalTrainingSeed(swarm_seed, particle, iteration);
  r.steps = training.steps;
  r.learning_rate = training.learning_rate;
  r.batch = training.batch;
  r.params = x;
  if (training.private_training()) {
    r.dp_epsilon = training.dp_epsilon;
    r.dp_delta = training.dp_delta;
    r.dp_clip_norm = training.dp_clip_norm > 0 ? training.dp_clip_norm : 1.0;
    r.dp_max_steps = training.MaxStepsPerSite(max_iterations, pool_size);
  }
  return r;
}

absl::StatusOr<LocalTrainingParams> ParseLocalTraining(absl::string_view text, SpaceKind space) {
  LocalTrainingParams p;
  if (text.empty()) return p;
  const std::vector<std::string> parts = absl::StrSplit(text, ':');
  const size_t n = parts.size();
  if ((n != 4 && n != 6 && n != 7) || !absl::SimpleAtoi(parts[0], &p.every_k) ||
      !absl::SimpleAtoi(parts[1], &p.steps) || !absl::SimpleAtod(parts[2], &p.learning_rate) ||
      !absl::SimpleAtoi(parts[3], &p.batch) || p.every_k < 1 ||
      (n >= 6 && (!absl::SimpleAtod(parts[4], &p.dp_epsilon) ||
                  !absl::SimpleAtod(parts[5], &p.dp_delta) || !(p.dp_epsilon > 0))) ||
      (n == 7 && !absl::SimpleAtod(parts[6], &p.dp_clip_norm))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local training: expected EVERY_K:STEPS:LR:BATCH[:DP_EPSILON:DP_DELTA[:DP_CLIP]] with "
        "EVERY_K >= 1 and DP_EPSILON > 0, e.g. 2:20:0.005:64 or 2:20:0.005:256:4:1e-5; got '",
        text, "'"));
  }
  if (absl::Status s = p.Validate(space); !s.ok()) return s;
  return p;
}

}  // namespace wxp
