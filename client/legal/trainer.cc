#include "client/legal/trainer.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/dp_accountant.h"
#include "common/status_macros.h"

namespace wxp::legal {

absl::StatusOr<dp::DpSgdParams> LegalTrainer::DpParams(const TrainingRequest& request) {
  const int64_t n = train_.examples();
  if (request.dp_max_steps < request.steps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DP local training: a budget for ", request.dp_max_steps,
        " steps cannot cover a training of ", request.steps, " (is the pool's size known?)"));
  }
  if (request.dp_delta >= 1.0 / static_cast<double>(n)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DP local training: dp_delta ", request.dp_delta,
        " is not below 1/N = ", 1.0 / static_cast<double>(n), " for this site's N = ", n,
        " training examples (a delta that large is met by publishing an example outright)"));
  }
  const double q = std::min(1.0, static_cast<double>(request.batch) / static_cast<double>(n));
  const std::tuple<double, double, double, int64_t> key = {request.dp_epsilon, request.dp_delta, q,
                                                           request.dp_max_steps};
  if (!sigma_.has_value() || sigma_->first != key) {
    WXP_ASSIGN_OR_RETURN(const double sigma,
                         dp::CalibrateNoiseMultiplier(request.dp_epsilon, request.dp_delta, q,
                                                      request.dp_max_steps));
    sigma_ = {key, sigma};
  }
  return dp::DpSgdParams{request.dp_clip_norm, sigma_->second, q};
}

absl::StatusOr<std::vector<float>> LegalTrainer::Train(const TrainingRequest& request) {
  FineTuneOptions ft;
  ft.steps = request.steps;
  ft.batch = request.batch;
  ft.lr = request.learning_rate;
  ft.seed = request.seed;
  ft.start = request.params;
  ft.report_losses = false;
  if (request.dp_epsilon > 0) {
    WXP_ASSIGN_OR_RETURN(ft.dp, DpParams(request));
  }
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
