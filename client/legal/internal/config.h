// The torch-free part of ModelConfig and the base model's identity: canonical encoding,
// validation, names, and the PEFT adapter_config.json the model's adapters carry.
#ifndef WXP_CLIENT_LEGAL_INTERNAL_CONFIG_H_
#define WXP_CLIENT_LEGAL_INTERNAL_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/legal/model.h"

namespace wxp::legal::internal {

// Metadata keys of a base model file.
inline constexpr char kConfigKey[] = "wxp_legal_config";
inline constexpr char kConfigHashKey[] = "wxp_legal_config_hash";
inline constexpr char kArchitectureKey[] = "wxp_legal_architecture";

// InvalidArgument naming what is wrong with `config`.
absl::Status CheckConfig(const ModelConfig& config);

// SHA-256 hex of the canonical config and the corpus fingerprint: what a cached base is
// valid for.
std::string ConfigHash(const ModelConfig& config, const std::string& corpus_fingerprint);

// adapter_config.json of the model's own adapters. The MLP's is the short config WXP has
// always written; the transformer's has every key PEFT 0.17 writes for a LoRA (as
// testdata/peft shows), so it reads as a real one.
std::string LoraConfigJson(const ModelConfig& config, const std::string& base_name,
                           const std::vector<std::string>& target_modules);

}  // namespace wxp::legal::internal

#endif  // WXP_CLIENT_LEGAL_INTERNAL_CONFIG_H_
