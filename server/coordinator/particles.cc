#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/functional/function_ref.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "common/alpha_blob.h"
#include "common/rng.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/internal/coefficients.h"
#include "server/coordinator/internal/swarm_state.h"

// The particle protocol (SPEC 5.2, 6): assignment, targets, reports, closing rounds,
// uploaded positions and round deadlines.

namespace wxp::server {

using coordinator_internal::CheckPositionBlob;
using coordinator_internal::EvalInfo;
using coordinator_internal::FillAlpha;
using coordinator_internal::InfoOf;
using coordinator_internal::kRetryAfterMs;
using coordinator_internal::NotOwner;
using coordinator_internal::QuorumOf;
using coordinator_internal::ReadAlpha;
using coordinator_internal::RoundStats;
using store::ParticleRow;
using store::SwarmUpdate;

namespace {

// A call of the asynchronous API (ReportAsync, GetTargetsAsync), waited for.
template <typename T>
absl::StatusOr<T> Await(absl::FunctionRef<void(Coordinator::Done<T>)> start) {
  absl::Notification answered;
  absl::StatusOr<T> out = absl::UnknownError("not answered");
  start([&](absl::StatusOr<T> answer) {
    out = std::move(answer);
    answered.Notify();
  });
  answered.WaitForNotification();
  return out;
}

// The id of the position a report names, after the checks that need no state. A
// coefficient-space report names it by alpha; its id is alpha's canonical blob's.
absl::StatusOr<std::string> ReportedPosition(const wxp::v1::ReportRequest& request) {
  std::string id = request.position_blob_id();
  if (request.position_alpha_size() > 0) {
    absl::StatusOr<std::string> alpha_id = AlphaBlobId(request.position_alpha());
    if (!alpha_id.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("position_alpha: ", alpha_id.status().message()));
    }
    if (!id.empty() && id != *alpha_id) {
      return absl::InvalidArgumentError(absl::StrCat(
          "position_blob_id must be empty or the id of position_alpha's canonical blob (",
          *alpha_id, ")"));
    }
    id = *std::move(alpha_id);
  } else if (!IsSha256Hex(id)) {
    return absl::InvalidArgumentError("position_blob_id must be a SHA-256 hex digest");
  }
  if (request.evaluation_failed() && !request.scores().empty()) {
    return absl::InvalidArgumentError("a failed evaluation carries no scores");
  }
  if (!std::isfinite(request.evaluation_seconds()) || request.evaluation_seconds() < 0) {
    return absl::InvalidArgumentError("evaluation_seconds must be finite and >= 0");
  }
  return id;
}

}  // namespace

