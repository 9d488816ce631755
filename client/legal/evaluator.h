// The built-in legal-text evaluator (SPEC 7) and the expert fine-tuning that goes with it:
// the entry points the agent daemon and `wxpctl legal` use.
//
// Typical use, given proto BuiltinLegalTextEvaluator {corpus_dir, shard, split} and a work
// directory:
//   LegalOptions o{.corpus_dir = cfg.corpus_dir(), .shard = cfg.shard(),
//                  .split = cfg.split(), .work_dir = work_dir};
//   // The firm's own expert (its private shard only), a PEFT directory to contribute:
//   absl::StatusOr<LegalExpert> e = FineTuneLegalExpert(o, FineTuneOptions{});
//   SaveAdapterDir(e->adapter, dir);
//   // The utility the swarm asks for (split "dev" unless told "test"):
//   absl::StatusOr<std::unique_ptr<Evaluator>> ev = MakeLegalEvaluator(o, swarm_schema);
//   ev.value()->Evaluate({particle, iteration, flat_params});
//   // {"char_acc", "loss", "char_acc/Apache", "char_acc/GPL", ...}
//
// Both load the base model cached in work_dir, pretraining it first if it is missing (under
// a minute on two cores; later calls reuse it). The swarm's schema is the model's LoRA
// schema (LegalLoraSchema: experts from FineTuneLegalExpert with the same ModelConfig and
// corpus), or, given the adapters' adapter_config.json, any PEFT LoRA on the model's linear
// layers (e.g. candidates decoded from expert coefficients, of rank Σ r_j).
//
// Which base model: `model` (its architecture and sizes) says, as `wxpctl legal
// --architecture` sets it; or, with base_from_adapter_config (wxp-agent), the base model the
// adapters name in base_model_name_or_path (ResolveLegalBase), so an agent scores
// transformer experts on the transformer base it is given without being told. Adapters
// that name another built-in base than the one loaded are refused (CheckLegalBase): their
// deltas mean nothing on it.
#ifndef WXP_CLIENT_LEGAL_EVALUATOR_H_
#define WXP_CLIENT_LEGAL_EVALUATOR_H_

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/legal/corpus.h"
#include "client/legal/model.h"
#include "common/adapter.h"
#include "common/evaluator.h"
#include "common/schema.h"

namespace wxp::legal {

// Score components (Scores keys). char_acc is maximised, loss (nats/byte) minimised; both
// are of the whole split, the mix of every family.
inline constexpr char kCharAccComponent[] = "char_acc";
inline constexpr char kLossComponent[] = "loss";
// Next-byte accuracy on one licence family's (shard's) part of the split alone:
// "char_acc/<shard name>", e.g. "char_acc/GPL", for every shard whose part of the split is
// not empty (Corpus::GetForShard). A swarm whose utility weights only such a component
// searches for that family's quality (dynamic utility, SPEC 4.4, moves between them).
std::string FamilyCharAccComponent(const std::string& shard);

// A held-out split tokenized once, with where each family's part of it ends.
struct SplitData {
  TokenData data;
  std::vector<std::string> families;  // shards with a non-empty part, in corpus order
  std::vector<int64_t> family_ends;   // positions; the last is data.positions()
};

struct LegalOptions {
  std::string corpus_dir;  // empty: kDefaultCorpusDir
  std::string shard;       // the firm's shard; needed only for fine-tuning
  std::string split;       // "dev" (default when empty) or "test"
  std::string work_dir;    // where the base model is cached; empty: current directory
  ModelConfig model;
  std::ostream* log = nullptr;  // progress lines (pretraining), if wanted
  // The adapter_config.json of the adapters to score or train, when the base model should
  // be the one they name rather than `model` (whose threads still apply): see
  // ResolveLegalBase.
  std::optional<std::string> base_from_adapter_config;
};

// Scores positions on one held-out split: char_acc and loss of the mix and each family's
// char_acc, all from one forward pass. Deterministic: the same position gives the same
// scores, bit for bit, on the same machine and thread count.
class LegalEvaluator : public Evaluator {
 public:
  // Scores the model's own adapters (own_placement()).
  LegalEvaluator(std::shared_ptr<const LegalModel> model, SplitData split)
      : model_(std::move(model)),
        split_(std::make_shared<const SplitData>(std::move(split))),
        placement_(model_->own_placement()) {}
  // Scores adapters placed by model->PlaceLora, on a split it may share with other
  // evaluators (one tokenized split serves adapters of several schemas).
  LegalEvaluator(std::shared_ptr<const LegalModel> model, std::shared_ptr<const SplitData> split,
                 LoraPlacement placement)
      : model_(std::move(model)), split_(std::move(split)), placement_(std::move(placement)) {}
  LegalEvaluator(std::shared_ptr<const LegalModel> model, SplitData split, LoraPlacement placement)
      : LegalEvaluator(std::move(model), std::make_shared<const SplitData>(std::move(split)),
                       std::move(placement)) {}
  // InvalidArgument if the position's length is not the placement schema's size or it holds
  // a non-finite value; Internal for a LibTorch failure.
  absl::StatusOr<Scores> Evaluate(const EvaluationRequest& request) override;
  const LegalModel& model() const { return *model_; }
  int64_t positions() const { return split_->data.positions(); }
  const std::vector<std::string>& families() const { return split_->families; }

