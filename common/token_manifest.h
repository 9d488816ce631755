// The export of a token swarm (SPEC 4.5): a manifest naming the whole models g combines and
// how, rather than an adapter (a token-mixture position is not one). Written by the server
// (AdminService.ExportBest, as the file kTokenManifestFile), read by `wxpctl manifest`.
//
// JSON, one object:
//   {"format": "wxp-token-swarm-manifest", "version": 1,
//    "combination": "mixture" | "log_linear",
//    "utility": g's utility when exported,
//    "experts": [{"adapter_blob_id": hex64, "adapter_config_json": "...",
//                 "base_model_blob_id": hex64, "base_model": "<base_model_name_or_path>",
//                 "architecture": "mlp", "architecture_config": "<canonical config>"}, ...],
//    "alpha": [g's coefficients, one per expert, in that (pool) order],
//    "weights": [what multiplies each expert: CombinationWeights(combination, alpha)]}
// Blob ids are content addresses: an expert is exactly those two blobs.
#ifndef WXP_COMMON_TOKEN_MANIFEST_H_
#define WXP_COMMON_TOKEN_MANIFEST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_description.h"
#include "common/token_combination.h"

namespace wxp {

inline constexpr char kTokenManifestFile[] = "token_swarm_manifest.json";

struct TokenManifestExpert {
  std::string adapter_blob_id;
  std::string adapter_config_json;  // verbatim, names base_model_blob_id
  std::string base_model_blob_id;
  std::string base_model;  // base_model_name_or_path
  ModelDescription architecture;
};

struct TokenManifest {
  TokenCombination combination = TokenCombination::kMixture;
  double utility = 0;
  std::vector<TokenManifestExpert> experts;
  std::vector<float> alpha;
  std::vector<double> weights;  // filled by Serialize and Parse from alpha
};

// The JSON text (weights computed from alpha). InvalidArgument for what Parse would refuse.
absl::StatusOr<std::string> SerializeTokenManifest(const TokenManifest& m);

// Parses and checks a manifest. InvalidArgument saying what is wrong for: text that is not a
// JSON object; another format or version; a missing or mistyped field; an unknown
// combination; no experts; a blob id that is not 64 lower-case hex characters; an adapter
// config whose wxp_base_model_blob_id differs from base_model_blob_id; an architecture
// description CheckModelDescription refuses; alpha of another length than the experts, or
// holding a NaN or infinity; weights that are not the ones alpha gives (to 1e-9).
absl::StatusOr<TokenManifest> ParseTokenManifest(const std::string& json_text);

}  // namespace wxp

#endif  // WXP_COMMON_TOKEN_MANIFEST_H_