bool Coordinator::UploadAlwaysOrAudited(const Swarm& s, int particle, int iteration) {
  return s.resolved.spec.upload_policy() == wxp::v1::ALWAYS ||
         DrawUniform(s.resolved.params.seed, RngStream::kAudit, iteration, particle) <
             s.resolved.spec.audit_sample_rate();
}
absl::StatusOr<wxp::v1::GetAssignmentResponse> Coordinator::GetAssignment(
    const Caller& caller, const std::string& swarm) {
  return Serve<wxp::v1::GetAssignmentResponse>(
      [&]() -> absl::StatusOr<wxp::v1::GetAssignmentResponse> {
        mu_.AssertHeld();
        WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
        SeenLocked(*s, caller.name);  // heard from, whether or not the call succeeds
        wxp::v1::GetAssignmentResponse out;
        out.set_swarm_state(static_cast<wxp::v1::SwarmState>(s->row.state));
        *out.mutable_hyperparameters() = s->resolved.spec.hyperparameters();
        out.set_mode(s->resolved.spec.mode());
        out.set_upload_policy(s->resolved.spec.upload_policy());
        out.set_transport_dtype(s->resolved.spec.transport_dtype());
        const wxp::v1::SwarmSpec& spec = s->resolved.spec;
        out.set_space(spec.space());
        out.set_decoder(spec.decoder());
        out.set_svd_rank(spec.svd_rank());
        out.set_per_module(spec.per_module());
        out.set_combination(spec.combination());
        if (spec.has_local_training()) *out.mutable_local_training() = spec.local_training();
        if (s->row.state == store::SwarmState::kPendingExperts) {
          out.set_status(wxp::v1::GetAssignmentResponse::WAIT);
          out.set_retry_after_ms(kRetryAfterMs);
          return out;
        }
        const bool done = s->row.state == store::SwarmState::kFinished ||
                          s->row.state == store::SwarmState::kStopped;
        out.set_status(done ? wxp::v1::GetAssignmentResponse::DONE
                            : wxp::v1::GetAssignmentResponse::ASSIGNED);
        out.set_pool_size(s->pool_size());
        if (s->coefficients()) {
          for (const store::ExpertRecord* e : coordinator_internal::InPoolOrder(s->experts)) {
            out.add_expert_blob_ids(e->blob_id);
            out.add_expert_adapter_configs(e->config_json);
          }
        }
        auto alpha_of = [&](const std::string& id,
                            google::protobuf::RepeatedField<float>* to) -> absl::Status {
          if (!s->coefficients()) return absl::OkStatus();
          WXP_ASSIGN_OR_RETURN(std::vector<float> alpha, ReadAlpha(*options_.blobs, id));
          to->Assign(alpha.begin(), alpha.end());
          return absl::OkStatus();
        };
        for (int i = 0; i < s->pool_size(); ++i) {
          const ParticleRow& p = s->particles[i];
          if (p.owner != caller.name) continue;
          auto* a = out.add_particles();
          a->set_particle_id(i);
          a->set_initial_position_blob_id(p.initial_blob_id);
          WXP_RETURN_IF_ERROR(alpha_of(p.initial_blob_id, a->mutable_initial_alpha()));
          switch (s->resolved.params.initial_velocity) {
            case InitialVelocityMode::kRandomPeer:
              if (p.velocity_partner_blob_id.empty()) {
                a->mutable_initial_velocity()->set_zero(true);
              } else {
                a->mutable_initial_velocity()->set_partner_blob_id(p.velocity_partner_blob_id);
                WXP_RETURN_IF_ERROR(
                    alpha_of(p.velocity_partner_blob_id,
                             a->mutable_initial_velocity()->mutable_partner_alpha()));
              }
              break;
            case InitialVelocityMode::kZero:
              a->mutable_initial_velocity()->set_zero(true);
              break;
            case InitialVelocityMode::kTowardBest:
              a->mutable_initial_velocity()->set_toward_best(true);
              break;
          }
          int last = -1;
          for (const auto& [key, e] : s->evals) {
            if (key.first == i) last = std::max(last, key.second);
          }
          a->set_last_reported_iteration(last);
        }
        return out;
      });
}

absl::StatusOr<wxp::v1::GetTargetsResponse> Coordinator::GetTargets(
    const Caller& caller, const wxp::v1::GetTargetsRequest& request) {
  return Await<wxp::v1::GetTargetsResponse>([&](Done<wxp::v1::GetTargetsResponse> done) {
    GetTargetsAsync(caller, request, std::move(done));
  });
}

