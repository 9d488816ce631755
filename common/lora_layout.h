// The LoRA structure of a PEFT adapter (SPEC 3, 4.3): which tensors pair up as the factors
// of which module, each module's rank and scaling, and whether a set of experts can be
// combined module by module. No arithmetic here and no LibTorch: the decoders
// (common/lora_decode.h) and evaluators that apply a LoRA of any rank build on this.
//
// A module is named by its tensors' common prefix as PEFT saves them, e.g.
//   base_model.model.transformer.h.0.attn.c_attn
// for base_model.model.transformer.h.0.attn.c_attn.lora_A.weight ([r, in]) and
// ...lora_B.weight ([out, r]). Its delta is ΔW = s·B·A ([out, in]) whatever fan_in_fan_out
// says: that flag only tells PEFT to transpose ΔW onto a Conv1D base weight, so it changes
// nothing about the factors and is carried through unchanged.
//
// Scaling follows PEFT's LoraLayer: s = alpha / r, or alpha / sqrt(r) with use_rslora, where
// r and alpha are the config's `r` and `lora_alpha` unless `rank_pattern` / `alpha_pattern`
// hold a key for the module. Pattern keys are matched as PEFT matches them, by the module
// name (without the "base_model.model." prefix) being the key or ending in "." + key; the
// first matching key in the config's order wins. Keys that use regular-expression syntax
// beyond a literal dot are refused rather than guessed at. An adapter without a config (a
// bare .safetensors file) has scaling 1 per module (InferLoraConfig's reading of it).
#ifndef WXP_COMMON_LORA_LAYOUT_H_
#define WXP_COMMON_LORA_LAYOUT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/adapter.h"

namespace wxp {

inline constexpr char kPeftModelPrefix[] = "base_model.model.";

struct LoraModule {
  std::string name;     // tensor-name prefix before ".lora_A.weight"
  size_t a_tensor = 0;  // schema index of lora_A.weight, [rank, in_features]
  size_t b_tensor = 0;  // schema index of lora_B.weight, [out_features, rank]
  int64_t rank = 0;
  int64_t in_features = 0;
  int64_t out_features = 0;
  double scaling = 1;  // finite; what PEFT multiplies B·A by
};

// The modules of one adapter in schema order of their lora_A tensors.
struct LoraLayout {
  std::vector<LoraModule> modules;
  std::string base_model;              // base_model_name_or_path; empty if absent
  std::optional<bool> fan_in_fan_out;  // absent without a config or the key
  // Index into `modules` by name, -1 if the adapter has no such module.
  int Find(const std::string& name) const;
};

// Parses `adapter`'s tensors and config into modules. InvalidArgument naming the tensor (or
// config key) for: a lora_A without its lora_B or vice versa; factors that are not 2-D or
// whose ranks disagree; a tensor rank that differs from the configured one for the module;
// any tensor that is not a LoRA factor (lora_embedding_A/B, DoRA's lora_magnitude_vector,
// lora bias, modules_to_save copies); a config with use_dora; a regex pattern key; a
// non-finite scaling; malformed rank_pattern/alpha_pattern/use_rslora.
absl::StatusOr<LoraLayout> ParseLoraLayout(const Adapter& adapter);

// The name PEFT matches target_modules and pattern keys against: `module` without the
// "base_model.model." prefix.
std::string PeftModuleKey(const std::string& module);

// Layouts of n experts checked for being combinable module by module: the same
// base_model_name_or_path (when every expert names one), the same fan_in_fan_out (when
// every expert says), and for every module present in more than one expert the same
// (out, in) shape. Experts may differ in rank, scaling and which modules they hold; a module
// missing from an expert contributes nothing there.
struct LoraExpertSet {
  std::vector<LoraLayout> layouts;  // one per expert, in the given order
  // The union of modules in the swarm's fixed order: experts in order, each in its schema
  // order, a module listed where it first appears. Per-module coefficients index this.
  std::vector<std::string> modules;
  std::vector<int64_t> in_features;   // per entry of `modules`
  std::vector<int64_t> out_features;  // per entry of `modules`
};

// InvalidArgument for an empty list, an adapter ParseLoraLayout refuses (prefixed with
// "expert <j>: "), or incompatible experts (naming both experts and the module or field).
absl::StatusOr<LoraExpertSet> CheckCompatibleExperts(const std::vector<const Adapter*>& experts);

}  // namespace wxp

#endif  // WXP_COMMON_LORA_LAYOUT_H_
