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
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/legal/corpus.h"
#include "client/legal/model.h"
#include "common/local_trainer.h"

namespace wxp::legal {

class LegalTrainer : public LocalTrainer {
 public:
  // Trains on `train`, tokenized once here.
  LegalTrainer(std::shared_ptr<const LegalModel> model, TokenData train)
      : model_(std::move(model)), train_(std::move(train)) {}

  // The trained position. InvalidArgument for a position that is not the model's LoRA or
  // holds a non-finite value, or for non-positive steps, batch or learning rate; Internal
  // for a LibTorch failure.
  absl::StatusOr<std::vector<float>> Train(const TrainingRequest& request) override;

  // Gradient steps taken by successful Train calls so far (compute accounting).
  int64_t steps_run() const { return steps_run_; }

 private:
  std::shared_ptr<const LegalModel> model_;
  TokenData train_;
  int64_t steps_run_ = 0;
};

// A trainer on `shard`'s train split of `corpus`: NotFound naming the known shards for an
// unknown one, InvalidArgument if its train split is empty.
absl::StatusOr<std::unique_ptr<LegalTrainer>> MakeLegalTrainer(
    std::shared_ptr<const LegalModel> model, const Corpus& corpus, const std::string& shard);

}  // namespace wxp::legal

#endif  // WXP_CLIENT_LEGAL_TRAINER_H_
