// How a whole model says what it is (SPEC 4.5): the architecture description a base model's
// safetensors file carries in its "__metadata__", checked wherever a model arrives from
// outside (a token swarm's join on the server, a manifest in wxpctl) before anything relies
// on it, the way an adapter's schema is checked.
//
// The description is two metadata keys, as the built-in models write them
// (client/legal/model.h):
//   "wxp_legal_architecture"  the architecture's name: "mlp" or "transformer";
//   "wxp_legal_config"        the full configuration, canonical text: the architecture's
//                             tag ("wxp-legal-lm-v1" for mlp, "wxp-legal-transformer-v1" for
//                             transformer), then space-separated key=value settings, each
//                             key once, each value a finite decimal number.
// This is a syntactic check (the server and wxpctl know nothing of the model's maths):
// whether the settings make a model, and the tensors match them, is the model library's
// check when it loads the file (legal::ReadLegalBaseConfig, LegalModel::LoadOrPretrain).
#ifndef WXP_COMMON_MODEL_DESCRIPTION_H_
#define WXP_COMMON_MODEL_DESCRIPTION_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/safetensors.h"

namespace wxp {

inline constexpr char kModelArchitectureKey[] = "wxp_legal_architecture";
inline constexpr char kModelConfigKey[] = "wxp_legal_config";
// The key of an expert's adapter_config.json that names its base model's blob (SHA-256 hex
// of the base model's safetensors file) in a token swarm.
inline constexpr char kBaseModelBlobKey[] = "wxp_base_model_blob_id";
// A token-swarm expert directory: a PEFT adapter directory whose adapter_config.json has
// kBaseModelBlobKey, plus the base model's file under this name, which wxp-agent uploads
// beside the adapter when it joins (so every agent can fetch it by content).
inline constexpr char kExpertBaseModelFile[] = "wxp_base_model.safetensors";

struct ModelDescription {
  std::string architecture;  // "mlp" or "transformer"
  std::string config;        // the canonical configuration text
};

// The description in a model file's metadata. InvalidArgument (saying what is wrong, e.g.
// "no wxp_legal_architecture in its metadata", "unknown architecture 'rnn'", "configuration
// is not of architecture 'mlp'", "setting 'embed' is not a number") otherwise.
absl::StatusOr<ModelDescription> ParseModelDescription(const SafetensorsMetadata& metadata);
// The same over a description given as its two values (a manifest's fields).
absl::StatusOr<ModelDescription> CheckModelDescription(ModelDescription d);

// The base model blob id an adapter_config.json names under kBaseModelBlobKey.
// InvalidArgument if the text is not a JSON object, the key is missing, or its value is not
// 64 lower-case hex characters.
absl::StatusOr<std::string> BaseModelBlobId(const std::string& adapter_config_json);

}  // namespace wxp

#endif  // WXP_COMMON_MODEL_DESCRIPTION_H_
