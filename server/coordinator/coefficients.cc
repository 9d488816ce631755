#include "server/coordinator/internal/coefficients.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/alpha_blob.h"
#include "common/model_description.h"
#include "common/safetensors.h"
#include "common/space_proto.h"
#include "common/status_macros.h"
#include "common/swarm_engine.h"
#include "common/token_manifest.h"

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

namespace {

// The architecture description of expert `e`'s base model, with the blob id it is under.
absl::StatusOr<std::pair<std::string, ModelDescription>> ExpertModel(PositionBlobs& blobs,
                                                                     const store::ExpertRecord& e) {
  auto bad = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("expert ", e.blob_id, ": ", s.message()));
  };
  absl::StatusOr<std::string> id = BaseModelBlobId(e.config_json);
  if (!id.ok()) return bad(id.status());
  absl::StatusOr<std::string> bytes = blobs.ReadAll(*id);
  if (!bytes.ok()) {
    return bad(absl::NotFoundError(
        absl::StrCat("its base model blob ", *id, " is not stored (upload it before the join)")));
  }
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::FromBytes(*std::move(bytes), *id);
  if (!file.ok()) {
    return bad(absl::InvalidArgumentError(
        absl::StrCat("its base model blob is not a safetensors file: ", file.status().message())));
  }
  absl::StatusOr<ModelDescription> d = ParseModelDescription(file->metadata());
  if (!d.ok()) return bad(d.status());
  return std::make_pair(*id, *std::move(d));
}

}  // namespace

absl::Status CheckExpertModel(PositionBlobs& blobs, const store::ExpertRecord& e) {
  return ExpertModel(blobs, e).status();
}

absl::StatusOr<std::string> TokenManifestBytes(
    PositionBlobs& blobs, const wxp::v1::SwarmSpec& spec,
    const std::vector<const store::ExpertRecord*>& experts, std::vector<float> alpha,
    double utility) {
  TokenManifest m;
  m.combination = spec.combination() == wxp::v1::LOG_LINEAR ? TokenCombination::kLogLinear
                                                            : TokenCombination::kMixture;
  m.utility = utility;
  m.alpha = std::move(alpha);
  for (const store::ExpertRecord* e : experts) {
    WXP_ASSIGN_OR_RETURN(auto model, ExpertModel(blobs, *e));
    absl::StatusOr<LoraConfig> config = ParseLoraConfig(e->config_json);
    m.experts.push_back({e->blob_id, e->config_json, model.first,
                         config.ok() ? config->base_model_name_or_path : "",
                         std::move(model.second)});
  }
  return SerializeTokenManifest(m);
}

absl::StatusOr<std::shared_ptr<const ParticleSpace>> MakeSpace(
    PositionBlobs& blobs, const wxp::v1::SwarmSpec& spec,
    const std::vector<const store::ExpertRecord*>& experts) {
  if (spec.space() == wxp::v1::TOKEN_MIXTURE) {
    for (const store::ExpertRecord* e : experts) WXP_RETURN_IF_ERROR(CheckExpertModel(blobs, *e));
  }
  WXP_ASSIGN_OR_RETURN(std::vector<Adapter> adapters, LoadExpertAdapters(blobs, experts));
  WXP_ASSIGN_OR_RETURN(ParticleSpaceOptions options,
                       SpaceOptionsFromProto(spec.space(), spec.decoder(), spec.svd_rank(),
                                             spec.per_module(), spec.combination()));
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
