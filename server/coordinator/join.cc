#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/adapter.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/internal/coefficients.h"
#include "server/coordinator/internal/swarm_state.h"

// Expert joins (SPEC 5.2): validation of the experts, then the pool once there are enough.

namespace wxp::server {

using coordinator_internal::kMaxConfigBytes;
using store::SwarmUpdate;

namespace {

// One adapter_config.json text of a join: at most 64 KiB, a LoRA config unless empty.
absl::Status CheckConfigText(const std::string& field, const std::string& text) {
  if (text.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is larger than 64 KiB"));
  }
  if (text.empty()) return absl::OkStatus();
  absl::Status s = ParseLoraConfig(text).status();
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(field, ": ", s.message()));
  return absl::OkStatus();
}

// The config each expert of the request joins with, parallel to expert_blob_ids: its own
// (expert_adapter_configs) or, from a client that sends one config, adapter_config_json.
absl::StatusOr<std::vector<std::string>> ConfigsOf(const wxp::v1::JoinRequest& request) {
  WXP_RETURN_IF_ERROR(CheckConfigText("adapter_config_json", request.adapter_config_json()));
  const int n = request.expert_blob_ids_size();
  if (request.expert_adapter_configs().empty()) {
    return std::vector<std::string>(n, request.adapter_config_json());
  }
  if (request.expert_adapter_configs_size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("expert_adapter_configs has ", request.expert_adapter_configs_size(),
                     " entries but expert_blob_ids has ", n, ": one config per expert, or none"));
  }
  for (int i = 0; i < n; ++i) {
    WXP_RETURN_IF_ERROR(CheckConfigText(absl::StrCat("expert_adapter_configs[", i, "]"),
                                        request.expert_adapter_configs(i)));
  }
  if (!request.adapter_config_json().empty() &&
      request.adapter_config_json() != request.expert_adapter_configs(0)) {
    return absl::InvalidArgumentError(
        "adapter_config_json differs from expert_adapter_configs[0]: with per-expert configs "
        "it must be empty or the first expert's");
  }
  return std::vector<std::string>(request.expert_adapter_configs().begin(),
                                  request.expert_adapter_configs().end());
}

// The schema of the expert blob `id` once it is read, parsed and checked (finite, not
// empty); the refusal naming the blob otherwise.
absl::StatusOr<Schema> CheckExpertBlob(PositionBlobs& blobs, const std::string& id) {
  absl::StatusOr<std::string> bytes = blobs.ReadAll(id);
  if (!bytes.ok()) {
    return absl::NotFoundError(absl::StrCat("expert blob ", id, " has not been uploaded"));
  }
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::FromBytes(*std::move(bytes), id);
  if (!file.ok()) return file.status();
  Adapter a = AdapterFromSafetensors(*file);
  if (absl::Status f = CheckFinite(a); !f.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("expert ", id, ": ", f.message()));
  }
  if (a.schema.total_params() == 0) {
    return absl::InvalidArgumentError(absl::StrCat("expert ", id, " has no parameters"));
  }
  return std::move(a.schema);
}

// (blob id, config) of each expert, in order: what a coefficient space is built from.
std::vector<std::pair<std::string, std::string>> SpaceKey(
    const std::vector<store::ExpertRecord>& experts) {
  std::vector<std::pair<std::string, std::string>> key;
  for (const auto& e : experts) key.emplace_back(e.blob_id, e.config_json);
  return key;
}

}  // namespace

