#include "client/agent/coefficient_space.h"

#include "absl/strings/str_cat.h"
#include "common/alpha_blob.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/space_proto.h"
#include "common/status_macros.h"

namespace wxp::agent {

absl::StatusOr<std::string> PutAlphaBlob(BlobCache& cache, absl::Span<const float> alpha) {
  WXP_ASSIGN_OR_RETURN(std::string bytes, AlphaBlobBytes(alpha));
  std::string id = Sha256Hex(bytes);
  if (!cache.Has(id)) WXP_RETURN_IF_ERROR(WriteFileAtomically(cache.Path(id), bytes));
  return id;
}

absl::StatusOr<std::vector<float>> ReadAlphaBlob(const std::string& path) {
  WXP_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  absl::StatusOr<std::vector<float>> alpha = AlphaFromBlobBytes(std::move(bytes));
  if (!alpha.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", alpha.status().message()));
  }
  return alpha;
}

absl::StatusOr<std::unique_ptr<ParticleSpace>> MakeAgentSpace(
    const wxp::v1::GetAssignmentResponse& resp, const std::vector<std::string>& expert_files) {
  if (resp.space() != wxp::v1::EXPERT_COEFFICIENTS && resp.space() != wxp::v1::TOKEN_MIXTURE) {
    return absl::InvalidArgumentError(
        "the swarm does not search EXPERT_COEFFICIENTS or TOKEN_MIXTURE");
  }
  absl::StatusOr<ParticleSpaceOptions> o = SpaceOptionsFromProto(
      resp.space(), resp.decoder(), resp.svd_rank(), resp.per_module(), resp.combination());
  if (!o.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the assignment: ", o.status().message()));
  }
  std::vector<Adapter> experts;
  for (size_t j = 0; j < expert_files.size(); ++j) {
    WXP_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(expert_files[j]));
    Adapter a = AdapterFromSafetensors(f);
    if (static_cast<int>(j) < resp.expert_adapter_configs_size() &&
        !resp.expert_adapter_configs(j).empty()) {
      a.config_json = resp.expert_adapter_configs(j);
    }
    experts.push_back(std::move(a));
  }
  return ParticleSpace::Create(std::move(experts), *o);
}

absl::StatusOr<Adapter> DecodeToFile(const ParticleSpace& space, const std::string& alpha_path,
                                     const std::string& out_path) {
  WXP_ASSIGN_OR_RETURN(std::vector<float> alpha, ReadAlphaBlob(alpha_path));
  WXP_ASSIGN_OR_RETURN(Adapter decoded, space.Decode(alpha));
  WXP_RETURN_IF_ERROR(SaveSafetensors(decoded, out_path));
  decoded.values.clear();
  return decoded;
}

}  // namespace wxp::agent
