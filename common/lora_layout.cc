#include "common/lora_layout.h"

#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace wxp {
namespace {

using Json = nlohmann::ordered_json;

constexpr char kASuffix[] = ".lora_A.weight";
constexpr char kBSuffix[] = ".lora_B.weight";

// PEFT's LoraConfig defaults for keys a config leaves out.
constexpr int64_t kPeftDefaultRank = 8;
constexpr double kPeftDefaultAlpha = 8;

// What of adapter_config.json decides a module's scaling, in the config's key order.
struct ScalingConfig {
  int64_t r = kPeftDefaultRank;
  double lora_alpha = kPeftDefaultAlpha;
  bool use_rslora = false;
  std::vector<std::pair<std::string, int64_t>> rank_pattern;
  std::vector<std::pair<std::string, double>> alpha_pattern;
};

absl::Status CheckPatternKey(const char* field, const std::string& key) {
  // A dot is literal in every module name PEFT produces, so it is read literally here too.
  if (key.empty() || key.find_first_of("\\^$*+?()[]{}|") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "adapter_config.json: ", field, " key '", key,
        "' is not a plain module name or suffix; regular-expression keys are not supported"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> OptionalBool(const Json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter_config.json: '", key, "' is not a boolean"));
  }
  return it->get<bool>();
}

// Parses what ParseLoraConfig does not look at, and refuses what cannot be decoded.
absl::StatusOr<ScalingConfig> ParseScaling(const std::string& text, LoraLayout* layout) {
  WXP_ASSIGN_OR_RETURN(LoraConfig base, ParseLoraConfig(text));
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  ScalingConfig c;
  if (base.r) c.r = *base.r;
  if (base.lora_alpha) c.lora_alpha = *base.lora_alpha;
  layout->base_model = base.base_model_name_or_path;
  WXP_ASSIGN_OR_RETURN(bool dora, OptionalBool(j, "use_dora", false));
  if (dora) {
    return absl::InvalidArgumentError(
        "adapter_config.json: use_dora is true; DoRA adapters (a magnitude vector per module) "
        "are not a sum of B·A and cannot be decoded");
  }
  WXP_ASSIGN_OR_RETURN(c.use_rslora, OptionalBool(j, "use_rslora", false));
  if (auto it = j.find("fan_in_fan_out"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      return absl::InvalidArgumentError("adapter_config.json: 'fan_in_fan_out' is not a boolean");
    }
    layout->fan_in_fan_out = it->get<bool>();
  }
  if (auto it = j.find("rank_pattern"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      return absl::InvalidArgumentError("adapter_config.json: 'rank_pattern' is not an object");
    }
    for (const auto& [key, value] : it->items()) {
      WXP_RETURN_IF_ERROR(CheckPatternKey("rank_pattern", key));
      if (!value.is_number_integer() || value.get<int64_t>() <= 0) {
        return absl::InvalidArgumentError(absl::StrCat("adapter_config.json: rank_pattern['", key,
                                                       "'] is not a positive integer"));
      }
      c.rank_pattern.emplace_back(key, value.get<int64_t>());
    }
  }
  if (auto it = j.find("alpha_pattern"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      return absl::InvalidArgumentError("adapter_config.json: 'alpha_pattern' is not an object");
    }
    for (const auto& [key, value] : it->items()) {
      WXP_RETURN_IF_ERROR(CheckPatternKey("alpha_pattern", key));
      if (!value.is_number()) {
        return absl::InvalidArgumentError(
            absl::StrCat("adapter_config.json: alpha_pattern['", key, "'] is not a number"));
      }
      c.alpha_pattern.emplace_back(key, value.get<double>());
    }
  }
  return c;
}

bool PatternMatches(const std::string& key, const std::string& module_key) {
  return module_key == key || absl::EndsWith(module_key, absl::StrCat(".", key));
}

template <typename T>
T PatternValue(const std::vector<std::pair<std::string, T>>& pattern, const std::string& module_key,
               T fallback) {
  for (const auto& [key, value] : pattern) {
    if (PatternMatches(key, module_key)) return value;
  }
  return fallback;
}

// Names the kind of a tensor that is not a LoRA factor, for the refusal.
std::string NotAFactorReason(const std::string& name) {
  if (absl::StrContains(name, "lora_embedding_")) {
    return "is a LoRA embedding factor (lora_embedding_A/B); only linear-layer LoRA is decoded";
  }
  if (absl::StrContains(name, "lora_magnitude_vector")) {
    return "is a DoRA magnitude vector; DoRA adapters cannot be decoded";
  }
  if (absl::StrContains(name, ".lora_B.bias") || absl::StrContains(name, ".lora_A.bias")) {
    return "is a LoRA bias (lora_bias); only bias-free LoRA factors are decoded";
  }
  return "is not a LoRA factor (<module>.lora_A.weight / <module>.lora_B.weight)";
}

}  // namespace

int LoraLayout::Find(const std::string& name) const {
  for (size_t i = 0; i < modules.size(); ++i) {
    if (modules[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::string PeftModuleKey(const std::string& module) {
  return absl::StartsWith(module, kPeftModelPrefix) ? module.substr(strlen(kPeftModelPrefix))
                                                    : module;
}

absl::StatusOr<LoraLayout> ParseLoraLayout(const Adapter& adapter) {
  LoraLayout layout;
  std::optional<ScalingConfig> config;
  if (adapter.config_json) {
    WXP_ASSIGN_OR_RETURN(config, ParseScaling(*adapter.config_json, &layout));
  }
  const Schema& s = adapter.schema;
  std::map<std::string, size_t> b_tensors;  // module -> schema index, until paired
  for (size_t i = 0; i < s.size(); ++i) {
    const TensorSpec& t = s.tensor(i);
    const bool is_a = absl::EndsWith(t.name, kASuffix);
    if (!is_a && !absl::EndsWith(t.name, kBSuffix)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", t.name, "' ", NotAFactorReason(t.name)));
    }
    if (t.shape.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat("LoRA factor '", t.name, "' has shape ",
                                                     ShapeToString(t.shape), ", not 2-D"));
    }
    const std::string module = t.name.substr(0, t.name.size() - strlen(kASuffix));
    if (is_a) {
      LoraModule m;
      m.name = module;
      m.a_tensor = i;
      layout.modules.push_back(std::move(m));
    } else {
      b_tensors[module] = i;
    }
  }
  for (LoraModule& m : layout.modules) {
    auto b = b_tensors.find(m.name);
    if (b == b_tensors.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", m.name, kASuffix, "' has no matching '", m.name, kBSuffix, "'"));
    }
    m.b_tensor = b->second;
    b_tensors.erase(b);
    const std::vector<int64_t>& a = s.tensor(m.a_tensor).shape;
    const std::vector<int64_t>& bs = s.tensor(m.b_tensor).shape;
    if (a[0] != bs[1] || a[0] < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "module '", m.name, "': lora_A.weight ", ShapeToString(a), " and lora_B.weight ",
          ShapeToString(bs), " disagree on the rank (A is [r, in], B is [out, r])"));
    }
    m.rank = a[0];
    m.in_features = a[1];
    m.out_features = bs[0];
    if (!config) continue;  // no config: the weights mean what they say
    const std::string key = PeftModuleKey(m.name);
    const int64_t r = PatternValue(config->rank_pattern, key, config->r);
    const double alpha = PatternValue(config->alpha_pattern, key, config->lora_alpha);
    if (r != m.rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", m.name, kASuffix, "' has rank ", m.rank,
                       " but adapter_config.json gives the module r = ", r));
    }
    m.scaling = config->use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / r;
    if (!std::isfinite(m.scaling)) {
      return absl::InvalidArgumentError(absl::StrCat("module '", m.name,
                                                     "': scaling from lora_alpha = ", alpha,
                                                     " and r = ", r, " is not finite"));
    }
  }
  if (!b_tensors.empty()) {
    const std::string& module = b_tensors.begin()->first;
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", module, kBSuffix, "' has no matching '", module, kASuffix, "'"));
  }
  return layout;
}

