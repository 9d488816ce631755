#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/rerank.h"
#include "common/status_macros.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/internal/swarm_state.h"

// Dynamic utility (SPEC 4.2): weight changes made now or scheduled for when an iteration
// closes, and the re-ranking of everything stored under the new weights.

namespace wxp::server {

using coordinator_internal::EvalInfo;
using coordinator_internal::InfoOf;
using store::SwarmUpdate;

namespace {

bool Over(const store::SwarmRecord& row) {
  return row.state == store::SwarmState::kFinished || row.state == store::SwarmState::kStopped;
}

// "name=weight " for each, as the audit log and the server log show a change.
std::string WeightsText(const std::map<std::string, double>& weights) {
  std::string text;
  for (const auto& [name, w] : weights) absl::StrAppend(&text, name, "=", w, " ");
  return text;
}

}  // namespace

std::string Coordinator::UtilityRowBytes(
    const UtilityFunction& utility,
    const std::optional<wxp::v1::ScheduledUtilityWeights>& scheduled) {
  wxp::v1::UtilityWeights stored = UtilityToProto(utility);
  if (scheduled) *stored.mutable_scheduled() = *scheduled;
  return stored.SerializeAsString();
}

wxp::v1::UtilityWeights Coordinator::WeightsView(const Swarm& s) {
  wxp::v1::UtilityWeights out = UtilityToProto(s.utility);
  if (s.scheduled && !Over(s.row)) *out.mutable_scheduled() = *s.scheduled;
  return out;
}

absl::StatusOr<wxp::v1::UtilityWeights> Coordinator::GetUtilityWeights(const std::string& swarm) {
  return Serve<wxp::v1::UtilityWeights>([&]() -> absl::StatusOr<wxp::v1::UtilityWeights> {
    mu_.AssertHeld();
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    return WeightsView(*s);
  });
}

absl::StatusOr<wxp::v1::UtilityWeights> Coordinator::SetUtilityWeights(
    const Caller& caller, const std::string& swarm, const std::map<std::string, double>& weights,
    int after_iteration) {
  return Serve<wxp::v1::UtilityWeights>([&]() -> absl::StatusOr<wxp::v1::UtilityWeights> {
    mu_.AssertHeld();
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    if (Over(s->row)) {
      return absl::FailedPreconditionError(
          absl::StrCat("swarm '", swarm, "' is over; its weights are final"));
    }
    if (after_iteration < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "after_iteration must be 0 (now) or an iteration >= 1; got ", after_iteration));
    }
    if (after_iteration == 0) {
      WXP_RETURN_IF_ERROR(ChangeWeightsLocked(*s, weights, caller.name, "",
                                              /*keep_scheduled=*/true));
      return WeightsView(*s);
    }
    // Checked now, so a typo is refused while the operator is there to see it.
    WXP_RETURN_IF_ERROR(s->utility.WithWeights(weights).status());
    const int last = s->resolved.params.max_iterations;
    if (after_iteration >= last) {
      return absl::InvalidArgumentError(absl::StrCat(
          "after_iteration ", after_iteration, " would never come: swarm '", swarm,
          "' is over once iteration ", last, " (max_iterations) closes; choose 1 to ", last - 1));
    }
    if (after_iteration <= s->row.closed_iterations) {
      return absl::FailedPreconditionError(
          absl::StrCat("iteration ", after_iteration, " of swarm '", swarm,
                       "' has closed already (the swarm is at iteration ", s->row.closed_iterations,
                       "); the weights are unchanged"));
    }
    wxp::v1::ScheduledUtilityWeights scheduled;
    scheduled.set_after_iteration(after_iteration);
    for (const auto& [name, w] : weights) (*scheduled.mutable_weights())[name] = w;
    store::SwarmRecord row = s->row;
    row.utility = UtilityRowBytes(s->utility, scheduled);
    SwarmUpdate u;
    u.swarm = swarm;
    u.swarm_row = row;
    const std::string detail =
        absl::StrCat("after iteration ", after_iteration, ": ", WeightsText(weights));
    u.audit.push_back({NowMs(), caller.name, "schedule utility weights", swarm, detail});
    EnqueueLocked(std::move(u));
    s->row = std::move(row);
    s->scheduled = std::move(scheduled);
    Log(absl::StrFormat("event=utility_weights_scheduled swarm=%s by=%s %s", swarm, caller.name,
                        detail));
    return WeightsView(*s);
  });
}

