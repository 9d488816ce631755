#include "client/legal/dp_expert.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/dp_accountant.h"
#include "common/status_macros.h"

namespace wxp::legal {

FineTuneOptions DpRecipe() {
  FineTuneOptions ft;
  ft.steps = 250;
  ft.batch = 1024;
  ft.lr = 1e-2;
  return ft;
}

absl::StatusOr<DpLegalExpert> FineTuneDpLegalExpert(const LegalModel& model, const Corpus& corpus,
                                                    const std::string& shard,
                                                    FineTuneOptions fine_tune,
                                                    const DpBudget& budget) {
  if (!(std::isfinite(budget.epsilon) && budget.epsilon > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("DP epsilon must be a finite number > 0, got ", budget.epsilon));
  }
  if (!(budget.delta > 0 && budget.delta < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("DP delta must be in (0, 1), got ", budget.delta));
  }
  if (!(std::isfinite(budget.clip_norm) && budget.clip_norm > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("DP clipping norm must be a finite number > 0, got ", budget.clip_norm));
  }
  if (fine_tune.eval_every != 0) {
    return absl::InvalidArgumentError("DP fine-tuning runs without early stopping");
  }
  if (fine_tune.steps < 1 || fine_tune.batch < 1) {
    return absl::InvalidArgumentError("DP fine-tuning needs steps and batch >= 1");
  }
  WXP_ASSIGN_OR_RETURN(Segments train, corpus.Get(Split::kTrain, shard));
  WXP_ASSIGN_OR_RETURN(TokenData data, model.Tokenize(train));
  const int64_t n = data.examples();
  if (n == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the train split of shard '", shard, "' is empty"));
  }
  if (budget.delta >= 1.0 / static_cast<double>(n)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DP delta must be below 1/N = ", 1.0 / static_cast<double>(n), " for shard '", shard,
        "' (N = ", n,
        " training examples): a delta that large is met by publishing an example outright; "
        "got ",
        budget.delta));
  }
  const double q = std::min(1.0, static_cast<double>(fine_tune.batch) / static_cast<double>(n));
  WXP_ASSIGN_OR_RETURN(const double sigma, dp::CalibrateNoiseMultiplier(
                                               budget.epsilon, budget.delta, q, fine_tune.steps));
  fine_tune.dp = {budget.clip_norm, sigma, q};
  WXP_ASSIGN_OR_RETURN(FineTuneResult r, model.FineTune(data, fine_tune));
  WXP_ASSIGN_OR_RETURN(
      dp::PrivacyRecord record,
      dp::MakePrivacyRecord({{"finetune", q, sigma, budget.clip_norm, fine_tune.steps}},
                            budget.delta, n));
  DpLegalExpert e;
  e.expert.adapter = MakeLegalAdapter(model, r.lora);
  dp::SetPrivacyRecord(record, &e.expert.adapter.metadata);
  e.expert.stats = std::move(r);
  e.record = std::move(record);
  return e;
}

}  // namespace wxp::legal