Coordinator::JoinPrecheck Coordinator::PrecheckJoin(const Caller& caller,
                                                    const wxp::v1::JoinRequest& request,
                                                    const std::vector<std::string>& configs) {
  // What the swarm looks like now; the locked part re-checks anything that changed since.
  std::vector<store::ExpertRecord> experts;
  wxp::v1::SwarmSpec spec;
  {
    absl::MutexLock lock(&mu_);
    auto it = swarms_.find(request.swarm());
    if (it == swarms_.end() || it->second->row.state != store::SwarmState::kPendingExperts) {
      return {};  // refused under the lock anyway, before any blob is looked at
    }
    experts = it->second->experts;
    spec = it->second->resolved.spec;
  }
  JoinPrecheck out;
  std::set<std::string> mine;
  for (const auto& e : experts) {
    if (e.agent == caller.name) mine.insert(e.blob_id);
  }
  std::vector<store::ExpertRecord> all = experts;
  bool all_ok = true;
  for (int i = 0; i < request.expert_blob_ids_size(); ++i) {
    const std::string& id = request.expert_blob_ids(i);
    if (!IsSha256Hex(id) || mine.count(id) || out.experts.count(id)) continue;
    absl::StatusOr<Schema> schema = CheckExpertBlob(*options_.blobs, id);
    all_ok = all_ok && schema.ok();
    out.experts.emplace(id, std::move(schema));
    all.push_back({0, caller.name, id, 0, request.capacity(), configs[i]});
  }
  if ((spec.space() == wxp::v1::EXPERT_COEFFICIENTS || spec.space() == wxp::v1::TOKEN_MIXTURE) &&
      all_ok && all.size() > experts.size()) {
    std::vector<const store::ExpertRecord*> ptrs;
    for (const auto& e : all) ptrs.push_back(&e);
    out.space_key = SpaceKey(all);
    out.space = coordinator_internal::MakeSpace(*options_.blobs, spec, ptrs).status();
  }
  return out;
}

