#include "server/coordinator/internal/coefficients.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/alpha_blob.h"
#include "common/safetensors.h"
#include "common/space_proto.h"
#include "common/status_macros.h"
#include "common/swarm_engine.h"

namespace wxp::server::coordinator_internal {

absl::StatusOr<std::vector<Adapter>> LoadExpertAdapters(
    PositionBlobs& blobs, const std::vector<const store::ExpertRecord*>& experts) {
  std::vector<Adapter> out;
  for (const store::ExpertRecord* e : experts) {
    absl::StatusOr<std::string> bytes = blobs.ReadAll(e->blob_id);
    if (!bytes.ok()) {
      return absl::NotFoundError(absl::StrCat("expert blob ", e->blob_id, " is not stored"));
    }
    WXP_ASSIGN_OR_RETURN(SafetensorsFile file,
                         SafetensorsFile::FromBytes(*std::move(bytes), e->blob_id));
    Adapter a = AdapterFromSafetensors(file);
    if (!e->config_json.empty()) a.config_json = e->config_json;
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const ParticleSpace>> MakeSpace(
    PositionBlobs& blobs, const wxp::v1::SwarmSpec& spec,
    const std::vector<const store::ExpertRecord*>& experts) {
  WXP_ASSIGN_OR_RETURN(std::vector<Adapter> adapters, LoadExpertAdapters(blobs, experts));
  WXP_ASSIGN_OR_RETURN(
      ParticleSpaceOptions options,
      SpaceOptionsFromProto(spec.space(), spec.decoder(), spec.svd_rank(), spec.per_module()));
  absl::StatusOr<std::unique_ptr<ParticleSpace>> space =
      ParticleSpace::Create(std::move(adapters), options);
  if (!space.ok()) {
    std::vector<std::string> ids;
    for (const store::ExpertRecord* e : experts) ids.push_back(e->blob_id);
    return absl::InvalidArgumentError(
        absl::StrCat("the experts cannot share one EXPERT_COEFFICIENTS space (one base model "
                     "and one set of module shapes per swarm; experts numbered in the order ",
                     absl::StrJoin(ids, ", "), "): ", space.status().message()));
  }
  return std::shared_ptr<const ParticleSpace>(*std::move(space));
}

std::vector<const store::ExpertRecord*> InPoolOrder(const std::vector<store::ExpertRecord>& all) {
  std::vector<std::string> ids;
  for (const auto& e : all) ids.push_back(e.blob_id);
  std::vector<const store::ExpertRecord*> out;
  for (int i : PoolOrder(ids)) out.push_back(&all[i]);
  return out;
}

absl::StatusOr<std::vector<float>> ReadAlpha(PositionBlobs& blobs, const std::string& id) {
  WXP_ASSIGN_OR_RETURN(std::string bytes, blobs.ReadAll(id));
  absl::StatusOr<std::vector<float>> alpha = AlphaFromBlobBytes(std::move(bytes));
  if (!alpha.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("blob ", id, ": ", alpha.status().message()));
  }
  return alpha;
}

absl::Status FillAlpha(PositionBlobs& blobs, wxp::v1::PositionRef& ref) {
  if (ref.blob_id().empty()) return absl::OkStatus();
  WXP_ASSIGN_OR_RETURN(std::vector<float> alpha, ReadAlpha(blobs, ref.blob_id()));
  ref.mutable_alpha()->Assign(alpha.begin(), alpha.end());
  return absl::OkStatus();
}

}  // namespace wxp::server::coordinator_internal
