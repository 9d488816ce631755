// A firm's expert trained with differential privacy (SPEC 12): the noise is calibrated to
// the firm's budget (common/dp_accountant.h), the expert trained with DP-SGD
// (FineTuneOptions::dp), and the budget spent recorded in the adapter
// (common/dp_record.h), where `wxpctl adapter inspect` shows it and wxp-agent checks it.
//
//   absl::StatusOr<DpLegalExpert> e = FineTuneDpLegalExpert(*setup.model, setup.corpus,
//                                                           "GPL", ft, {4.0, 1e-5, 1.0});
//   SaveAdapterDir(e->expert.adapter, dir);
//
// What is protected: one training example (TokenData::examples(): a next-byte position for
// the MLP, a window of `context` bytes for the transformer) of the firm's train split.
// A byte of text sits in up to context + 1 MLP examples (as target and as context) and in up
// to 2 transformer windows, so a passage of k bytes is covered by group privacy over that
// many examples, not by ε itself: the operator's guide (deploy/README.md) says so.
#ifndef WXP_CLIENT_LEGAL_DP_EXPERT_H_
#define WXP_CLIENT_LEGAL_DP_EXPERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "client/legal/evaluator.h"
#include "common/dp_record.h"

namespace wxp::legal {

struct DpBudget {
  double epsilon = 0;    // finite, > 0
  double delta = 0;      // in (0, 1/examples)
  double clip_norm = 1;  // C, finite, > 0
};

struct DpLegalExpert {
  LegalExpert expert;        // its adapter's metadata holds `record`
  dp::PrivacyRecord record;  // ε spent (at most the budget's), δ, σ, C, q, steps
};

// The DP-SGD training recipe that `wxpctl legal finetune --dp-epsilon` and B5 use unless
// told otherwise: 250 steps of an expected batch of 1024 at learning rate 1e-2 (Adam), the
// rest as FineTuneOptions' defaults. Large batches, because the noise per step, σC / batch,
// swamped the plain fine-tune's batch of 64 (σ grows far more slowly than the batch).
// Chosen on tuning seed 101 at ε = 4 (GPL's expert, own-family test char_acc, base 0.346;
// bench/legal_quality --first_seed 101 --firms GPL --dp_epsilon 4 --dp_steps/--dp_batch/
// --dp_lr/--dp_clip): 64 x 1000 at 5e-3 gave 0.327; 512 x 1000 at 5e-3 0.421, at 1e-3
// 0.377, at 3e-4 0.346; this recipe 0.421 at half the per-example gradients. C = 0.1
// instead of 1 was mixed (0.431 against 0.421 at 512 x 1000, 0.413 against 0.421 here) and
// raised the train loss further (2.58-2.81 against 2.40-2.43 nats/byte), so C stays 1.
FineTuneOptions DpRecipe();

// Fine-tunes as FineTuneLegalExpert does, with DP-SGD: sampling rate
// q = min(1, fine_tune.batch / examples), fine_tune.steps steps, σ the smallest that keeps
// the run within `budget`. InvalidArgument (naming the value) for ε not a finite number > 0,
// δ outside (0, 1) or not below 1/examples (a δ that large allows publishing an example
// outright), C not a finite number > 0, or early stopping (eval_every != 0); the
// calibration's and the training's errors otherwise.
absl::StatusOr<DpLegalExpert> FineTuneDpLegalExpert(const LegalModel& model, const Corpus& corpus,
                                                    const std::string& shard,
                                                    FineTuneOptions fine_tune,
                                                    const DpBudget& budget);

}  // namespace wxp::legal

#endif  // WXP_CLIENT_LEGAL_DP_EXPERT_H_
