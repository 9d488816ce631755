// The built-in evaluator of a token swarm (SPEC 4.5): scores a particle α over n whole
// expert models (each a built-in base model of either architecture and size, plus its
// adapter) by combining their next-byte distributions at every position of a held-out split
// (common/token_combination.h) and reporting what LegalEvaluator reports for one model:
// char_acc and loss of the mix and char_acc/<family> per licence family, so a token swarm
// and a weight or coefficient swarm over the same corpus are ranked by the same numbers.
//
// The experts never change during a swarm, only α does: Create runs every expert over the
// split once and keeps its log-probabilities (n · positions · 256 floats: about 27 MB per
// expert for the default dev split), so an evaluation is pure arithmetic over them, with no
// forward pass. Evaluate is deterministic (double arithmetic in a fixed order; the forward
// passes are deterministic for a fixed thread count, see model.h).
#ifndef WXP_CLIENT_LEGAL_MIXTURE_EVALUATOR_H_
#define WXP_CLIENT_LEGAL_MIXTURE_EVALUATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "client/legal/corpus.h"
#include "client/legal/model.h"
#include "common/adapter.h"
#include "common/evaluator.h"
#include "common/token_combination.h"

namespace wxp::legal {

// One expert of a token swarm: a loaded built-in base model and an adapter for it. The
// adapter is placed by model->PlaceLora with its own adapter_config.json (any rank, any
// subset of the model's linear layers); empty values mean the base model alone.
struct MixtureExpert {
  std::shared_ptr<const LegalModel> model;
  Adapter adapter;
};

// An expert as files, as a token swarm's agent holds it (blobs in its cache): the base model
// file (a base model's safetensors, which says what it is: model.h) and the adapter's
// safetensors file with its adapter_config.json (empty: none).
struct MixtureExpertFiles {
  std::string base_model_path;
  std::string adapter_path;
  std::string adapter_config_json;
};

// Loads an expert from files, never pretraining: the base model file is copied into
// `work_dir` under its cache name (LegalBasePath) unless that file is already there, and
// loaded with `threads` intra-op threads. InvalidArgument naming the file if the base model
// file is not a built-in base model (ReadLegalBaseConfig) or was not pretrained on
// `corpus` (CheckLegalBaseFile); the adapter's load errors pass through.
absl::StatusOr<MixtureExpert> LoadMixtureExpert(const MixtureExpertFiles& files,
                                                const Corpus& corpus, const std::string& work_dir,
                                                int threads);

// Writes `adapter` (of `model`) to `dir` as a token-swarm expert directory
// (common/model_description.h): the PEFT files, with adapter_config.json naming the base
// model's blob (kBaseModelBlobKey: the SHA-256 of model.base_path()), and the base model
// file itself as kExpertBaseModelFile. I/O errors name the path.
absl::Status SaveTokenExpertDir(const LegalModel& model, const Adapter& adapter,
                                const std::string& dir);

class MixtureEvaluator : public Evaluator {
 public:
  // Runs every expert over `split` (dev or test) of `corpus`. InvalidArgument for no experts,
  // another split, an expert without a model, or an adapter that PlaceLora or CheckLegalBase
  // refuse for its model (the message names the expert's index); Internal if two experts'
  // positions of the split do not line up (they always do for the built-in models). Corpus
  // and LibTorch errors pass through.
  static absl::StatusOr<std::unique_ptr<MixtureEvaluator>> Create(
      const std::vector<MixtureExpert>& experts, const Corpus& corpus, Split split,
      TokenCombination combination);

  // request.params is α (one coefficient per expert, in Create's order). InvalidArgument
  // for another length or a NaN or infinity; for kLogLinear, also for an α under which a
  // position's combination is refused (CombineLogProbs: e.g. overflow).
  absl::StatusOr<Scores> Evaluate(const EvaluationRequest& request) override;

  // Whether the combination under α predicts each position's next byte (its argmax, the
  // first maximum on a tie, as char_acc counts it): 1 or 0 per position, in text order, so
  // their mean is Evaluate's char_acc. Errors as Evaluate.
  absl::StatusOr<std::vector<uint8_t>> Hits(absl::Span<const float> alpha) const;

  int num_experts() const { return static_cast<int>(log_probs_.size()); }
  TokenCombination combination() const { return combination_; }
  int64_t positions() const { return static_cast<int64_t>(targets_.size()); }
  const std::vector<std::string>& families() const { return families_; }

 private:
  MixtureEvaluator() = default;
  // Evaluate's work; fills `hits` (one entry per position) when it is not null.
  absl::StatusOr<Scores> Combine(absl::Span<const float> alpha, std::vector<uint8_t>* hits) const;

  TokenCombination combination_ = TokenCombination::kMixture;
  std::vector<std::vector<float>> log_probs_;  // per expert, [positions, 256]
  std::vector<uint8_t> targets_;
  std::vector<std::string> families_;
  std::vector<int64_t> family_ends_;
};

// Text from the combined model a token swarm's α describes (SPEC 4.5: what its manifest
// exports), for a person to read. Each step runs every expert over the text so far (one
// segment, as Evaluate's positions are scored: the MLP sees its `context` bytes before the
// next one, the transformer the window the next byte falls in) and combines their next-byte
// distributions as Evaluate does. Temperature 0 picks the most probable byte (the first
// maximum, as char_acc counts a hit); T > 0 draws from the combined distribution raised to
// 1/T, from a counter-based generator seeded by `seed`.
struct GenerateOptions {
  int bytes = 200;
  double temperature = 0;
  uint64_t seed = 1;
};

// The `options.bytes` bytes that follow `prompt`. Deterministic for fixed inputs and thread
// count. InvalidArgument for no experts, an α of another length or holding a NaN or
// infinity, bytes < 1, or a negative or non-finite temperature; the experts' placement and
// LibTorch errors as Create's, naming the expert.
absl::StatusOr<std::string> GenerateText(const std::vector<MixtureExpert>& experts,
                                         TokenCombination combination,
                                         absl::Span<const float> alpha, const std::string& prompt,
                                         const GenerateOptions& options);

}  // namespace wxp::legal

#endif  // WXP_CLIENT_LEGAL_MIXTURE_EVALUATOR_H_