void Coordinator::GetTargetsAsync(const Caller& caller, const wxp::v1::GetTargetsRequest& request,
                                  Done<wxp::v1::GetTargetsResponse> done) {
  using Response = wxp::v1::GetTargetsResponse;
  ServeAsync<Response>(std::move(done), [&]() -> absl::StatusOr<Response> {
    mu_.AssertHeld();
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(request.swarm()));
    SeenLocked(*s, caller.name);  // heard from, whether or not the call succeeds
    wxp::v1::GetTargetsResponse out;
    out.set_swarm_state(static_cast<wxp::v1::SwarmState>(s->row.state));
    out.set_utility_weight_version(s->row.utility_version);
    auto wait = [&]() {
      out.set_status(wxp::v1::GetTargetsResponse::WAIT);
      out.set_retry_after_ms(kRetryAfterMs);
      return out;
    };
    if (s->row.state == store::SwarmState::kPendingExperts) return wait();
    const int i = request.particle_id();
    if (i < 0 || i >= s->pool_size()) {
      return absl::NotFoundError(absl::StrCat("swarm '", request.swarm(), "' has no particle ", i));
    }
    if (s->particles[i].owner != caller.name) return NotOwner(caller, i, s->particles[i].owner);
    if (s->row.state == store::SwarmState::kFinished ||
        s->row.state == store::SwarmState::kStopped) {
      out.set_status(wxp::v1::GetTargetsResponse::DONE);
      return out;
    }
    if (request.iteration() < 1) {
      return absl::InvalidArgumentError("targets are for iterations >= 1 (0 is the initial pool)");
    }
    // Due already if a restart came between a round's close and its scheduled weight change.
    WXP_RETURN_IF_ERROR(ApplyDueWeightsLocked(*s));
    out.set_utility_weight_version(s->row.utility_version);
    const ParticleRecord& rec = s->engine->particle(i);
    if (request.iteration() < rec.started_iteration) {
      return absl::FailedPreconditionError(
          absl::StrCat("iteration ", request.iteration(), " is stale: particle ", i,
                       " is at iteration ", rec.started_iteration));
    }
    if (s->row.state == store::SwarmState::kPaused || !s->engine->initial_complete()) return wait();
    // Sync: iteration k waits for round k-1 to close, and a straggler that missed rounds is
    // moved to the open one. Async: no barrier, but a particle reports an iteration before it
    // starts the next.
    int k = request.iteration();
    if (s->sync()) {
      if (k > s->row.open_round) return wait();
      k = std::max(k, s->row.open_round);
    } else if (k > rec.started_iteration) {
      if (!s->evals.count({i, rec.started_iteration})) {
        return absl::FailedPreconditionError(absl::StrCat("particle ", i, " must report iteration ",
                                                          rec.started_iteration,
                                                          " before it starts iteration ", k));
      }
      // Its report is held back for an auditor (SPEC 12): the engine has not seen it yet.
      if (s->HeldBack(i, rec.started_iteration)) return wait();
      if (k > s->resolved.params.max_iterations) return wait();  // the hard stop (SPEC 4)
      if (k > rec.started_iteration + 1) {
        return absl::FailedPreconditionError(
            absl::StrCat("iteration ", k, " is in the future: particle ", i,
                         " is due to start iteration ", rec.started_iteration + 1));
      }
    }
    // Sync rounds move every particle toward the g / g_w the round opened with; async moves
    // use the latest. Either must be downloadable before anyone moves toward / away from it.
    const PositionRef g = s->sync() ? s->row.round_best : s->engine->global_best();
    const PositionRef gw = s->sync() ? s->row.round_worst : s->engine->global_worst();
    const double g_utility =
        s->sync() ? s->row.round_best_utility : s->engine->global_best_utility();
    const double gw_utility =
        s->sync() ? s->row.round_worst_utility : s->engine->global_worst_utility();
    auto held = [&](const PositionRef& r) {
      auto it = s->evals.find({r.particle, r.iteration});
      return it != s->evals.end() && it->second.held;
    };
    if (!held(g) || !held(gw)) return wait();

    const bool first_start = k > rec.started_iteration;
    SwarmEngine engine = *s->engine;
    WXP_ASSIGN_OR_RETURN(MoveTargets t, engine.StartIteration(i, k));
    if (first_start) {
      // The restart decision is state: persist it before handing it out.
      SwarmUpdate u;
      u.swarm = request.swarm();
      ParticleRow row = s->particles[i];
      row.engine = engine.particle(i);
      u.particles.push_back(row);
      EnqueueLocked(std::move(u));
      *s->engine = std::move(engine);
      if (t.restart) ++s->rounds[k].restarts;
    }
    out.set_status(wxp::v1::GetTargetsResponse::READY);
    out.set_iteration(t.iteration);
    auto* c = out.mutable_coefficients();
    c->set_a(t.a);
    c->set_b(t.b);
    c->set_c(t.c);
    c->set_d(t.d);
    c->set_step(t.step);
    out.set_restart(t.restart);
    *out.mutable_global_best() = Ref(*s, g, g_utility);
    *out.mutable_global_worst() = Ref(*s, gw, gw_utility);
    *out.mutable_personal_best() = Ref(*s, t.personal_best, s->engine->particle(i).best_utility);
    if (s->coefficients()) {
      // Alpha is the position and its id follows from it (common/alpha_blob.h): the id
      // would only add 64 bytes each to the call every particle makes every iteration.
      for (wxp::v1::PositionRef* r :
           {out.mutable_global_best(), out.mutable_global_worst(), out.mutable_personal_best()}) {
        WXP_RETURN_IF_ERROR(FillAlpha(*options_.blobs, *r));
        r->clear_blob_id();
      }
    }
    return out;
  });
}

