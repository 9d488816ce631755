#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/adapter.h"
#include "common/rerank.h"
#include "common/rng.h"
#include "common/status_macros.h"
#include "common/token_manifest.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/internal/coefficients.h"
#include "server/coordinator/internal/swarm_state.h"

// Operator actions and status views (AdminService).

namespace wxp::server {

using coordinator_internal::EvalInfo;
using coordinator_internal::FillAlpha;
using coordinator_internal::InfoOf;
using coordinator_internal::ToTimestamp;
using store::ParticleRow;
using store::SwarmUpdate;

absl::StatusOr<wxp::v1::CreateSwarmResponse> Coordinator::CreateSwarm(
    const Caller& caller, const wxp::v1::SwarmSpec& spec) {
  const uint64_t seed = static_cast<uint64_t>(absl::ToUnixNanos(options_.clock->Now())) ^
                        Mix64(std::hash<std::string>()(spec.name()));
  wxp::v1::SwarmSpec with_defaults = spec;
  if (!with_defaults.has_round_deadline_seconds() && options_.default_round_deadline_seconds > 0) {
    with_defaults.set_round_deadline_seconds(options_.default_round_deadline_seconds);
  }
  WXP_ASSIGN_OR_RETURN(ResolvedSpec resolved, ResolveSwarmSpec(with_defaults, seed));
  WXP_RETURN_IF_ERROR(ResolveTemplate(
      [&](const std::string& id) { return options_.blobs->ReadAll(id); }, resolved));
  return Serve<wxp::v1::CreateSwarmResponse>([&]() -> absl::StatusOr<wxp::v1::CreateSwarmResponse> {
    mu_.AssertHeld();
    if (swarms_.count(resolved.spec.name())) {
      return absl::AlreadyExistsError(
          absl::StrCat("a swarm named '", resolved.spec.name(), "' already exists"));
    }
    store::SwarmRecord row;
    row.name = resolved.spec.name();
    row.spec = resolved.spec.SerializeAsString();
    row.state = store::SwarmState::kPendingExperts;
    row.created_ms = NowMs();
    row.utility_version = 1;
    row.utility = UtilityToProto(resolved.utility).SerializeAsString();
    WXP_RETURN_IF_ERROR(options_.store->CreateSwarm(
        row, {row.created_ms, caller.name, "create swarm", row.name, ""}));
    // With replicas the creator leads the new swarm if it can take its lease at once
    // (MaintainLeases may hand it on to spread the load); otherwise another replica did.
    bool leads = options_.leases == nullptr;
    if (!leads) {
      const int64_t ttl = absl::ToInt64Milliseconds(options_.lease_duration);
      absl::StatusOr<store::LeaseHolder> h = options_.leases->TryAcquire(row.name, NowMs(), ttl);
      if (h.ok() && h->mine) {
        leased_[row.name] = {h->token, NowMs() + ttl};
        leads = true;
      } else if (h.ok() && h->token != 0) {
        others_[row.name] = *h;
      }
    }
    if (leads) {
      swarms_[row.name] =
          std::unique_ptr<Swarm>(new Swarm{row, resolved, resolved.utility, resolved.schema});
    }
    Log(absl::StrFormat("event=swarm_created swarm=%s by=%s mode=%s min_experts=%d seed=%d",
                        row.name, caller.name, wxp::v1::RoundMode_Name(resolved.spec.mode()),
                        resolved.min_experts, resolved.params.seed));
    wxp::v1::CreateSwarmResponse out;
    *out.mutable_spec() = resolved.spec;
    out.set_state(wxp::v1::PENDING_EXPERTS);
    return out;
  });
}

wxp::v1::PositionRef Coordinator::Ref(const Swarm& s, const PositionRef& ref, double utility) {
  wxp::v1::PositionRef out;
  out.set_particle_id(ref.particle);
  out.set_iteration(ref.iteration);
  out.set_utility(utility);
  auto it = s.evals.find({ref.particle, ref.iteration});
  if (it != s.evals.end() && it->second.held) out.set_blob_id(it->second.blob_id);
  return out;
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::StatusOf(const Swarm& s) {
  wxp::v1::SwarmStatus out;
  out.set_name(s.row.name);
  out.set_state(static_cast<wxp::v1::SwarmState>(s.row.state));
  out.set_termination_reason(s.row.termination);
  out.set_iteration(s.row.closed_iterations);
  out.set_particles(s.pool_size());
  out.set_experts_joined(static_cast<int>(s.experts.size()));
  out.set_min_experts(s.resolved.min_experts);
  out.set_utility_weight_version(s.row.utility_version);
  out.set_mode(s.resolved.spec.mode());
  // The particle space (SPEC 4.3) as resolved; a spec stored before these fields existed
  // reads as the defaults it ran with.
  const wxp::v1::SwarmSpec& spec = s.resolved.spec;
  out.set_space(spec.space() == wxp::v1::PARTICLE_SPACE_KIND_UNSPECIFIED ? wxp::v1::WEIGHTS
                                                                         : spec.space());
  out.set_decoder(spec.decoder());
  out.set_svd_rank(spec.svd_rank());
  out.set_per_module(spec.per_module());
  out.set_combination(spec.combination());
  out.set_expert_sharing(spec.expert_sharing() == wxp::v1::EXPERT_SHARING_UNSPECIFIED
                             ? wxp::v1::ALLOWED
                             : spec.expert_sharing());
  if (spec.has_local_training()) *out.mutable_local_training() = spec.local_training();
  if (s.coefficients()) out.set_coefficient_dimension(static_cast<int32_t>(s.alpha_dim));
  *out.mutable_created_time() = ToTimestamp(s.row.created_ms);
  if (s.row.round_opened_ms > 0)
    *out.mutable_last_round_time() = ToTimestamp(s.row.round_opened_ms);
  if (s.engine) {
    out.set_step_length(s.engine->StepLength(s.row.closed_iterations + 1));
    *out.mutable_global_best() = Ref(s, s.engine->global_best(), s.engine->global_best_utility());
    *out.mutable_global_worst() =
        Ref(s, s.engine->global_worst(), s.engine->global_worst_utility());
    if (s.coefficients()) {
      // alpha is set wherever blob_id is (PositionRef.alpha): a client need not fetch it.
      WXP_RETURN_IF_ERROR(FillAlpha(*options_.blobs, *out.mutable_global_best()));
      WXP_RETURN_IF_ERROR(FillAlpha(*options_.blobs, *out.mutable_global_worst()));
    }
    // Live: reported in the open round or the one before it.
    int live = 0;
    for (int i = 0; i < s.pool_size(); ++i) {
      if (s.engine->particle(i).utility_iteration >= s.row.closed_iterations) ++live;
    }
    out.set_particles_live(live);
    out.set_particles_stale(s.pool_size() - live);
  } else {
    // No pool yet: no g / g_w (particle_id -1, as documented), and iteration 1's lambda.
    out.set_step_length(s.resolved.params.step_length);
    *out.mutable_global_best() = Ref(s, PositionRef{}, 0);
    *out.mutable_global_worst() = Ref(s, PositionRef{}, 0);
  }
  // Online: the swarm's agents heard from within the window, whatever the rounds say (a
  // finished swarm's agents reported the last round, and may have stopped long since).
  const int64_t since = NowMs() - absl::ToInt64Milliseconds(options_.online_window);
  std::set<std::string> online;
  for (const auto& e : s.experts) {
    auto it = s.last_seen_ms.find(e.agent);
    if (it != s.last_seen_ms.end() && it->second >= since) online.insert(e.agent);
  }
  out.set_agents_online(static_cast<int>(online.size()));
  return out;
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::Heartbeat(const Caller& caller,
                                                            const std::string& swarm) {
  return Serve<wxp::v1::SwarmStatus>([&]() -> absl::StatusOr<wxp::v1::SwarmStatus> {
    mu_.AssertHeld();
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    SeenLocked(*s, caller.name);
    return StatusOf(*s);
  });
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::GetSwarmStatus(const std::string& swarm) {
  return Serve<wxp::v1::SwarmStatus>([&]() -> absl::StatusOr<wxp::v1::SwarmStatus> {
    mu_.AssertHeld();
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    return StatusOf(*s);
  });
}

absl::StatusOr<wxp::v1::ListSwarmsResponse> Coordinator::ListSwarms() {
  return Serve<wxp::v1::ListSwarmsResponse>([&]() -> absl::StatusOr<wxp::v1::ListSwarmsResponse> {
    mu_.AssertHeld();
    wxp::v1::ListSwarmsResponse out;
    if (options_.leases == nullptr) {
      for (const auto& [name, s] : swarms_) {
        WXP_ASSIGN_OR_RETURN(*out.add_swarms(), StatusOf(*s));
      }
      return out;
    }
    // With replicas, the swarms others lead are listed from the store's rows: name, state
    // and creation; their live figures come from their leader (GetSwarmStatus redirects).
    WXP_ASSIGN_OR_RETURN(std::vector<store::SwarmRecord> rows, options_.store->ListSwarms());
    for (const store::SwarmRecord& row : rows) {
      if (auto it = swarms_.find(row.name); it != swarms_.end()) {
        WXP_ASSIGN_OR_RETURN(*out.add_swarms(), StatusOf(*it->second));
        continue;
      }
      wxp::v1::SwarmStatus* st = out.add_swarms();
      st->set_name(row.name);
      st->set_state(static_cast<wxp::v1::SwarmState>(row.state));
      st->set_termination_reason(row.termination);
      st->set_iteration(row.closed_iterations);
      st->set_utility_weight_version(row.utility_version);
      *st->mutable_created_time() = ToTimestamp(row.created_ms);
    }
    return out;
  });
}

absl::StatusOr<wxp::v1::ListParticlesResponse> Coordinator::ListParticles(
    const std::string& swarm) {
  return Serve<wxp::v1::ListParticlesResponse>(
      [&]() -> absl::StatusOr<wxp::v1::ListParticlesResponse> {
        mu_.AssertHeld();
        WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
        wxp::v1::ListParticlesResponse out;
        std::map<int, int> disputed;
        if (s->audited()) {
          WXP_RETURN_IF_ERROR(FlushLocked());
          WXP_ASSIGN_OR_RETURN(std::vector<store::AuditClaim> claims,
                               options_.store->ListAuditClaims(swarm));
          for (const store::AuditClaim& a : claims) {
            if (a.state == store::AuditState::kDisputed) ++disputed[a.particle_id];
          }
        }
        std::map<int, int> pending;
        for (const auto& [key, claim] : s->pending_audits) ++pending[key.first];
        for (int i = 0; i < s->pool_size(); ++i) {
          const ParticleRow p = s->RowOf(i);
          auto* info = out.add_particles();
          info->set_particle_id(i);
          info->set_owner(p.owner);
          info->set_iteration(p.engine.utility_iteration);
          info->set_utility(p.engine.utility);
          info->set_best_utility(p.engine.best_utility);
          info->set_restarts(p.engine.restarts);
          info->set_disputed_claims(disputed[i]);
          info->set_pending_audits(pending[i]);
          if (p.last_report_ms > 0)
            *info->mutable_last_report_time() = ToTimestamp(p.last_report_ms);
        }
        return out;
      });
}

absl::StatusOr<wxp::v1::GetHistoryResponse> Coordinator::GetHistory(const std::string& swarm) {
  {
    absl::MutexLock lock(&mu_);
    WXP_RETURN_IF_ERROR(Find(swarm).status());
  }
  WXP_ASSIGN_OR_RETURN(std::vector<store::HistoryRecord> rows, options_.store->ListHistory(swarm));
  wxp::v1::GetHistoryResponse out;
  for (const auto& h : rows) {
    auto* e = out.add_entries();
    e->set_iteration(h.iteration);
    e->set_global_best_utility(h.global_best_utility);
    e->set_global_worst_utility(h.global_worst_utility);
    e->set_mean_utility(h.mean_utility);
    e->set_step_length(h.step_length);
    e->set_restarts(h.restarts);
    e->set_reports(h.reports);
    e->set_utility_weight_version(h.utility_version);
    *e->mutable_closed_time() = ToTimestamp(h.closed_ms);
  }
  WXP_ASSIGN_OR_RETURN(std::vector<store::AuditClaim> claims,
                       options_.store->ListAuditClaims(swarm));
  for (const store::AuditClaim& a : claims) {
    auto* c = out.add_audits();
    c->set_iteration(a.iteration);
    c->set_particle_id(a.particle_id);
    c->set_reporter(a.reporter);
    c->set_candidate(a.candidate);
    c->set_verdict(static_cast<wxp::v1::AuditVerdict>(a.state));
    WXP_ASSIGN_OR_RETURN(store::EvaluationRecord e,
                         options_.store->GetEvaluation(swarm, a.particle_id, a.iteration));
    c->mutable_claimed_scores()->insert(e.scores.begin(), e.scores.end());
    c->mutable_audited_scores()->insert(a.audited_scores.begin(), a.audited_scores.end());
    c->set_auditor(a.auditor);
    if (a.decided_ms > 0) *c->mutable_decided_time() = ToTimestamp(a.decided_ms);
  }
  return out;
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::SetState(const Caller& caller,
                                                           const std::string& swarm,
                                                           store::SwarmState state,
                                                           const std::string& action,
                                                           const std::string& reason) {
  return Serve<wxp::v1::SwarmStatus>([&]() -> absl::StatusOr<wxp::v1::SwarmStatus> {
    mu_.AssertHeld();
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    const store::SwarmState current = s->row.state;
    if (current == store::SwarmState::kFinished || current == store::SwarmState::kStopped) {
      return absl::FailedPreconditionError(
          absl::StrCat("swarm '", swarm, "' is ",
                       wxp::v1::SwarmState_Name(static_cast<wxp::v1::SwarmState>(current)),
                       "; it cannot be ", action, "d"));
    }
    if (state == store::SwarmState::kPaused && current == store::SwarmState::kPaused)
      return StatusOf(*s);
    if (state == store::SwarmState::kRunning && current != store::SwarmState::kPaused) {
      return absl::FailedPreconditionError(absl::StrCat("swarm '", swarm, "' is not paused"));
    }
    if (state == store::SwarmState::kPaused && current != store::SwarmState::kRunning) {
      return absl::FailedPreconditionError(absl::StrCat("swarm '", swarm, "' is not running"));
    }
    store::SwarmRecord row = s->row;
    std::optional<SwarmEngine> engine = s->engine;
    row.state = state;
    if (state == store::SwarmState::kStopped) {
      row.termination = "stopped";
      if (engine) engine->Stop();
      row.stopped = true;
    }
    SwarmUpdate u;
    u.swarm = swarm;
    u.audit.push_back({NowMs(), caller.name, action, swarm, reason});
    Swarm next_globals{row, s->resolved, s->utility};
    next_globals.engine = engine;
    next_globals.SyncRow();
    u.swarm_row = next_globals.row;
    EnqueueLocked(std::move(u));
    s->row = next_globals.row;
    s->engine = std::move(engine);
    Log(absl::StrFormat("event=swarm_%s swarm=%s by=%s reason=%s", action, swarm, caller.name,
                        reason.empty() ? "-" : reason));
    return StatusOf(*s);
  });
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::Pause(const Caller& caller,
                                                        const std::string& swarm,
                                                        const std::string& reason) {
  return SetState(caller, swarm, store::SwarmState::kPaused, "pause", reason);
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::Resume(const Caller& caller,
                                                         const std::string& swarm,
                                                         const std::string& reason) {
  return SetState(caller, swarm, store::SwarmState::kRunning, "resume", reason);
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::Stop(const Caller& caller,
                                                       const std::string& swarm,
                                                       const std::string& reason) {
  return SetState(caller, swarm, store::SwarmState::kStopped, "stop", reason);
}

absl::StatusOr<Coordinator::BestPosition> Coordinator::Best(const std::string& swarm) {
  return Serve<Coordinator::BestPosition>([&]() -> absl::StatusOr<Coordinator::BestPosition> {
    mu_.AssertHeld();
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    if (!s->engine || !s->engine->global_best().valid()) {
      return absl::FailedPreconditionError(
          absl::StrCat("swarm '", swarm, "' has no evaluated position yet"));
    }
    const PositionRef g = s->engine->global_best();
    const auto it = s->evals.find({g.particle, g.iteration});
    if (it == s->evals.end() || !it->second.held) {
      return absl::UnavailableError(absl::StrCat("the global best of '", swarm,
                                                 "' has not been uploaded yet; retry shortly"));
    }
    if (!s->coefficients()) {
      return BestPosition{it->second.blob_id, s->engine->global_best_utility(), s->config_json,
                          it->second.blob_id};
    }
    // Coefficient spaces export the adapter g decodes to (SPEC 4.3), stored as a blob so the
    // export is hash-verified like any other.
    if (!s->space) {
      WXP_ASSIGN_OR_RETURN(
          s->space, coordinator_internal::MakeSpace(*options_.blobs, s->resolved.spec,
                                                    coordinator_internal::InPoolOrder(s->experts)));
    }
    WXP_ASSIGN_OR_RETURN(std::vector<float> alpha,
                         coordinator_internal::ReadAlpha(*options_.blobs, it->second.blob_id));
    if (s->resolved.spec.space() == wxp::v1::TOKEN_MIXTURE) {
      // Whole models are not merged into one adapter: the export names them (SPEC 4.5).
      WXP_ASSIGN_OR_RETURN(
          std::string manifest,
          coordinator_internal::TokenManifestBytes(
              *options_.blobs, s->resolved.spec, coordinator_internal::InPoolOrder(s->experts),
              std::move(alpha), s->engine->global_best_utility()));
      WXP_ASSIGN_OR_RETURN(std::string id, options_.blobs->Put(manifest));
      return BestPosition{id, s->engine->global_best_utility(), "", it->second.blob_id,
                          kTokenManifestFile};
    }
    WXP_ASSIGN_OR_RETURN(Adapter decoded, s->space->Decode(alpha));
    WXP_ASSIGN_OR_RETURN(std::string bytes, SerializeAdapter(decoded));
    WXP_ASSIGN_OR_RETURN(std::string id, options_.blobs->Put(bytes));
    return BestPosition{id, s->engine->global_best_utility(), decoded.config_json.value_or(""),
                        it->second.blob_id};
  });
}

absl::StatusOr<size_t> Coordinator::EvaluationsInMemory(const std::string& swarm) {
  return Serve<size_t>([&]() -> absl::StatusOr<size_t> {
    mu_.AssertHeld();
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    return s->evals.size();
  });
}

}  // namespace wxp::server
