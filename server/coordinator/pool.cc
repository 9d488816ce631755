#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/adapter.h"
#include "common/alpha_blob.h"
#include "common/safetensors.h"
#include "common/status_macros.h"
#include "common/swarm_pool.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/internal/coefficients.h"
#include "server/coordinator/internal/swarm_state.h"

// Building the pool (SPEC 4 step 1, 5.2): owners by capacity, crossover children, engine.

namespace wxp::server {

using store::ParticleRow;
using store::SwarmUpdate;

namespace {

// The WEIGHTS pool's position ids: the experts as uploaded, then the crossover children
// (server-side, SPEC 5.2), stored as blobs of the first expert's schema.
absl::Status GrowWeightsPool(PositionBlobs& blobs, SwarmUpdate& u,
                             const std::vector<const store::ExpertRecord*>& experts, int pool,
                             uint64_t seed, std::vector<std::string>& ids) {
  const int n = static_cast<int>(experts.size());
  std::vector<std::vector<float>> x;
  Adapter templ;
  for (const store::ExpertRecord* e : experts) {
    WXP_ASSIGN_OR_RETURN(std::string bytes, blobs.ReadAll(e->blob_id));
    WXP_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::FromBytes(std::move(bytes)));
    Adapter a = AdapterFromSafetensors(file);
    x.push_back(std::move(a.values));
    ids.push_back(e->blob_id);
    if (templ.schema.tensors().empty()) templ = std::move(a);
  }
  WXP_ASSIGN_OR_RETURN(x, GrowPool(std::move(x), pool, seed));
  for (int i = n; i < pool; ++i) {
    templ.values = std::move(x[i]);
    WXP_ASSIGN_OR_RETURN(std::string bytes, SerializeAdapter(templ));
    WXP_ASSIGN_OR_RETURN(std::string id, blobs.Put(bytes));
    u.blob_refs.push_back({id, static_cast<int64_t>(bytes.size()), 0});
    ids.push_back(id);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Coordinator::BuildPool(SwarmUpdate& u, Swarm& next) {
  const int n = static_cast<int>(next.experts.size());
  const int pool = next.resolved.params.ResolvedPoolSize(n);
  // The experts in pool order (SPEC 4 step 1: stable), by blob id rather than by when their
  // agents joined, so the same experts and seed give the same pool and the same run.
  std::vector<const store::ExpertRecord*> experts;
  {
    std::vector<std::string> blob_ids;
    for (const auto& e : next.experts) blob_ids.push_back(e.blob_id);
    for (int i : PoolOrder(blob_ids)) experts.push_back(&next.experts[i]);
  }
  // Capacity: each agent hosts its own experts first; children go round-robin (agents in
  // pool order) to agents with room. Without room for every particle the pool waits for
  // more capacity.
  std::vector<std::string> agents;
  std::map<std::string, int> room;
  for (const store::ExpertRecord* e : experts) {
    if (!room.count(e->agent)) agents.push_back(e->agent);
    room[e->agent] =
        std::max(room[e->agent], std::min(e->capacity, options_.max_particles_per_agent));
  }
  std::vector<std::string> owner(pool);
  for (int i = 0; i < n; ++i) {
    owner[i] = experts[i]->agent;
    --room[owner[i]];
  }
  size_t cursor = 0;
  for (int i = n; i < pool; ++i) {
    size_t tried = 0;
    while (tried < agents.size() && room[agents[cursor % agents.size()]] <= 0) {
      ++cursor;
      ++tried;
    }
    if (tried == agents.size()) {
      Log(absl::StrFormat("event=pool_waiting swarm=%s reason=capacity particles=%d", next.row.name,
                          pool));
      return absl::OkStatus();  // not enough room yet: stay PENDING_EXPERTS
    }
    owner[i] = agents[cursor % agents.size()];
    --room[owner[i]];
    ++cursor;
  }

  std::vector<std::string> ids;
  if (next.coefficients()) {
    // Positions are alpha (SPEC 4.3): the experts' unit vectors and their crossover
    // children, by the same GrowPool, each kept as its canonical blob.
    WXP_ASSIGN_OR_RETURN(
        next.space, coordinator_internal::MakeSpace(*options_.blobs, next.resolved.spec, experts));
    WXP_ASSIGN_OR_RETURN(std::vector<std::vector<float>> alpha,
                         GrowPool(next.space->InitialPositions(), pool, next.resolved.params.seed,
                                  next.space->CrossoverGroups()));
    for (const std::vector<float>& a : alpha) {
      WXP_ASSIGN_OR_RETURN(std::string bytes, AlphaBlobBytes(a));
      WXP_ASSIGN_OR_RETURN(std::string id, options_.blobs->Put(bytes));
      u.blob_refs.push_back({id, static_cast<int64_t>(bytes.size()), 0});
      ids.push_back(id);
    }
    next.alpha_dim = next.space->Dimension();
  } else {
    WXP_RETURN_IF_ERROR(
        GrowWeightsPool(*options_.blobs, u, experts, pool, next.resolved.params.seed, ids));
  }
  WXP_ASSIGN_OR_RETURN(SwarmEngine engine, SwarmEngine::Create(next.resolved.params, pool));
  next.particles.clear();
  for (int i = 0; i < pool; ++i) {
    ParticleRow p;
    p.particle_id = i;
    p.owner = owner[i];
    p.initial_blob_id = ids[i];
    if (int j = engine.InitialVelocityPartner(i); j >= 0) p.velocity_partner_blob_id = ids[j];
    p.current_blob_id = ids[i];
    next.particles.push_back(p);
  }
  next.engine = std::move(engine);
  next.config_json = experts[0]->config_json;
  next.row.state = store::SwarmState::kRunning;
  next.row.open_round = 0;
  next.row.round_opened_ms = NowMs();
  next.SyncRow();
  for (int i = 0; i < pool; ++i) u.particles.push_back(next.RowOf(i));
  u.audit.push_back({NowMs(), "wxp-server", "pool built", next.row.name,
                     absl::StrCat(pool, " particles from ", n, " experts")});
  return absl::OkStatus();
}

}  // namespace wxp::server
