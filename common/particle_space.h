// Where a swarm searches (SPEC 4.3): the space its positions live in, and how a position
// becomes the adapter an evaluator scores or an export writes.
//
// The runner and the engine are abstract over flat float vectors, so a space needs no swarm
// arithmetic of its own: InitialPositions() are what RunSwarm takes as `experts`, and every
// rule of SPEC 4 (crossover, velocity, restart, decay) runs unchanged on them. A
// DecodingEvaluator turns each candidate into an adapter before the real evaluator sees it.
//
//   kWeights            positions are the experts' flat parameter vectors (the paper as
//                       written); a position decodes to the first expert's schema, metadata
//                       and config with the position's values.
//   kExpertCoefficients positions are α over the n experts in the given order: the unit
//                       vectors e_j at the start, or with per_module the n × M matrix whose
//                       row j is all ones (row-major, expert j's coefficient for module m at
//                       j·M + m, modules in LoraExpertSet order). A position decodes with
//                       DecodeLora (common/lora_decode.h) and the space's decoder.
//   kTokenMixture       positions are α over n whole expert models (SPEC 4.5): the unit
//                       vectors e_j at the start, as per expert above. The experts are
//                       adapters of possibly different base models and architectures (no
//                       compatibility is required of them); a position is never an
//                       adapter: an evaluator combines the experts' next-token
//                       distributions under the space's `combination`
//                       (common/token_combination.h), and an export names the experts and
//                       α in a manifest. Decode refuses.
//
// Per-module positions need one thing from the engine: crossover children that draw one
// weight per module (CrossoverGroups). Every other rule of SPEC 4 mixes whole positions
// with scalar weights, so a pool of module-uniform positions (each expert's row all ones,
// children w·x_a + (1−w)·x_b) would stay module-uniform forever: the same search as per
// expert, in a larger vector (measured: identical B5 results before this was added).
//
// Thread-safe after Create: every method is const and pure.
#ifndef WXP_COMMON_PARTICLE_SPACE_H_
#define WXP_COMMON_PARTICLE_SPACE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/adapter.h"
#include "common/evaluator.h"
#include "common/lora_decode.h"
#include "common/lora_layout.h"
#include "common/space_kind.h"
#include "common/token_combination.h"

namespace wxp {

struct ParticleSpaceOptions {
  SpaceKind kind = SpaceKind::kWeights;
  // kExpertCoefficients only (Create refuses anything but the defaults with kWeights).
  LoraDecoder decoder = LoraDecoder::kLoraProduct;
  int64_t svd_rank = 0;     // >= 1 with kLoraProductSvd, 0 otherwise
  bool per_module = false;  // one coefficient per expert and module instead of per expert
  // kTokenMixture only (ignored elsewhere): how the experts' distributions combine.
  TokenCombination combination = TokenCombination::kMixture;
};

// "weights", "coefficients", "token_mixture"; "linear_ab", "lora_product",
// "lora_product_svd" (flag and JSON spellings).
std::string SpaceKindName(SpaceKind kind);
std::string LoraDecoderName(LoraDecoder decoder);
// Inverses of the names above; InvalidArgument listing the valid names.
absl::StatusOr<LoraDecoder> ParseLoraDecoder(const std::string& name);

class ParticleSpace {
 public:
  // InvalidArgument for: no experts; an expert holding a NaN or infinity (naming it);
  // kWeights or kLinearAB over experts whose schemas differ (naming the difference);
  // kExpertCoefficients over experts CheckCompatibleExperts refuses; svd_rank < 1 with
  // kLoraProductSvd, or a decoder, svd_rank or per_module given where they do not apply
  // (kWeights and kTokenMixture take the defaults only).
  static absl::StatusOr<std::unique_ptr<ParticleSpace>> Create(std::vector<Adapter> experts,
                                                               ParticleSpaceOptions options);

  ParticleSpace(const ParticleSpace&) = delete;
  ParticleSpace& operator=(const ParticleSpace&) = delete;

  const ParticleSpaceOptions& options() const { return options_; }
  const std::vector<Adapter>& experts() const { return experts_; }
  // The LoRA modules of the experts; empty for kWeights and kTokenMixture (which do not need
  // LoRA experts of one shape).
  const std::vector<std::string>& modules() const { return modules_; }
  // Length of every position: the experts' parameter count (kWeights), n, or n · M.
  int64_t Dimension() const;
  // The experts as positions of this space, in order (RunSwarm's `experts`).
  std::vector<std::vector<float>> InitialPositions() const;
  // The coordinate groups a crossover child draws its own weight for (GrowPool's `groups`,
  // RunnerOptions::crossover_groups): M with per_module (coordinate j·M + m is in group m,
  // the module), else 1. Every pool over this space must be grown with it.
  int CrossoverGroups() const;
  // The adapter at position `x`: PEFT-loadable, config included (see lora_decode.h for what
  // the product decoders write). InvalidArgument if x.size() != Dimension() or x holds a
  // NaN or infinity; Internal for a decoder failure; FailedPrecondition in kTokenMixture,
  // whose positions are not adapters.
  absl::StatusOr<Adapter> Decode(absl::Span<const float> x) const;
  // One line for logs and CLI output, e.g. "coefficients/lora_product_svd(k=8)/per_module",
  // "token_mixture/log_linear".
  std::string Describe() const;

 private:
  ParticleSpace(std::vector<Adapter> experts, ParticleSpaceOptions options,
                std::vector<std::string> modules);

  std::vector<Adapter> experts_;
  std::vector<const Adapter*> expert_ptrs_;  // into experts_, which never changes
  ParticleSpaceOptions options_;
  std::vector<std::string> modules_;
};

// What an AdapterEvaluator scores: the decoded candidate, valid during the call only.
struct AdapterEvaluationRequest {
  int particle = 0;
  int iteration = 0;  // 0 for the initial pool
  const Adapter* adapter = nullptr;
};

// The evaluator seam one level above Evaluator: scores an adapter (schema, values, config)
// rather than a flat vector, so it works in every space. A failure is an error status (the
// evaluation is skipped), never a crash. Need not be thread-safe.
class AdapterEvaluator {
 public:
  virtual ~AdapterEvaluator() = default;
  virtual absl::StatusOr<Scores> Evaluate(const AdapterEvaluationRequest& request) = 0;
};

// An Evaluator over positions of `space`: decodes each and forwards the adapter to `inner`.
// A decode failure is that evaluation's error. Both must outlive it.
class DecodingEvaluator : public Evaluator {
 public:
  DecodingEvaluator(const ParticleSpace& space, AdapterEvaluator& inner)
      : space_(space), inner_(inner) {}
  absl::StatusOr<Scores> Evaluate(const EvaluationRequest& request) override;

 private:
  const ParticleSpace& space_;
  AdapterEvaluator& inner_;
};

// An AdapterEvaluator over a flat-vector Evaluator, for adapters of one fixed schema (the
// experts' in kWeights and kLinearAB). InvalidArgument for an adapter of another schema.
// `inner` must outlive it.
class FlatAdapterEvaluator : public AdapterEvaluator {
 public:
  FlatAdapterEvaluator(Schema schema, Evaluator& inner)
      : schema_(std::move(schema)), inner_(inner) {}
  absl::StatusOr<Scores> Evaluate(const AdapterEvaluationRequest& request) override;

 private:
  Schema schema_;
  Evaluator& inner_;
};

}  // namespace wxp

#endif  // WXP_COMMON_PARTICLE_SPACE_H_
