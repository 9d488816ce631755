// The local-training seam (SPEC 4.4, "Self-supervised Evolution"): a few gradient steps of
// self-supervised training on a particle's position, after its move and before its
// evaluation, on the data of the site that holds the particle. Implementations: the
// built-in legal-text model (client/legal/trainer.h); tests use synthetic trainers.
//
// Who trains when, with which seed, and how velocity and personal best follow the trained
// position is decided by the engine (LocalTrainingDue, LocalTrainingSeed and
// FollowTrainedPosition in common/swarm_engine.h and common/swarm_move.h), so the
// in-process runner and the federated agents train the same particles alike.
#ifndef WXP_COMMON_LOCAL_TRAINER_H_
#define WXP_COMMON_LOCAL_TRAINER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/space_kind.h"

namespace wxp {

// The settings of local training. Off (every_k == 0) by default: a swarm without it runs
// exactly as before, byte for byte.
struct LocalTrainingParams {
  int every_k = 0;           // train in iterations k with k % every_k == 0; 0 = off
  int steps = 0;             // gradient steps per training
  double learning_rate = 0;  // the trainer's optimiser step size
  int batch = 0;             // examples per gradient step
  bool enabled() const { return every_k > 0; }

  // OK when off. Otherwise InvalidArgument naming the first offending setting: a negative
  // every_k, steps or batch below 1, a learning rate that is not a finite number > 0, or a
  // space other than kWeights (coefficient positions are not weights a gradient step can
  // move, and training there would leave the experts' span the space is defined by).
  absl::Status Validate(SpaceKind space) const;
};

// Parses the flag spelling "EVERY_K:STEPS:LR:BATCH" (e.g. "2:20:0.005:64"; "" = off) and
// validates it for `space`. InvalidArgument naming the expected form, or Validate's error.
absl::StatusOr<LocalTrainingParams> ParseLocalTraining(absl::string_view text,
                                                       SpaceKind space = SpaceKind::kWeights);

// One training job: `steps` gradient steps from `params`, with batches drawn from `seed`.
struct TrainingRequest {
  int particle = 0;
  int iteration = 0;  // >= 1
  uint64_t seed = 0;  // LocalTrainingSeed(swarm seed, particle, iteration)
  int steps = 0;
  double learning_rate = 0;
  int batch = 0;
  absl::Span<const float> params;  // the moved position; valid during the call only
};

class LocalTrainer {
 public:
  virtual ~LocalTrainer() = default;
  // The trained position, as long as `request.params`. Must be deterministic for a fixed
  // request (seed included) on a fixed machine and thread count. A failure is an error
  // status, never a crash; callers then keep the untrained position and count the failure
  // (as they do for a result of the wrong length or with a non-finite value). Need not be
  // thread-safe.
  virtual absl::StatusOr<std::vector<float>> Train(const TrainingRequest& request) = 0;
};

}  // namespace wxp

#endif  // WXP_COMMON_LOCAL_TRAINER_H_
