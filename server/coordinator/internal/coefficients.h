// What the coordinator does differently in the EXPERT_COEFFICIENTS space (SPEC 4.3):
// positions are coefficient vectors alpha over the experts in pool order, stored as
// canonical alpha blobs (common/alpha_blob.h) so every other piece of bookkeeping stays
// the one the WEIGHTS space uses. Internal to server/coordinator.
#ifndef WXP_SERVER_COORDINATOR_INTERNAL_COEFFICIENTS_H_
#define WXP_SERVER_COORDINATOR_INTERNAL_COEFFICIENTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/adapter.h"
#include "common/particle_space.h"
#include "proto/wxp.pb.h"
#include "server/coordinator/position_blobs.h"
#include "server/store/swarm_store.h"

namespace wxp::server::coordinator_internal {

// The experts as adapters (weights from the blob store, config from their join), in the
// order given. NotFound / InvalidArgument naming the blob.
absl::StatusOr<std::vector<Adapter>> LoadExpertAdapters(
    PositionBlobs& blobs, const std::vector<const store::ExpertRecord*>& experts);

// The space over `experts` (pool order), InvalidArgument naming the blobs in that order
// when ParticleSpace refuses them (experts of another base model or module shape, a
// LINEAR_AB swarm whose experts differ in schema). In TOKEN_MIXTURE every expert's base
// model is checked first, like a schema (SwarmSpec.space docs): NotFound naming the expert
// when its base model blob is not stored, InvalidArgument naming it when its config names
// no base model blob, the blob is not safetensors or its architecture description is
// malformed (common/model_description.h).
// TOKEN_MIXTURE: expert `e`'s base model checked like a schema (see MakeSpace).
absl::Status CheckExpertModel(PositionBlobs& blobs, const store::ExpertRecord& e);

// TOKEN_MIXTURE's export (SPEC 4.5): the manifest (common/token_manifest.h) of g = `alpha`
// over `experts` (pool order) with the spec's combination. The experts' checks' errors.
absl::StatusOr<std::string> TokenManifestBytes(
    PositionBlobs& blobs, const wxp::v1::SwarmSpec& spec,
    const std::vector<const store::ExpertRecord*>& experts, std::vector<float> alpha,
    double utility);

absl::StatusOr<std::shared_ptr<const ParticleSpace>> MakeSpace(
    PositionBlobs& blobs, const wxp::v1::SwarmSpec& spec,
    const std::vector<const store::ExpertRecord*>& experts);

// The experts of a swarm in pool order (ascending blob id).
std::vector<const store::ExpertRecord*> InPoolOrder(const std::vector<store::ExpertRecord>& all);

// The alpha a stored alpha blob holds. NotFound / InvalidArgument naming the blob.
absl::StatusOr<std::vector<float>> ReadAlpha(PositionBlobs& blobs, const std::string& id);

// Sets `ref.alpha` from its blob when it names one.
absl::Status FillAlpha(PositionBlobs& blobs, wxp::v1::PositionRef& ref);

}  // namespace wxp::server::coordinator_internal

#endif  // WXP_SERVER_COORDINATOR_INTERNAL_COEFFICIENTS_H_