absl::StatusOr<wxp::v1::ReportResponse> Coordinator::Report(const Caller& caller,
                                                            const wxp::v1::ReportRequest& request) {
  return Await<wxp::v1::ReportResponse>(
      [&](Done<wxp::v1::ReportResponse> done) { ReportAsync(caller, request, std::move(done)); });
}

void Coordinator::ReportAsync(const Caller& caller, const wxp::v1::ReportRequest& request,
                              Done<wxp::v1::ReportResponse> done) {
  absl::StatusOr<std::string> reported = ReportedPosition(request);
  if (!reported.ok()) {
    std::move(done)(reported.status());
    return;
  }
  const bool has_alpha = request.position_alpha_size() > 0;
  const std::string& position_id = *reported;
  using Response = wxp::v1::ReportResponse;
  ServeAsync<Response>(std::move(done), [&]() -> absl::StatusOr<Response> {
    mu_.AssertHeld();
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(request.swarm()));
    SeenLocked(*s, caller.name);  // heard from, whether or not the call succeeds
    const int i = request.particle_id();
    if (!s->engine) {
      return absl::FailedPreconditionError(
          absl::StrCat("swarm '", request.swarm(), "' has no pool yet"));
    }
    if (i < 0 || i >= s->pool_size()) {
      return absl::NotFoundError(absl::StrCat("swarm '", request.swarm(), "' has no particle ", i));
    }
    if (s->particles[i].owner != caller.name) return NotOwner(caller, i, s->particles[i].owner);
    if (s->coefficients() && !has_alpha) {
      return absl::InvalidArgumentError(
          absl::StrCat("swarm '", request.swarm(), "' searches ",
                       wxp::v1::ParticleSpaceKind_Name(s->resolved.spec.space()),
                       ": the report must carry position_alpha"));
    }
    if (!s->coefficients() && has_alpha) {
      return absl::InvalidArgumentError(absl::StrCat(
          "swarm '", request.swarm(), "' searches WEIGHTS: position_alpha must be empty"));
    }
    if (has_alpha && request.position_alpha_size() != s->alpha_dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("position_alpha has ", request.position_alpha_size(), " entries; swarm '",
                       request.swarm(), "' has dimension ", s->alpha_dim));
    }
    const int k = request.iteration();
    const std::map<std::string, double> scores(request.scores().begin(), request.scores().end());

    // An identical retry is acknowledged; a different payload for the same slot is refused.
    std::optional<EvalInfo> prior;
    if (auto it = s->evals.find({i, k}); it != s->evals.end()) {
      prior = it->second;
    } else if (k < s->LatestEval(i)) {
      // Pruned from memory (a very late retry): the store knows.
      WXP_RETURN_IF_ERROR(FlushLocked());
      absl::StatusOr<store::EvaluationRecord> stored =
          options_.store->GetEvaluation(request.swarm(), i, k);
      if (stored.ok()) {
        prior = InfoOf(*stored);
      } else if (!absl::IsNotFound(stored.status())) {
        return stored.status();
      }
    }
    if (prior) {
      const EvalInfo& e = *prior;
      if (e.blob_id == position_id && e.scores == scores &&
          e.failed == request.evaluation_failed()) {
        wxp::v1::ReportResponse out;
        out.set_accepted(true);
        out.set_duplicate(true);
        out.set_utility(e.utility);
        // The first answer may have been lost: repeat what the agent must act on, by the
        // same rule as a first report (an upload under ALWAYS or the audit sample too, or the
        // server would never hold that position).
        const PositionRef here{i, k};
        out.set_new_personal_best(s->engine->particle(i).personal_best == here);
        const bool pending = s->pending_audits.count({i, k}) > 0;
        out.set_upload_requested(!e.held && !e.failed &&
                                 (UploadAlwaysOrAudited(*s, i, k) || pending ||
                                  s->engine->global_best() == here ||
                                  s->engine->global_worst() == here));
        out.set_audit_pending(s->HeldBack(i, k));
        out.set_global_best_utility(s->engine->global_best_utility());
        return out;
      }
      return absl::AlreadyExistsError(absl::StrCat("particle ", i, " already reported iteration ",
                                                   k, " with a different payload"));
    }
    if (s->row.state == store::SwarmState::kFinished ||
        s->row.state == store::SwarmState::kStopped) {
      return absl::FailedPreconditionError(absl::StrCat("swarm '", request.swarm(), "' is over"));
    }
    const ParticleRecord& rec = s->engine->particle(i);
    if (k == 0) {
      if (rec.evaluated) {
        return absl::FailedPreconditionError("the initial position was already reported");
      }
      if (position_id != s->particles[i].initial_blob_id) {
        return absl::InvalidArgumentError(
            "the initial report must name the particle's initial position blob");
      }
    } else if (k != rec.started_iteration || rec.recorded_started) {
      return absl::FailedPreconditionError(absl::StrCat(
          "iteration ", k, " is ", k < rec.started_iteration ? "stale" : "not open",
          " for particle ", i, " (its targets are for iteration ", rec.started_iteration, ")"));
    }
    if (s->sync() && k != s->row.open_round) {
      return absl::FailedPreconditionError(
          absl::StrCat("iteration ", k, " is stale: round ", s->row.open_round, " is open"));
    }
    double utility = 0;
    if (!request.evaluation_failed()) {
      WXP_ASSIGN_OR_RETURN(utility, s->utility.Combine(scores));
    } else if (k == 0) {
      return absl::InvalidArgumentError(
          "the initial evaluation cannot fail: the pool cannot be ranked without it; retry it");
    }

    SwarmEngine engine = *s->engine;
    RecordOutcome outcome;
    if (!request.evaluation_failed()) {
      WXP_ASSIGN_OR_RETURN(
          outcome, k == 0 ? engine.RecordInitial(i, utility) : engine.Record(i, k, utility));
    }
    // Audits (SPEC 12): a claim that would be a new g is held back (the engine does not see
    // it) until an auditor confirms it; a sample of the others is checked after the fact.
    std::optional<store::AuditClaim> claim;
    if (s->audited() && !request.evaluation_failed()) {
      const bool candidate = outcome.new_global_best;
      if (candidate || DrawUniform(s->resolved.params.seed, RngStream::kAudit, k, i) <
                           s->resolved.spec.audit().sample_rate()) {
        claim =
            store::AuditClaim{i, k, caller.name, candidate, store::AuditState::kPending, {}, {}, 0};
      }
      if (candidate) {
        engine = *s->engine;
        outcome = RecordOutcome{};
      }
    }
    const bool held_back = claim && claim->candidate;
    const bool initial_blob = k == 0;  // the server made or received it already
    bool upload = false;
    if (!request.evaluation_failed() && !initial_blob) {
      upload = UploadAlwaysOrAudited(*s, i, k) || claim || outcome.new_global_best ||
               outcome.new_global_worst;
    }
    if (has_alpha && !initial_blob) {
      // The server keeps every alpha (it never asks for an upload in this space).
      WXP_ASSIGN_OR_RETURN(std::string bytes, AlphaBlobBytes(request.position_alpha()));
      WXP_RETURN_IF_ERROR(options_.blobs->Put(bytes).status());
    }
    const bool held = initial_blob || options_.blobs->Has(position_id);

    Swarm& live = *s;
    const int64_t now = NowMs();
    store::EvaluationRecord e;
    e.particle_id = i;
    e.iteration = k;
    e.blob_id = position_id;
    e.blob_held = held;
    e.scores = scores;
    e.utility = utility;
    e.utility_version = live.row.utility_version;
    e.failed = request.evaluation_failed();
    e.failure_reason = request.failure_reason();
    e.evaluation_seconds = request.evaluation_seconds();
    e.time_ms = now;

    // Stage the in-memory change, then close what can close, then persist it all at once.
    // Only this particle's row, the engine, the row of the swarm and the round counters
    // change: stage copies of those, not of every particle.
    Swarm next_view{live.row, live.resolved, live.utility};
    next_view.engine = std::move(engine);
    next_view.rounds = live.rounds;  // evaluations are added to `live` after the commit
    ParticleRow particle = live.particles[i];
    if (!held_back) {
      RoundStats& r = next_view.rounds[k];
      ++r.reports;
      r.failed += e.failed;
    }
    particle.last_report_ms = now;
    if (!e.failed) particle.current_blob_id = e.blob_id;

    SwarmUpdate u;
    u.swarm = request.swarm();
    u.evaluation = e;
    if (claim) u.audits.push_back(*claim);
    if (held && !initial_blob) u.blob_refs.push_back({e.blob_id, 0, 0});
    WXP_RETURN_IF_ERROR(MaybeCloseRounds(next_view, u, /*deadline_only=*/false));
    next_view.SyncRow();
    u.swarm_row = next_view.row;
    particle.engine = next_view.engine->particle(i);
    u.particles.push_back(particle);
    EnqueueLocked(std::move(u));

    live.row = next_view.row;
    live.particles[i] = std::move(particle);
    live.engine = std::move(next_view.engine);
    live.evals[{i, k}] = {e.blob_id, held, utility, scores, e.failed};
    if (claim) live.pending_audits[{i, k}] = *claim;
    live.rounds = std::move(next_view.rounds);
    live.PruneEvals();
    // A weight change scheduled for the round this report closed happens now if the server
    // holds what it re-ranks, else with the upload that completes it; either way before any
    // target of the next round is handed out.
    WXP_RETURN_IF_ERROR(ApplyDueWeightsLocked(live));
    if (request.training_failed()) {
      // Once per stored report (a retry is answered above as a duplicate). The reason is the
      // agent's text: quoted with its quotes and line breaks escaped, so it stays one line.
      Log(absl::StrFormat(
          "event=local_training_failed swarm=%s particle=%d iteration=%d agent=%s reason=\"%s\"",
          request.swarm(), i, k, caller.name, absl::CEscape(request.training_failure_reason())));
    }
    if (outcome.new_global_best) {
      Log(absl::StrFormat("event=new_global_best swarm=%s particle=%d iteration=%d utility=%.6g",
                          request.swarm(), i, k, utility));
    }
    if (claim) {
      Log(
          absl::StrFormat("event=audit_requested swarm=%s particle=%d iteration=%d agent=%s "
                          "candidate=%d utility=%.6g",
                          request.swarm(), i, k, caller.name, claim->candidate ? 1 : 0, utility));
    }
    wxp::v1::ReportResponse out;
    out.set_audit_pending(held_back);
    out.set_accepted(true);
    out.set_upload_requested(upload && !held);
    out.set_utility(utility);
    out.set_new_personal_best(outcome.new_personal_best);
    out.set_new_global_best(outcome.new_global_best);
    out.set_new_global_worst(outcome.new_global_worst);
    out.set_global_best_utility(live.engine->global_best_utility());
    return out;
  });
}