absl::StatusOr<wxp::v1::JoinResponse> Coordinator::Join(const Caller& caller,
                                                        const wxp::v1::JoinRequest& request) {
  if (request.expert_blob_ids().empty()) {
    return absl::InvalidArgumentError("join needs at least one expert blob id");
  }
  if (request.capacity() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("capacity must be >= 1, got ", request.capacity()));
  }
  WXP_ASSIGN_OR_RETURN(const std::vector<std::string> configs, ConfigsOf(request));
  // Reading and checking the experts (64 MiB each, and every one of a coefficient swarm
  // again for its space) takes seconds: it happens before the lock, so status and every
  // other swarm's RPCs are not held up meanwhile. Blobs are content-addressed: what was
  // checked is what joins.
  const JoinPrecheck precheck = PrecheckJoin(caller, request, configs);
  return Serve<wxp::v1::JoinResponse>([&]() -> absl::StatusOr<wxp::v1::JoinResponse> {
    mu_.AssertHeld();
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(request.swarm()));
    std::set<std::string> mine;
    for (const auto& e : s->experts) {
      if (e.agent == caller.name) mine.insert(e.blob_id);
    }
    for (size_t i = 0; i < configs.size(); ++i) {
      // An expert this agent already contributed keeps the config it joined with, so a
      // re-join's config for it (a restarted agent may send none) is not its config.
      if (mine.count(request.expert_blob_ids(i))) continue;
      // Named by blob id and by the field its config came in: with one adapter_config_json
      // for several experts the index alone would not say which expert it is.
      absl::Status b = CheckExpertBaseModel(s->resolved.spec, configs[i]);
      if (!b.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("expert ", request.expert_blob_ids(i), " (",
                         request.expert_adapter_configs().empty()
                             ? std::string("adapter_config_json")
                             : absl::StrCat("expert_adapter_configs[", i, "]"),
                         "): ", b.message()));
      }
    }
    std::vector<std::string> fresh;
    std::map<std::string, std::string> config_of;  // blob id -> the config it joins with
    for (int i = 0; i < request.expert_blob_ids_size(); ++i) {
      const std::string& id = request.expert_blob_ids(i);
      if (!IsSha256Hex(id)) {
        return absl::InvalidArgumentError(absl::StrCat("'", id, "' is not a SHA-256 blob id"));
      }
      if (!config_of.emplace(id, configs[i]).second) {
        return absl::InvalidArgumentError(absl::StrCat("expert ", id, " is listed twice"));
      }
      if (!mine.count(id)) fresh.push_back(id);
    }
    auto respond = [&](const Swarm& sw) {
      wxp::v1::JoinResponse out;
      out.set_state(static_cast<wxp::v1::SwarmState>(sw.row.state));
      out.set_experts_joined(static_cast<int>(sw.experts.size()));
      out.set_min_experts(sw.resolved.min_experts);
      if (sw.schema) *out.mutable_schema() = SchemaToProto(*sw.schema);
      out.set_transport_dtype(sw.resolved.spec.transport_dtype());
      for (int i = 0; i < static_cast<int>(sw.particles.size()); ++i) {
        if (sw.particles[i].owner == caller.name) out.add_assigned_particle_ids(i);
      }
      return out;
    };
    if (fresh.empty()) {  // an identical retry
      SeenLocked(*s, caller.name);
      return respond(*s);
    }
    if (s->row.state != store::SwarmState::kPendingExperts) {
      return absl::FailedPreconditionError(
          absl::StrCat("swarm '", request.swarm(), "' already built its pool; joins are closed"));
    }
    // Validate every new expert before anything changes.
    std::optional<Schema> schema = s->schema;
    for (const std::string& id : fresh) {
      // Checked before the lock, unless the swarm changed since (a reload, say) or the
      // blob was missing then (its upload may have finished meanwhile).
      auto checked = precheck.experts.find(id);
      absl::StatusOr<Schema> expert =
          checked != precheck.experts.end() && !absl::IsNotFound(checked->second.status())
              ? checked->second
              : CheckExpertBlob(*options_.blobs, id);
      WXP_RETURN_IF_ERROR(expert.status());
      if (s->coefficients()) continue;  // checked as a set below: ranks may differ
      if (schema) {
        if (absl::Status c = expert->CheckSame(*schema); !c.ok()) {
          return absl::InvalidArgumentError(absl::StrCat("expert ", id, ": ", c.message()));
        }
      } else {
        schema = *std::move(expert);
      }
    }
    if (s->coefficients()) {
      // One base model and one set of module shapes per swarm: the joined experts and the
      // new ones must make one space (whatever their ranks and scalings).
      std::vector<store::ExpertRecord> all = s->experts;
      for (const std::string& id : fresh) {
        all.push_back({0, caller.name, id, 0, request.capacity(), config_of[id]});
      }
      if (precheck.space_key == SpaceKey(all)) {
        WXP_RETURN_IF_ERROR(precheck.space);
      } else {  // the set changed since (another join, a reload): check it as it is now
        std::vector<const store::ExpertRecord*> ptrs;
        for (const auto& e : all) ptrs.push_back(&e);
        WXP_RETURN_IF_ERROR(
            coordinator_internal::MakeSpace(*options_.blobs, s->resolved.spec, ptrs).status());
      }
    }
    Swarm next = *s;
    next.schema = schema;
    if (!s->schema && !s->coefficients()) {
      // The first expert fixed the schema: it becomes part of the stored spec.
      *next.resolved.spec.mutable_schema() = SchemaToProto(*schema);
      next.row.spec = next.resolved.spec.SerializeAsString();
    }
    SwarmUpdate u;
    u.swarm = request.swarm();
    const int64_t now = NowMs();
    for (const std::string& id : fresh) {
      store::ExpertRecord e{static_cast<int32_t>(next.experts.size()),
                            caller.name,
                            id,
                            now,
                            request.capacity(),
                            config_of[id]};
      next.experts.push_back(e);
      u.experts.push_back(e);
      u.blob_refs.push_back({id, 0, 0});
    }
    if (next.config_json.empty()) next.config_json = next.experts[0].config_json;
    u.audit.push_back({now, caller.name, "join", request.swarm(),
                       absl::StrCat(fresh.size(), " expert(s), capacity ", request.capacity())});
    if (static_cast<int>(next.experts.size()) >= next.resolved.min_experts) {
      WXP_RETURN_IF_ERROR(BuildPool(u, next));
    }
    u.swarm_row = next.row;
    EnqueueLocked(std::move(u));
    *s = std::move(next);
    SeenLocked(*s, caller.name);
    Log(absl::StrFormat("event=expert_joined swarm=%s agent=%s experts=%d/%d", request.swarm(),
                        caller.name, s->experts.size(), s->resolved.min_experts));
    if (s->row.state == store::SwarmState::kRunning) {
      Log(absl::StrFormat("event=pool_built swarm=%s particles=%d", request.swarm(),
                          s->pool_size()));
    }
    return respond(*s);
  });
}

}  // namespace wxp::server
