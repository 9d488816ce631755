#include "common/token_manifest.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace wxp {
namespace {

constexpr char kFormat[] = "wxp-token-swarm-manifest";
constexpr int kVersion = 1;

absl::Status Bad(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("token swarm manifest: ", why));
}

// Checks everything but the weights; returns alpha's weights.
absl::StatusOr<std::vector<double>> Check(const TokenManifest& m) {
  if (m.experts.empty()) return Bad("no experts");
  for (size_t j = 0; j < m.experts.size(); ++j) {
    const TokenManifestExpert& e = m.experts[j];
    const std::string at = absl::StrCat("expert ", j, ": ");
    if (!IsSha256Hex(e.adapter_blob_id) || !IsSha256Hex(e.base_model_blob_id)) {
      return Bad(at + "a blob id is not 64 lower-case hex characters");
    }
    absl::StatusOr<std::string> named = BaseModelBlobId(e.adapter_config_json);
    if (!named.ok()) return Bad(at + std::string(named.status().message()));
    if (*named != e.base_model_blob_id) {
      return Bad(at + "adapter_config_json names another base model blob");
    }
    if (absl::StatusOr<ModelDescription> d = CheckModelDescription(e.architecture); !d.ok()) {
      return Bad(at + std::string(d.status().message()));
    }
  }
  if (m.alpha.size() != m.experts.size()) {
    return Bad(
        absl::StrCat("alpha has ", m.alpha.size(), " entries for ", m.experts.size(), " experts"));
  }
  absl::StatusOr<std::vector<double>> w = CombinationWeights(m.combination, m.alpha);
  if (!w.ok()) return Bad(w.status().message());
  return w;
}

}  // namespace

absl::StatusOr<std::string> SerializeTokenManifest(const TokenManifest& m) {
  WXP_ASSIGN_OR_RETURN(std::vector<double> weights, Check(m));
  nlohmann::json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["combination"] = TokenCombinationName(m.combination);
  j["utility"] = m.utility;
  j["experts"] = nlohmann::json::array();
  for (const TokenManifestExpert& e : m.experts) {
    j["experts"].push_back({{"adapter_blob_id", e.adapter_blob_id},
                            {"adapter_config_json", e.adapter_config_json},
                            {"base_model_blob_id", e.base_model_blob_id},
                            {"base_model", e.base_model},
                            {"architecture", e.architecture.architecture},
                            {"architecture_config", e.architecture.config}});
  }
  j["alpha"] = m.alpha;
  j["weights"] = weights;
  return j.dump(2) + "\n";
}

absl::StatusOr<TokenManifest> ParseTokenManifest(const std::string& json_text) {
  const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
  if (!j.is_object()) return Bad("not a JSON object");
  auto field = [&](const nlohmann::json& o, const char* name,
                   nlohmann::json::value_t type) -> absl::StatusOr<const nlohmann::json*> {
    auto it = o.find(name);
    const bool number = type == nlohmann::json::value_t::number_float;
    if (it == o.end() || (number ? !it->is_number() : it->type() != type)) {
      return Bad(absl::StrCat("field '", name, "' is missing or of the wrong type"));
    }
    return &*it;
  };
  using T = nlohmann::json::value_t;
  WXP_ASSIGN_OR_RETURN(const nlohmann::json* format, field(j, "format", T::string));
  if (*format != kFormat) return Bad("format is not wxp-token-swarm-manifest");
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer() || *version != kVersion) {
    return Bad("version must be 1");
  }
  TokenManifest m;
  WXP_ASSIGN_OR_RETURN(const nlohmann::json* combination, field(j, "combination", T::string));
  absl::StatusOr<TokenCombination> c = ParseTokenCombination(combination->get<std::string>());
  if (!c.ok()) return Bad(c.status().message());
  m.combination = *c;
  WXP_ASSIGN_OR_RETURN(const nlohmann::json* utility, field(j, "utility", T::number_float));
  m.utility = utility->get<double>();
  WXP_ASSIGN_OR_RETURN(const nlohmann::json* experts, field(j, "experts", T::array));
  for (const nlohmann::json& e : *experts) {
    if (!e.is_object()) return Bad("an expert is not an object");
    TokenManifestExpert x;
    std::string* strings[] = {&x.adapter_blob_id,           &x.adapter_config_json,
                              &x.base_model_blob_id,        &x.base_model,
                              &x.architecture.architecture, &x.architecture.config};
    const char* names[] = {"adapter_blob_id", "adapter_config_json", "base_model_blob_id",
                           "base_model",      "architecture",        "architecture_config"};
    for (int i = 0; i < 6; ++i) {
      WXP_ASSIGN_OR_RETURN(const nlohmann::json* v, field(e, names[i], T::string));
      *strings[i] = v->get<std::string>();
    }
    m.experts.push_back(std::move(x));
  }
  WXP_ASSIGN_OR_RETURN(const nlohmann::json* alpha, field(j, "alpha", T::array));
  WXP_ASSIGN_OR_RETURN(const nlohmann::json* weights, field(j, "weights", T::array));
  for (const nlohmann::json& a : *alpha) {
    if (!a.is_number()) return Bad("alpha holds a value that is not a number");
    m.alpha.push_back(a.get<float>());
  }
  WXP_ASSIGN_OR_RETURN(m.weights, Check(m));
  if (weights->size() != m.weights.size()) return Bad("weights and alpha differ in length");
  for (size_t i = 0; i < m.weights.size(); ++i) {
    const nlohmann::json& w = (*weights)[i];
    if (!w.is_number() || !(std::fabs(w.get<double>() - m.weights[i]) <= 1e-9)) {
      return Bad(
          absl::StrCat("weights[", i, "] is not the weight alpha gives (", m.weights[i], ")"));
    }
  }
  return m;
}

}  // namespace wxp