absl::Status Coordinator::MaybeCloseRounds(Swarm& s, SwarmUpdate& u, bool deadline_only) {
  const int64_t now = NowMs();
  const int n = s.pool_size();
  for (;;) {
    if (s.row.state == store::SwarmState::kFinished || s.row.state == store::SwarmState::kStopped)
      return absl::OkStatus();
    const int k = s.row.open_round;
    if (k == 0) {
      // The initial evaluation: every particle must be ranked before anything moves.
      if (!s.engine->initial_complete()) return absl::OkStatus();
    } else {
      const int reports = s.rounds[k].reports;
      const bool all = reports >= n;
      const bool deadline =
          now - s.row.round_opened_ms >=
              static_cast<int64_t>(s.resolved.spec.round_deadline_seconds() * 1000) &&
          reports >= QuorumOf(s.resolved.spec, n);
      if (!(all && !deadline_only) && !deadline) return absl::OkStatus();
      WXP_RETURN_IF_ERROR(s.engine->CloseIteration(k));
    }
    double mean = 0;
    for (int i = 0; i < n; ++i) mean += s.engine->particle(i).utility;
    const RoundStats stats = s.rounds[k];
    if (options_.on_round_closed) {
      options_.on_round_closed(s.row.name, k,
                               static_cast<double>(now - s.row.round_opened_ms) / 1000);
    }
    store::HistoryRecord h{k,
                           s.row.utility_version,
                           s.engine->global_best_utility(),
                           s.engine->global_worst_utility(),
                           mean / n,
                           k == 0 ? 0.0 : s.engine->StepLength(k),
                           stats.restarts,
                           stats.reports,
                           now};
    u.history.push_back(h);
    s.rounds.erase(k);
    const Termination t = s.engine->Finished();
    Log(absl::StrFormat("event=round_closed swarm=%s iteration=%d reports=%d/%d g=%.6g g_w=%.6g",
                        s.row.name, k, stats.reports, n, h.global_best_utility,
                        h.global_worst_utility));
    if (t != Termination::kRunning) {
      s.row.state = store::SwarmState::kFinished;
      s.row.termination = TerminationName(t);
      u.audit.push_back({now, "wxp-server", "finished", s.row.name, s.row.termination});
      Log(absl::StrFormat("event=swarm_finished swarm=%s reason=%s g=%.6g", s.row.name,
                          s.row.termination, s.engine->global_best_utility()));
      return absl::OkStatus();
    }
    s.row.open_round = k + 1;
    s.row.round_opened_ms = now;
    s.row.round_best = s.engine->global_best();
    s.row.round_best_utility = s.engine->global_best_utility();
    s.row.round_worst = s.engine->global_worst();
    s.row.round_worst_utility = s.engine->global_worst_utility();
  }
}