absl::Status Coordinator::ApplyDueWeightsLocked(Swarm& s) {
  if (!s.scheduled || Over(s.row) || s.row.closed_iterations < s.scheduled->after_iteration()) {
    return absl::OkStatus();
  }
  // Not before the server holds g and g_w: the re-ranking chooses among held positions, and
  // the best the closing round found is usually still being uploaded. Targets of the next
  // round wait for the same uploads, so none goes out under the old weights meanwhile.
  auto held = [&](const PositionRef& r) {
    auto it = s.evals.find({r.particle, r.iteration});
    return it != s.evals.end() && it->second.held;
  };
  if (s.engine && (!held(s.engine->global_best()) || !held(s.engine->global_worst()))) {
    return absl::OkStatus();
  }
  const std::map<std::string, double> weights(s.scheduled->weights().begin(),
                                              s.scheduled->weights().end());
  const int after = s.scheduled->after_iteration();
  absl::Status changed = ChangeWeightsLocked(
      s, weights, "wxp-server", absl::StrCat("(scheduled after iteration ", after, ")"),
      /*keep_scheduled=*/false);
  if (!absl::IsInvalidArgument(changed)) return changed;
  // The weights were valid when scheduled but not on top of a change made since (say, every
  // other weight set to 0): the change is dropped, durably, and said so.
  s.scheduled.reset();
  s.row.utility = UtilityRowBytes(s.utility, std::nullopt);
  SwarmUpdate u;
  u.swarm = s.row.name;
  u.swarm_row = s.row;
  u.audit.push_back({NowMs(), "wxp-server", "drop scheduled utility weights", s.row.name,
                     std::string(changed.message())});
  EnqueueLocked(std::move(u));
  Log(absl::StrFormat("event=scheduled_weights_refused swarm=%s after_iteration=%d reason=\"%s\"",
                      s.row.name, after, absl::CEscape(changed.message())));
  return absl::OkStatus();
}

