// The built-in legal model's local trainer (SPEC 4.4): a few steps of next-byte prediction
// on a firm's own train shard, from a swarm particle's position, between iterations. It is
// LegalModel::FineTune started from the position (FineTuneOptions::start), so a particle
// trains exactly as an expert does (same loss, Adam, seeded batch order), for a few steps.
//
//   absl::StatusOr<std::unique_ptr<LegalTrainer>> t =
//       MakeLegalTrainer(setup.model, setup.corpus, "GPL");
//   RunnerOptions o; o.local_training = {every_k, steps, lr, batch}; o.trainer = t->get();
//
// Deterministic for a fixed request (its seed gives the batch order; Adam starts afresh
// each call) and thread count. Positions are the model's own LoRA (lora_schema()), i.e.
// the WEIGHTS space.
#ifndef WXP_CLIENT_LEGAL_TRAINER_H_
#define WXP_CLIENT_LEGAL_TRAINER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "client/legal/corpus.h"
#include "client/legal/model.h"
#include "common/dp_sgd.h"
#include "common/local_trainer.h"

namespace wxp::legal {

class LegalTrainer : public LocalTrainer {
 public:
  // Trains on `train`, tokenized once here.
  LegalTrainer(std::shared_ptr<const LegalModel> model, TokenData train)
      : model_(std::move(model)), train_(std::move(train)) {}

  // The trained position. InvalidArgument for a position that is not the model's LoRA or
  // holds a non-finite value, or for non-positive steps, batch or learning rate; Internal
  // for a LibTorch failure. With request.dp_epsilon > 0, DP-SGD (FineTuneOptions::dp) at
  // sampling rate min(1, batch / examples) and the noise multiplier that keeps
  // request.dp_max_steps such steps within (dp_epsilon, dp_delta); InvalidArgument if
  // dp_max_steps is below steps or dp_delta is not below 1 / examples.
  absl::StatusOr<std::vector<float>> Train(const TrainingRequest& request) override;

  // Gradient steps taken by successful Train calls so far (compute accounting).
  int64_t steps_run() const { return steps_run_; }

 private:
  // DP-SGD's settings for `request`: q from its batch and this site's N, σ calibrated so
  // that dp_max_steps such trainings stay within (dp_epsilon, dp_delta).
  absl::StatusOr<dp::DpSgdParams> DpParams(const TrainingRequest& request);

  std::shared_ptr<const LegalModel> model_;
  TokenData train_;
  int64_t steps_run_ = 0;
  // The last calibration, keyed by (ε, δ, q, steps): every training of a swarm asks for
  // the same one.
  std::optional<std::pair<std::tuple<double, double, double, int64_t>, double>> sigma_;
};

// A trainer on `shard`'s train split of `corpus`: NotFound naming the known shards for an
// unknown one, InvalidArgument if its train split is empty.
absl::StatusOr<std::unique_ptr<LegalTrainer>> MakeLegalTrainer(
    std::shared_ptr<const LegalModel> model, const Corpus& corpus, const std::string& shard);

}  // namespace wxp::legal

#endif  // WXP_CLIENT_LEGAL_TRAINER_H_