absl::Status Coordinator::OnBlobStored(const std::string& blob_id) {
  return ServeStatus([&]() -> absl::Status {
    mu_.AssertHeld();
    for (auto& [name, s] : swarms_) {
      SwarmUpdate u;
      u.swarm = name;
      std::vector<std::pair<int, int>> keys;
      // Not only from memory: a late upload may be of a position pruned from it. Reports
      // still in the queue may name it too.
      WXP_RETURN_IF_ERROR(FlushLocked());
      WXP_ASSIGN_OR_RETURN(std::vector<store::EvaluationRecord> named,
                           options_.store->ListEvaluationsOfBlob(name, blob_id));
      for (const store::EvaluationRecord& e : named) {
        if (e.blob_held) continue;
        u.blobs_now_held.push_back({e.particle_id, e.iteration});
        keys.push_back({e.particle_id, e.iteration});
      }
      if (keys.empty()) continue;
      WXP_ASSIGN_OR_RETURN(const int64_t size,
                           CheckPositionBlob(*options_.blobs, s->schema, blob_id));
      u.blob_refs.push_back({blob_id, size, 0});
      EnqueueLocked(std::move(u));
      for (const auto& key : keys) {
        if (auto it = s->evals.find(key); it != s->evals.end()) it->second.held = true;
      }
      WXP_RETURN_IF_ERROR(ApplyDueWeightsLocked(*s));  // it may have waited for this blob
    }
    return absl::OkStatus();
  });
}

absl::Status Coordinator::Tick() {
  return ServeStatus([&]() -> absl::Status {
    mu_.AssertHeld();
    for (auto& [name, s] : swarms_) {
      if (s->row.state != store::SwarmState::kRunning || !s->engine) continue;
      Swarm next{s->row, s->resolved, s->utility};
      next.engine = s->engine;
      next.rounds = s->rounds;
      SwarmUpdate u;
      u.swarm = name;
      WXP_RETURN_IF_ERROR(MaybeCloseRounds(next, u, /*deadline_only=*/true));
      if (u.history.empty()) continue;
      next.SyncRow();
      u.swarm_row = next.row;
      EnqueueLocked(std::move(u));
      s->row = next.row;
      s->engine = std::move(next.engine);
      s->rounds = std::move(next.rounds);
      WXP_RETURN_IF_ERROR(ApplyDueWeightsLocked(*s));
    }
    return absl::OkStatus();
  });
}

}  // namespace wxp::server