 private:
  std::shared_ptr<const LegalModel> model_;
  std::shared_ptr<const SplitData> split_;
  LoraPlacement placement_;
};

// `split` (dev or test; InvalidArgument otherwise, or if it is empty) of `corpus`, tokenized
// for `model`: the shards' parts in corpus (name) order, exactly the text of corpus.Get.
absl::StatusOr<SplitData> LoadSplitData(const LegalModel& model, const Corpus& corpus, Split split);

// The evaluator of `options.split` (dev or test; InvalidArgument for train/general or an
// unknown name), for a swarm over `schema` with the adapters' `adapter_config_json`, if
// known: InvalidArgument as LegalModel::PlaceLora (without a config, naming the difference
// if `schema` is not the model's LoRA schema) and as CheckLegalBase. Corpus errors
// (NotFound/InvalidArgument) and pretraining errors pass through.
absl::StatusOr<std::unique_ptr<Evaluator>> MakeLegalEvaluator(
    const LegalOptions& options, const Schema& schema,
    const std::optional<std::string>& adapter_config_json = std::nullopt);
// The same over an already loaded model and corpus (benchmarks, tests).
absl::StatusOr<std::unique_ptr<LegalEvaluator>> MakeLegalEvaluator(
    std::shared_ptr<const LegalModel> model, const Corpus& corpus, Split split);

// Loads the corpus and the (cached or freshly pretrained) base model.
struct LegalSetup {
  Corpus corpus;
  std::shared_ptr<const LegalModel> model;
};
// InvalidArgument if the model is not the base model the adapters name (with a wxp-legal
// base_model_name_or_path, see LegalBaseName): the adapter is fine-tuned from another
// architecture, size or corpus.
absl::StatusOr<LegalSetup> LoadLegalSetup(const LegalOptions& options);

// The configuration of the base model options.base_from_adapter_config names
// (base_model_name_or_path N, a LegalBaseName), for a caller given a base model rather than
// a configuration (wxp-agent's builtin_legal_text.base_dir):
//  - options.model when there is no such config or name, or when options.model is N;
//  - else the configuration recorded in <work_dir>/legal-base-<hash>.safetensors, the file
//    of N (ReadLegalBaseConfig's errors pass through);
//  - else the default configuration of N's architecture if N is it on this corpus (it is
//    pretrained deterministically, as the default MLP always was);
//  - else NotFound naming N and where its file should be.
// `threads` always comes from options.model.
absl::StatusOr<ModelConfig> ResolveLegalBase(const LegalOptions& options, const Corpus& corpus);

// OK unless `adapter_config_json` names a built-in base model (LegalBaseName's form) other
// than `model`'s: then InvalidArgument naming both and their architectures.
absl::Status CheckLegalBase(const LegalModel& model,
                            const std::optional<std::string>& adapter_config_json);

// The adapter schema experts and candidates of this configuration have.
absl::StatusOr<Schema> LegalLoraSchema(const LegalOptions& options);

struct LegalExpert {
  Adapter adapter;  // PEFT tensors + adapter_config.json; write with SaveAdapterDir
  FineTuneResult stats;
};

// Fine-tunes a LoRA on `options.shard`'s private train split only (NotFound naming the
// known shards if it is unknown; InvalidArgument if empty).
absl::StatusOr<LegalExpert> FineTuneLegalExpert(const LegalOptions& options,
                                                const FineTuneOptions& fine_tune);
absl::StatusOr<LegalExpert> FineTuneLegalExpert(const LegalModel& model, const Corpus& corpus,
                                                const std::string& shard,
                                                const FineTuneOptions& fine_tune);

// Wraps flat LoRA values as an adapter of `model` (schema, PEFT config).
Adapter MakeLegalAdapter(const LegalModel& model, std::vector<float> values);

}  // namespace wxp::legal

#endif  // WXP_CLIENT_LEGAL_EVALUATOR_H_
