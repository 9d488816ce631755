// The synthetic task of SPEC 7 measured on what a LoRA means rather than on its factors:
// the utility of an adapter is the negative RMS distance between its per-module deltas
// ΔW = s·B·A and a hidden target's. Unlike the flat-vector SyntheticEvaluator it does not
// depend on the LoRA basis (B·Q, Q⁻¹·A scores the same as B, A), so runs in different
// particle spaces (common/particle_space.h) can be compared on one scale.
//
// No out × in matrix is ever formed: a module's ‖ΔW − T‖² is expanded into inner products
// of factored matrices, ⟨B₁A₁, B₂A₂⟩ = Σ_ab (B₁ᵀB₂)_ab (A₁A₂ᵀ)_ab, which costs
// O(r₁·r₂·(out + in)).
#ifndef WXP_COMMON_LORA_SYNTHETIC_H_
#define WXP_COMMON_LORA_SYNTHETIC_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/adapter.h"
#include "common/particle_space.h"

namespace wxp {

// Name of the score component DeltaWEvaluator reports (maximised).
inline constexpr char kDeltaWComponent[] = "neg_rms_delta_w";

// `count` random PEFT LoRA experts of one schema: `modules` square modules of `width`
// features and rank `rank` (F32, factors ~ N(0, scale²)), lora_alpha = 2·rank (scaling 2),
// and a config naming the modules. Deterministic in seed.
std::vector<Adapter> MakeRandomLoraExperts(int count, int modules, int64_t width, int64_t rank,
                                           uint64_t seed, double scale = 0.05);

// A ΔW per module in factored form, b [out, rank] (scaling folded in) times a [rank, in].
struct FactoredDelta {
  int64_t out = 0, in = 0, rank = 0;
  std::vector<double> b, a;
};

// The hidden target: ΔW per module name.
using DeltaTarget = std::map<std::string, FactoredDelta>;

// The ΔW of every module of `adapter` (scaling from its config). InvalidArgument as
// ParseLoraLayout.
absl::StatusOr<DeltaTarget> AdapterDeltas(const Adapter& adapter);

// A target near the experts' ΔW span: per module Σ_j α_j·ΔW_j with Σ α_j = 1 (drawn around
// uniform, sometimes extrapolating, the same α for every module) plus a random rank-2 term
// of RMS about `off_span_rms`, which no combination of the experts reaches. InvalidArgument
// for no experts or experts CheckCompatibleExperts refuses.
absl::StatusOr<DeltaTarget> MakeDeltaTarget(const std::vector<Adapter>& experts, uint64_t seed,
                                            double off_span_rms);

// −sqrt(Σ_m ‖ΔW_m − T_m‖² / Σ_m out_m·in_m) over the union of modules (a module missing on
// one side counts as zero there). InvalidArgument if a module's shape differs from the
// target's, or as AdapterDeltas.
absl::StatusOr<double> DeltaWUtility(const DeltaTarget& target, const Adapter& adapter);

// The utility of the point of the experts' ΔW span closest to `target` among the affine
// combinations (Σ_j α_j = 1, which every Model Swarms position in the coefficient space
// satisfies): one α for all modules, or with `per_module` one α per module. It is the best
// a LORA_PRODUCT run (per expert or per module) can score, noise aside; for the other
// decoders and the weights space, whose ΔW is not linear in α, only a reference point.
// InvalidArgument as MakeDeltaTarget or DeltaWUtility.
absl::StatusOr<double> ProductSpanUtility(const DeltaTarget& target,
                                          const std::vector<Adapter>& experts, bool per_module);

// Scores adapters by DeltaWUtility, plus N(0, noise²) noise deterministic per (seed,
// particle, iteration) when noise_stddev > 0.
class DeltaWEvaluator : public AdapterEvaluator {
 public:
  explicit DeltaWEvaluator(DeltaTarget target, double noise_stddev = 0, uint64_t seed = 0)
      : target_(std::move(target)), noise_stddev_(noise_stddev), seed_(seed) {}
  absl::StatusOr<Scores> Evaluate(const AdapterEvaluationRequest& request) override;

 private:
  DeltaTarget target_;
  double noise_stddev_;
  uint64_t seed_;
};

}  // namespace wxp

#endif  // WXP_COMMON_LORA_SYNTHETIC_H_
