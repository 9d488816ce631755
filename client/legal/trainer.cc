#include "client/legal/trainer.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace wxp::legal {

absl::StatusOr<std::vector<float>> LegalTrainer::Train(const TrainingRequest& request) {
  FineTuneOptions ft;
  ft.steps = request.steps;
  ft.batch = request.batch;
  ft.lr = request.learning_rate;
  ft.seed = request.seed;
  ft.start = request.params;
  ft.report_losses = false;
  WXP_ASSIGN_OR_RETURN(FineTuneResult r, model_->FineTune(train_, ft));
  steps_run_ += r.steps_run;
  return std::move(r.lora);
}

absl::StatusOr<std::unique_ptr<LegalTrainer>> MakeLegalTrainer(
    std::shared_ptr<const LegalModel> model, const Corpus& corpus, const std::string& shard) {
  WXP_ASSIGN_OR_RETURN(Segments train, corpus.Get(Split::kTrain, shard));
  WXP_ASSIGN_OR_RETURN(TokenData data, model->Tokenize(train));
  if (data.positions() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("legal trainer: the train split of shard '", shard, "' is empty"));
  }
  return std::make_unique<LegalTrainer>(std::move(model), std::move(data));
}

}  // namespace wxp::legal
