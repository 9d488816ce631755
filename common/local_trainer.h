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
  // Differential privacy (SPEC 12; proto LocalTraining.dp_*): with dp_epsilon > 0 every
  // site trains with DP-SGD, its noise calibrated so that all its local training in the
  // swarm (at most MaxStepsPerSite steps) spends at most (dp_epsilon, dp_delta) on its
  // data. dp_clip_norm 0 means 1.
  double dp_epsilon = 0;
  double dp_delta = 0;
  double dp_clip_norm = 0;
  bool enabled() const { return every_k > 0; }
  bool private_training() const { return enabled() && dp_epsilon > 0; }

  // OK when off. Otherwise InvalidArgument naming the first offending setting: a negative
  // every_k, steps or batch below 1, a learning rate that is not a finite number > 0, a
  // space other than kWeights (coefficient positions are not weights a gradient step can
  // move, and training there would leave the experts' span the space is defined by), or DP
  // settings out of range: dp_epsilon not 0 or a finite number > 0, dp_delta not in (0, 1)
  // with dp_epsilon (or not 0 without it), dp_clip_norm not 0 or a finite number > 0.
  absl::Status Validate(SpaceKind space) const;

  // The most gradient steps one site's local training can take in a swarm of
  // `max_iterations` iterations and `pool_size` particles (a site holds at most all of
  // them): floor(max_iterations / every_k) trainings of each particle. 0 when off.
  int64_t MaxStepsPerSite(int max_iterations, int pool_size) const;
};

// Parses the flag spelling "EVERY_K:STEPS:LR:BATCH[:DP_EPSILON:DP_DELTA[:DP_CLIP]]" (e.g.
// "2:20:0.005:64", or "2:20:0.005:256:4:1e-5" with DP; "" = off) and validates it for
// `space`. InvalidArgument naming the expected form, or Validate's error.
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
  // DP-SGD (LocalTrainingParams::private_training): 0 = off. The trainer calibrates the
  // noise on its own data so that dp_max_steps such steps spend at most (dp_epsilon,
  // dp_delta); clipping norm dp_clip_norm (> 0).
  double dp_epsilon = 0;
  double dp_delta = 0;
  double dp_clip_norm = 0;
  int64_t dp_max_steps = 0;
};

// Particle `particle`'s training job in iteration `iteration` of a swarm with seed
// `swarm_seed`, `max_iterations` iterations and `pool_size` particles, from its moved
// position `x` (which must outlive the request): the one way the in-process runner and
// every agent build it, seed (LocalTrainingSeed) and DP settings included.
TrainingRequest MakeTrainingRequest(const LocalTrainingParams& training, uint64_t swarm_seed,
                                    int max_iterations, int pool_size, int particle, int iteration,
                                    absl::Span<const float> x);

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
