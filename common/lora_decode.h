// Decoding expert coefficients into an ordinary PEFT LoRA adapter (SPEC 4.3). A swarm in the
// EXPERT_COEFFICIENTS space searches over α; before a candidate is evaluated or exported it
// becomes an adapter here, from the n experts it is a combination of.
//
// Decoders, for expert j with factors (A_j [r_j, in], B_j [out, r_j]) and scaling s_j on a
// module (a module an expert lacks contributes nothing there):
//   kLinearAB       (Σ α_j B_j, Σ α_j A_j): the WEIGHTS-space trajectory. Needs identical
//                   schemas; written with the first expert's schema, dtypes and config, so
//                   the first expert's scaling applies to the result (as in WEIGHTS).
//   kLoraProduct    ΔW = Σ_j α_j s_j B_j A_j exactly, as a LoRA of rank R = Σ r_j (over the
//                   experts holding the module): A' = the A_j stacked by rows, B' = the
//                   α_j s_j B_j side by side by columns, scaling exactly 1.
//   kLoraProductSvd the same ΔW truncated to rank k = svd_rank by SVD (the best rank-k
//                   approximation in Frobenius norm), as B = U√S, A = √S Vᵀ, scaling 1;
//                   computed from QR factors of B' and A'ᵀ and the SVD of the small R×R
//                   core, never the out×in matrix. A module whose ΔW has rank below k is
//                   exact, padded with zero factors so every module has rank k.
//
// The result of the product decoders is a PEFT directory's worth: tensors named
// <module>.lora_A.weight / lora_B.weight in the swarm's module order (LoraExpertSet), F32
// (scaled products do not survive a 16-bit storage dtype exactly), the first expert's
// safetensors metadata, and the first expert's adapter_config.json with only these keys
// changed, every other key (unknown ones included) kept in place:
//   r = lora_alpha = the rank most modules have (scaling 1);
//   rank_pattern / alpha_pattern = {module: rank} for modules of another rank (each with
//     alpha = rank, scaling 1), keyed by the full module name, which PEFT's suffix match
//     finds exactly; entries the first expert had are dropped (they described its ranks);
//   use_rslora = false (with it, r = alpha would not be scaling 1);
//   target_modules = the experts' lists merged in order when they differ (a regex string in
//     one of them that differs from the others' is refused: no sound union exists).
// Modules with different total ranks get rank_pattern rather than zero padding to a common
// rank: padding would grow the file and every forward pass of the deployed adapter by rows
// of zeros, while rank_pattern is the field PEFT itself writes for exactly this case. The
// SVD decoder pads instead, because there k is a deployment choice and a single r is simpler.
//
// Thread-compatible; functions are pure. LibTorch is used inside the implementation only.
#ifndef WXP_COMMON_LORA_DECODE_H_
#define WXP_COMMON_LORA_DECODE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/adapter.h"
#include "common/lora_layout.h"

namespace wxp {

enum class LoraDecoder { kLinearAB, kLoraProduct, kLoraProductSvd };

// α per expert (the same for every module) or per expert and module: an n × M row-major
// matrix over LoraExpertSet::modules (expert j's coefficient for module m at j·M + m).
class LoraCoefficients {
 public:
  static LoraCoefficients PerExpert(std::vector<double> alpha);
  static LoraCoefficients PerModule(size_t experts, size_t modules, std::vector<double> alpha);

  size_t experts() const { return experts_; }
  bool per_module() const { return modules_ > 0; }
  size_t modules() const { return modules_; }  // 0 unless per_module()
  // Expert j's coefficient on module m (m ignored per expert); j, m in range.
  double at(size_t expert, size_t module) const {
    return alpha_[per_module() ? expert * modules_ + module : expert];
  }
  const std::vector<double>& values() const { return alpha_; }

 private:
  LoraCoefficients(size_t experts, size_t modules, std::vector<double> alpha)
      : experts_(experts), modules_(modules), alpha_(std::move(alpha)) {}
  size_t experts_;
  size_t modules_;
  std::vector<double> alpha_;
};

struct LoraDecodeOptions {
  LoraDecoder decoder = LoraDecoder::kLoraProduct;
  int64_t svd_rank = 0;  // kLoraProductSvd only; must be >= 1 there
};

// Decodes α over `experts` (adapters, in the swarm's order). InvalidArgument for experts
// CheckCompatibleExperts refuses, for kLinearAB over experts whose schemas differ (naming
// the difference), for coefficients whose shape does not fit (n experts, M modules) or that
// hold a non-finite value, for svd_rank < 1 with kLoraProductSvd, and for a config whose
// target_modules cannot be merged; Internal for a LibTorch failure.
absl::StatusOr<Adapter> DecodeLora(const std::vector<const Adapter*>& experts,
                                   const LoraCoefficients& alpha, const LoraDecodeOptions& options);

}  // namespace wxp

#endif  // WXP_COMMON_LORA_DECODE_H_