absl::Status Coordinator::ChangeWeightsLocked(Swarm& s,
                                              const std::map<std::string, double>& weights,
                                              const std::string& who, const std::string& why,
                                              bool keep_scheduled) {
  WXP_ASSIGN_OR_RETURN(UtilityFunction utility, s.utility.WithWeights(weights));

  // Re-weight every evaluation from its stored components (memory holds only recent ones).
  std::map<std::pair<int, int>, EvalInfo> all;
  std::set<std::pair<int, int>> confirmed;  // claims an auditor confirmed (audited swarms)
  {
    WXP_RETURN_IF_ERROR(FlushLocked());
    WXP_ASSIGN_OR_RETURN(std::vector<store::EvaluationRecord> rows,
                         options_.store->ListEvaluations(s.row.name));
    for (const auto& e : rows) all[{e.particle_id, e.iteration}] = InfoOf(e);
    // A disputed claim, or a candidate still held back for an auditor (SPEC 12), must not
    // become g here either: it is ranked like a failed evaluation. (A sampled claim
    // awaiting its audit counts, as it did when it was reported.) And g is chosen among
    // confirmed claims only: a report that was never a candidate was never audited, and
    // new weights must not make it g without an auditor's word.
    if (s.resolved.spec.audit().enabled()) {
      WXP_ASSIGN_OR_RETURN(std::vector<store::AuditClaim> claims,
                           options_.store->ListAuditClaims(s.row.name));
      for (const store::AuditClaim& a : claims) {
        if (a.state == store::AuditState::kConfirmed) {
          confirmed.insert({a.particle_id, a.iteration});
          continue;
        }
        if (a.state == store::AuditState::kPending && !a.candidate) continue;
        auto it = all.find({a.particle_id, a.iteration});
        if (it != all.end()) it->second.failed = true;
      }
    }
  }
  // Re-choose among held positions (SPEC 4.2; the runner's utility_changes do the same).
  std::vector<StoredEvaluation> stored;
  for (const auto& [key, e] : all) {
    if (e.failed) continue;
    const bool may_lead = !s.resolved.spec.audit().enabled() || confirmed.count(key) > 0;
    stored.push_back({PositionRef{key.first, key.second}, e.scores, e.held, may_lead});
  }
  std::optional<SwarmEngine> engine = s.engine;
  WXP_ASSIGN_OR_RETURN(std::vector<double> values,
                       RerankUnderWeights(utility, stored, engine ? &*engine : nullptr));
  std::map<std::pair<int, int>, double> rescored;
  for (size_t j = 0; j < stored.size(); ++j) {
    rescored[{stored[j].position.particle, stored[j].position.iteration}] = values[j];
  }
  store::SwarmUpdate u;
  u.swarm = s.row.name;
  if (engine) {
    // The new reading of the history: g / g_w / mean of what was known after each round.
    for (int k = 0; k <= s.row.closed_iterations; ++k) {
      double best = 0, worst = 0, sum = 0;
      bool any = false;
      int count = 0;
      // In (particle, iteration) order: the sum of round k adds its particles in id order.
      for (const auto& [key, value] : rescored) {
        if (key.second > k) continue;
        if (key.second == k) {
          sum += value;
          ++count;
        }
        if (!all.at(key).held) continue;
        best = any ? std::max(best, value) : value;
        worst = any ? std::min(worst, value) : value;
        any = true;
      }
      if (!any) continue;
      u.history.push_back({k, utility.version(), best, worst, count ? sum / count : 0.0,
                           k == 0 ? 0.0 : engine->StepLength(k), 0, count, NowMs()});
    }
  }
  Swarm next_view{s.row, s.resolved, utility};
  next_view.particles = s.particles;
  next_view.engine = engine;
  next_view.SyncRow();
  next_view.row.utility_version = utility.version();
  next_view.row.utility = UtilityRowBytes(utility, keep_scheduled ? s.scheduled : std::nullopt);
  if (engine) {
    // Targets issued from now on use the re-chosen g / g_w.
    next_view.row.round_best = engine->global_best();
    next_view.row.round_best_utility = engine->global_best_utility();
    next_view.row.round_worst = engine->global_worst();
    next_view.row.round_worst_utility = engine->global_worst_utility();
    for (int i = 0; i < next_view.pool_size(); ++i) u.particles.push_back(next_view.RowOf(i));
  }
  u.swarm_row = next_view.row;
  const std::string detail = absl::StrCat(WeightsText(weights), why);
  u.audit.push_back({NowMs(), who, "set utility weights", s.row.name, detail});
  EnqueueLocked(std::move(u));
  s.row = next_view.row;
  s.utility = utility;
  s.engine = std::move(engine);
  for (const auto& [key, value] : rescored) {
    if (auto it = s.evals.find(key); it != s.evals.end()) it->second.utility = value;
  }
  // p_i, g and g_w were re-chosen: what they point at must be in memory.
  for (const auto& [key, e] : all) {
    const PositionRef ref{key.first, key.second};
    const bool wanted =
        s.engine && (s.engine->global_best() == ref || s.engine->global_worst() == ref ||
                     s.engine->particle(key.first).personal_best == ref);
    if (wanted && !s.evals.count(key)) {
      s.evals[key] = e;
      s.evals[key].utility = rescored.count(key) ? rescored.at(key) : e.utility;
    }
  }
  if (!keep_scheduled) s.scheduled.reset();
  Log(absl::StrFormat("event=utility_weights swarm=%s version=%d by=%s %s", s.row.name,
                      utility.version(), who, detail));
  return absl::OkStatus();
}

}  // namespace wxp::server