absl::StatusOr<LoraExpertSet> CheckCompatibleExperts(const std::vector<const Adapter*>& experts) {
  if (experts.empty()) return absl::InvalidArgumentError("no experts given");
  LoraExpertSet set;
  std::map<std::string, std::pair<size_t, size_t>> first_seen;  // module -> (expert, index)
  for (size_t j = 0; j < experts.size(); ++j) {
    absl::StatusOr<LoraLayout> layout = ParseLoraLayout(*experts[j]);
    if (!layout.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("expert ", j, ": ", layout.status().message()));
    }
    for (const LoraModule& m : layout->modules) {
      auto [it, inserted] = first_seen.emplace(m.name, std::make_pair(j, set.modules.size()));
      if (inserted) {
        set.modules.push_back(m.name);
        set.in_features.push_back(m.in_features);
        set.out_features.push_back(m.out_features);
        continue;
      }
      const size_t k = it->second.second;
      if (set.in_features[k] != m.in_features || set.out_features[k] != m.out_features) {
        return absl::InvalidArgumentError(
            absl::StrCat("experts ", it->second.first, " and ", j, " disagree on module '", m.name,
                         "': (out, in) = (", set.out_features[k], ", ", set.in_features[k],
                         ") vs (", m.out_features, ", ", m.in_features, ")"));
      }
    }
    set.layouts.push_back(*std::move(layout));
  }
  bool all_name_base = true;
  for (const LoraLayout& l : set.layouts) all_name_base &= !l.base_model.empty();
  for (size_t j = 1; j < set.layouts.size(); ++j) {
    const LoraLayout& a = set.layouts[0];
    const LoraLayout& b = set.layouts[j];
    if (all_name_base && a.base_model != b.base_model) {
      return absl::InvalidArgumentError(absl::StrCat("experts 0 and ", j,
                                                     " are adapters of different base models ('",
                                                     a.base_model, "' vs '", b.base_model, "')"));
    }
    if (a.fan_in_fan_out && b.fan_in_fan_out && *a.fan_in_fan_out != *b.fan_in_fan_out) {
      return absl::InvalidArgumentError(absl::StrCat(
          "experts 0 and ", j, " disagree on fan_in_fan_out: their base layers differ"));
    }
  }
  return set;
}

}  // namespace wxp
