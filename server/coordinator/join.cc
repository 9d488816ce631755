#include <map>
#include <optional>
#include <set>
#include <string>
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

}  // namespace

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
  return Serve<wxp::v1::JoinResponse>([&]() -> absl::StatusOr<wxp::v1::JoinResponse> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(request.swarm()));
    for (size_t i = 0; i < configs.size(); ++i) {
      absl::Status b = CheckExpertBaseModel(s->resolved.spec, configs[i]);
      if (!b.ok() && !request.expert_adapter_configs().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("expert_adapter_configs[", i, "]: ", b.message()));
      }
      WXP_RETURN_IF_ERROR(b);
    }
    std::set<std::string> mine;
    for (const auto& e : s->experts) {
      if (e.agent == caller.name) mine.insert(e.blob_id);
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
      absl::StatusOr<std::string> bytes = options_.blobs->ReadAll(id);
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
      if (s->coefficients()) continue;  // checked as a set below: ranks may differ
      if (schema) {
        if (absl::Status c = a.schema.CheckSame(*schema); !c.ok()) {
          return absl::InvalidArgumentError(absl::StrCat("expert ", id, ": ", c.message()));
        }
      } else {
        schema = a.schema;
      }
    }
    if (s->coefficients()) {
      // One base model and one set of module shapes per swarm: the joined experts and the
      // new ones must make one space (whatever their ranks and scalings).
      std::vector<store::ExpertRecord> all = s->experts;
      for (const std::string& id : fresh) {
        all.push_back({0, caller.name, id, 0, request.capacity(), config_of[id]});
      }
      std::vector<const store::ExpertRecord*> ptrs;
      for (const auto& e : all) ptrs.push_back(&e);
      WXP_RETURN_IF_ERROR(
          coordinator_internal::MakeSpace(*options_.blobs, s->resolved.spec, ptrs).status());
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
