#include "common/model_description.h"

#include <cmath>
#include <set>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/sha256.h"
#include "nlohmann/json.hpp"

namespace wxp {
namespace {

// The canonical tag each built-in architecture's configuration starts with
// (client/legal/internal/config.cc; model_test checks a real base file against this).
const char* TagOf(const std::string& architecture) {
  if (architecture == "mlp") return "wxp-legal-lm-v1";
  if (architecture == "transformer") return "wxp-legal-transformer-v1";
  return nullptr;
}

}  // namespace

absl::StatusOr<ModelDescription> CheckModelDescription(ModelDescription d) {
  auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("model description: ", why));
  };
  const char* tag = TagOf(d.architecture);
  if (tag == nullptr) {
    return bad(
        absl::StrCat("unknown architecture '", d.architecture, "' (known: mlp, transformer)"));
  }
  std::vector<std::string> words = absl::StrSplit(d.config, ' ');
  if (words[0] != tag) {
    return bad(absl::StrCat("the configuration is not of architecture '", d.architecture,
                            "' (it must start with ", tag, ")"));
  }
  std::set<std::string> seen;
  for (size_t i = 1; i < words.size(); ++i) {
    std::vector<std::string> kv = absl::StrSplit(words[i], absl::MaxSplits('=', 1));
    double value = 0;
    if (kv.size() != 2 || kv[0].empty()) {
      return bad(absl::StrCat("setting '", words[i], "' is not key=value"));
    }
    if (!absl::SimpleAtod(kv[1], &value) || !std::isfinite(value)) {
      return bad(absl::StrCat("setting '", kv[0], "' is not a number"));
    }
    if (!seen.insert(kv[0]).second) return bad(absl::StrCat("setting '", kv[0], "' twice"));
  }
  if (seen.empty()) return bad("the configuration has no settings");
  return d;
}

absl::StatusOr<ModelDescription> ParseModelDescription(const SafetensorsMetadata& metadata) {
  const std::string* architecture = nullptr;
  const std::string* config = nullptr;
  for (const auto& [k, v] : metadata) {
    if (k == kModelArchitectureKey) architecture = &v;
    if (k == kModelConfigKey) config = &v;
  }
  for (const auto& [ptr, key] :
       {std::pair{architecture, kModelArchitectureKey}, std::pair{config, kModelConfigKey}}) {
    if (ptr == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("model description: no ", key,
                                                     " in its metadata (not a base model "
                                                     "file of a known architecture)"));
    }
  }
  return CheckModelDescription({*architecture, *config});
}

absl::StatusOr<std::string> BaseModelBlobId(const std::string& adapter_config_json) {
  const nlohmann::json j = nlohmann::json::parse(adapter_config_json, nullptr, false);
  if (!j.is_object()) {
    return absl::InvalidArgumentError("adapter_config.json is not a JSON object");
  }
  auto it = j.find(kBaseModelBlobKey);
  if (it == j.end() || !it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter_config.json has no ", kBaseModelBlobKey,
                     " (a token swarm's expert names its base model's blob, SHA-256 hex, there)"));
  }
  const std::string id = it->get<std::string>();
  if (!IsSha256Hex(id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter_config.json ", kBaseModelBlobKey, " '", id,
                     "' is not a blob id (64 lower-case hex characters)"));
  }
  return id;
}

}  // namespace wxp
