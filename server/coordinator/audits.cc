#include <cmath>
#include <optional>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/internal/coefficients.h"
#include "server/coordinator/internal/swarm_state.h"

// Audits of reported scores (SPEC 12): handing pending claims to auditors and deciding
// them. Where a claim comes from (a report held back or drawn for the sample) is
// particles.cc's Report.

namespace wxp::server {

using coordinator_internal::kRetryAfterMs;
using coordinator_internal::ReadAlpha;
using coordinator_internal::RoundStats;

namespace {

constexpr size_t kMaxReasonBytes = 1024;

// Why a claim is disputed: the components outside tolerance, "name claimed=x audited=y
// tolerance=t", or "" when every one is within.
std::string Disagreements(const UtilityFunction& utility,
                          const std::map<std::string, double>& claimed,
                          const std::map<std::string, double>& audited,
                          const wxp::v1::AuditPolicy& policy) {
  std::vector<std::string> out;
  for (const UtilityComponent& c : utility.components()) {
    const double tolerance = policy.tolerance().at(c.name);
    auto cl = claimed.find(c.name);
    const double claim = cl == claimed.end() ? std::nan("") : cl->second;
    const double truth = audited.at(c.name);
    // Written so that a NaN claim (never stored, but never trusted either) is outside.
    if (!(std::fabs(claim - truth) <= tolerance)) {
      out.push_back(absl::StrFormat("%s claimed=%.6g audited=%.6g tolerance=%.6g", c.name, claim,
                                    truth, tolerance));
    }
  }
  return absl::StrJoin(out, "; ");
}

}  // namespace

absl::StatusOr<wxp::v1::PullAuditTaskResponse> Coordinator::PullAuditTask(
    const Caller& caller, const wxp::v1::PullAuditTaskRequest& request) {
  return Serve<wxp::v1::PullAuditTaskResponse>(
      [&]() -> absl::StatusOr<wxp::v1::PullAuditTaskResponse> {
        mu_.AssertHeld();
        std::vector<Swarm*> candidates;
        if (!request.swarm().empty()) {
          WXP_ASSIGN_OR_RETURN(Swarm * s, Find(request.swarm()));
          candidates.push_back(s);
        } else {
          for (auto& [name, s] : swarms_) {
            if (Find(name).ok()) candidates.push_back(s.get());
          }
        }
        wxp::v1::PullAuditTaskResponse out;
        if (!request.swarm().empty()) {
          out.set_swarm_state(static_cast<wxp::v1::SwarmState>(candidates[0]->row.state));
        }
        for (Swarm* s : candidates) {
          // Oldest first: (iteration, particle), so a round's claims are decided together.
          const std::pair<int, int>* pick = nullptr;
          for (const auto& [key, claim] : s->pending_audits) {
            auto e = s->evals.find(key);
            if (e == s->evals.end() || !e->second.held) continue;  // not uploaded yet
            if (pick == nullptr ||
                std::tie(key.second, key.first) < std::tie(pick->second, pick->first)) {
              pick = &key;
            }
          }
          if (pick == nullptr) continue;
          const coordinator_internal::EvalInfo& e = s->evals.at(*pick);
          const wxp::v1::SwarmSpec& spec = s->resolved.spec;
          wxp::v1::AuditTask* t = out.mutable_task();
          t->set_swarm(s->row.name);
          t->set_particle_id(pick->first);
          t->set_iteration(pick->second);
          t->set_position_blob_id(e.blob_id);
          t->mutable_claimed_scores()->insert(e.scores.begin(), e.scores.end());
          *t->mutable_tolerance() = spec.audit().tolerance();
          if (s->coefficients()) {
            WXP_ASSIGN_OR_RETURN(std::vector<float> alpha, ReadAlpha(*options_.blobs, e.blob_id));
            t->mutable_position_alpha()->Assign(alpha.begin(), alpha.end());
            t->set_space(spec.space());
            t->set_decoder(spec.decoder());
            t->set_svd_rank(spec.svd_rank());
            t->set_per_module(spec.per_module());
            t->set_combination(spec.combination());
            for (const store::ExpertRecord* x : coordinator_internal::InPoolOrder(s->experts)) {
              t->add_expert_blob_ids(x->blob_id);
              t->add_expert_adapter_configs(x->config_json);
            }
          }
          out.set_status(wxp::v1::PullAuditTaskResponse::TASK);
          Log(absl::StrFormat("event=audit_task swarm=%s particle=%d iteration=%d auditor=%s",
                              s->row.name, pick->first, pick->second, caller.name));
          return out;
        }
        out.set_status(wxp::v1::PullAuditTaskResponse::NONE);
        out.set_retry_after_ms(kRetryAfterMs);
        return out;
      });
}

absl::StatusOr<wxp::v1::ReportAuditResponse> Coordinator::ReportAudit(
    const Caller& caller, const wxp::v1::ReportAuditRequest& request) {
  if (request.evaluation_failed() && !request.scores().empty()) {
    return absl::InvalidArgumentError("a failed audit carries no scores");
  }
  if (request.failure_reason().size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError("failure_reason must be at most 1024 bytes");
  }
  return Serve<wxp::v1::ReportAuditResponse>([&]() -> absl::StatusOr<wxp::v1::ReportAuditResponse> {
    mu_.AssertHeld();
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(request.swarm()));
    const int i = request.particle_id();
    const int k = request.iteration();
    wxp::v1::ReportAuditResponse out;
    auto pending = s->pending_audits.find({i, k});
    if (pending == s->pending_audits.end()) {
      // Decided already (by this auditor's lost answer, or another's), or never audited.
      WXP_RETURN_IF_ERROR(FlushLocked());
      WXP_ASSIGN_OR_RETURN(std::vector<store::AuditClaim> claims,
                           options_.store->ListAuditClaims(request.swarm()));
      for (const store::AuditClaim& a : claims) {
        if (a.particle_id != i || a.iteration != k) continue;
        out.set_verdict(static_cast<wxp::v1::AuditVerdict>(a.state));
        out.set_already_decided(true);
        return out;
      }
      return absl::NotFoundError(absl::StrCat("swarm '", request.swarm(),
                                              "' has no audited claim of particle ", i,
                                              " at iteration ", k));
    }
    if (request.evaluation_failed()) {
      Log(absl::StrFormat(
          "event=audit_failed swarm=%s particle=%d iteration=%d auditor=%s reason=\"%s\"",
          request.swarm(), i, k, caller.name, absl::CEscape(request.failure_reason())));
      out.set_verdict(wxp::v1::AUDIT_PENDING);
      return out;
    }
    const std::map<std::string, double> audited(request.scores().begin(), request.scores().end());
    // The same checks as a report's scores: every component, finite, within its range.
    absl::StatusOr<double> audited_utility = s->utility.Combine(audited);
    if (!audited_utility.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("audited scores: ", audited_utility.status().message()));
    }
    const coordinator_internal::EvalInfo& e = s->evals.at({i, k});
    const wxp::v1::AuditPolicy& policy = s->resolved.spec.audit();
    const std::string why = Disagreements(s->utility, e.scores, audited, policy);
    const bool disputed = !why.empty();
    const int64_t now = NowMs();

    store::AuditClaim decided = pending->second;
    decided.state = disputed ? store::AuditState::kDisputed : store::AuditState::kConfirmed;
    decided.audited_scores = audited;
    decided.auditor = caller.name;
    decided.decided_ms = now;

    // Whether the verdict quarantines the reporter (the store decides it the same way, in
    // the same transaction; this is for the answer and the log).
    bool quarantines = false;
    if (disputed) {
      WXP_RETURN_IF_ERROR(FlushLocked());
      absl::StatusOr<store::ClientRecord> reporter = options_.store->GetClient(decided.reporter);
      const int strikes = reporter.ok() ? reporter->strikes : 0;
      const bool already = reporter.ok() && reporter->quarantined;
      quarantines = !already && strikes + 1 >= policy.quarantine_after();
    }

    store::SwarmUpdate u;
    u.swarm = s->row.name;
    u.audits.push_back(decided);
    u.standings.push_back({decided.reporter, disputed, policy.quarantine_after(), now});
    u.audit.push_back({now, caller.name, disputed ? "audit disputed" : "audit confirmed",
                       s->row.name,
                       absl::StrFormat("particle=%d iteration=%d reporter=%s%s%s", i, k,
                                       decided.reporter, disputed ? " " : "", why)});
    if (quarantines) {
      u.audit.push_back({now, "wxp-server", "quarantine client", s->row.name,
                         absl::StrCat(decided.reporter, " after ", policy.quarantine_after(),
                                      " disputed audits")});
    }

    // A held-back candidate counts now, if its round (or, in async, its particle) is still
    // where it was: confirmed with its claim, as without audits; disputed, never as g (the
    // initial pool cannot be ranked without a utility: it gets the auditor's).
    std::optional<SwarmEngine> engine;
    RecordOutcome outcome;
    std::map<int, RoundStats> rounds = s->rounds;
    auto still_waiting = [&]() {
      if (!decided.candidate || !s->engine) return false;
      const ParticleRecord& rec = s->engine->particle(i);
      if (k == 0) return !rec.evaluated;
      return rec.started_iteration == k && !rec.recorded_started &&
             (!s->sync() || s->row.open_round == k);
    };
    const bool waiting = still_waiting();
    if (waiting) {
      engine = *s->engine;
      if (k == 0) {
        WXP_ASSIGN_OR_RETURN(outcome,
                             engine->RecordInitial(i, disputed ? *audited_utility : e.utility));
      } else if (!disputed) {
        WXP_ASSIGN_OR_RETURN(outcome, engine->Record(i, k, e.utility));
      }
      RoundStats& r = rounds[k];
      ++r.reports;
      r.failed += disputed && k > 0;
    }
    Swarm next{s->row, s->resolved, s->utility};
    if (waiting) {
      next.engine = std::move(engine);
      next.rounds = std::move(rounds);
      WXP_RETURN_IF_ERROR(MaybeCloseRounds(next, u, /*deadline_only=*/false));
      next.SyncRow();
      u.swarm_row = next.row;
      store::ParticleRow row = s->particles[i];
      row.engine = next.engine->particle(i);
      u.particles.push_back(row);
    }
    EnqueueLocked(std::move(u));
    if (waiting) {
      s->row = next.row;
      s->particles[i].engine = next.engine->particle(i);
      s->engine = std::move(next.engine);
      s->rounds = std::move(next.rounds);
    }
    s->pending_audits.erase(pending);
    if (waiting) WXP_RETURN_IF_ERROR(ApplyDueWeightsLocked(*s));

    Log(absl::StrFormat("event=audit_%s swarm=%s particle=%d iteration=%d reporter=%s auditor=%s%s",
                        disputed ? "disputed" : "confirmed", s->row.name, i, k, decided.reporter,
                        caller.name,
                        disputed ? absl::StrCat(" why=\"", absl::CEscape(why), "\"") : ""));
    if (outcome.new_global_best) {
      Log(absl::StrFormat("event=new_global_best swarm=%s particle=%d iteration=%d utility=%.6g",
                          s->row.name, i, k, s->engine->global_best_utility()));
    }
    if (quarantines) {
      Log(absl::StrFormat("event=client_quarantined client=%s disputes=%d", decided.reporter,
                          policy.quarantine_after()));
    }
    out.set_verdict(disputed ? wxp::v1::AUDIT_DISPUTED : wxp::v1::AUDIT_CONFIRMED);
    out.set_reporter_quarantined(quarantines);
    return out;
  });
}

}  // namespace wxp::server
