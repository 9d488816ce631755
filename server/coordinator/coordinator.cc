#include "server/coordinator/coordinator.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <iterator>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/adapter.h"
#include "common/safetensors.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "server/coordinator/internal/coefficients.h"
#include "server/coordinator/internal/swarm_state.h"

// The live model (internal/swarm_state.h): loading it from the store at start and after a
// failed write, and the group-commit plumbing every request goes through.

namespace wxp::server {
namespace coordinator_internal {

EvalInfo InfoOf(const store::EvaluationRecord& e) {
  return {e.blob_id, e.blob_held, e.utility, e.scores, e.failed};
}

int QuorumOf(const wxp::v1::SwarmSpec& spec, int n) {
  if (spec.quorum_rule_case() == wxp::v1::SwarmSpec::kQuorumCount) {
    return std::min(spec.quorum_count(), n);
  }
  return std::max(1, static_cast<int>(std::ceil(spec.quorum() * n)));
}

google::protobuf::Timestamp ToTimestamp(int64_t ms) {
  return google::protobuf::util::TimeUtil::MillisecondsToTimestamp(ms);
}

absl::StatusOr<int64_t> CheckPositionBlob(PositionBlobs& blobs, const std::optional<Schema>& schema,
                                          const std::string& blob_id) {
  WXP_ASSIGN_OR_RETURN(std::string bytes, blobs.ReadAll(blob_id));
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::FromBytes(std::move(bytes), blob_id);
  if (!file.ok()) return file.status();
  const Adapter a = AdapterFromSafetensors(*file);
  if (schema) {
    if (absl::Status c = a.schema.CheckSame(*schema); !c.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("blob ", blob_id, ": ", c.message()));
    }
  }
  if (absl::Status f = CheckFinite(a); !f.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("blob ", blob_id, ": ", f.message()));
  }
  return static_cast<int64_t>(file->bytes().size());
}

absl::Status NotOwner(const Caller& caller, int particle, const std::string& owner) {
  return absl::PermissionDeniedError(
      absl::StrCat("particle ", particle, " belongs to '", owner, "', not to '", caller.name, "'"));
}

namespace {

// The engine's globals, which SwarmEngineState and store::SwarmRecord name alike: the one
// list of them, for both directions.
template <typename From, typename To>
void CopyGlobals(const From& from, To& to) {
  to.global_best = from.global_best;
  to.global_best_utility = from.global_best_utility;
  to.global_worst = from.global_worst;
  to.global_worst_utility = from.global_worst_utility;
  to.closed_iterations = from.closed_iterations;
  to.last_global_improvement = from.last_global_improvement;
  to.stopped = from.stopped;
}

}  // namespace

void GlobalsToRow(const SwarmEngineState& state, store::SwarmRecord& row) {
  CopyGlobals(state, row);
}

SwarmEngineState EngineStateFromRows(const store::SwarmRecord& row,
                                     const std::vector<store::ParticleRow>& particles) {
  SwarmEngineState state;
  for (const store::ParticleRow& p : particles) state.particles.push_back(p.engine);
  CopyGlobals(row, state);
  return state;
}

}  // namespace coordinator_internal

using coordinator_internal::CheckPositionBlob;
using coordinator_internal::EngineStateFromRows;
using coordinator_internal::InfoOf;
using coordinator_internal::RoundStats;
using store::ParticleRow;

int Coordinator::Swarm::LatestEval(int particle) const {
  auto it = evals.lower_bound({particle + 1, std::numeric_limits<int>::min()});
  if (it == evals.begin()) return -1;
  --it;
  return it->first.first == particle ? it->first.second : -1;
}

void Coordinator::Swarm::PruneEvals() {
  if (evals.size() <= 4 * static_cast<size_t>(pool_size()) + 64) return;
  std::set<std::pair<int, int>> keep;
  auto mark = [&](const PositionRef& r) {
    if (r.valid()) keep.insert({r.particle, r.iteration});
  };
  if (engine) {
    mark(engine->global_best());
    mark(engine->global_worst());
    for (int i = 0; i < engine->num_particles(); ++i) mark(engine->particle(i).personal_best);
  }
  mark(row.round_best);
  mark(row.round_worst);
  for (const auto& [key, claim] : pending_audits) keep.insert(key);
  for (auto it = evals.begin(); it != evals.end();) {
    const auto next = std::next(it);
    const bool latest = next == evals.end() || next->first.first != it->first.first;
    if (!latest && keep.count(it->first) == 0) evals.erase(it);
    it = next;
  }
}

Coordinator::Coordinator(Options options) : options_(std::move(options)) {}
Coordinator::~Coordinator() = default;

int64_t Coordinator::NowMs() const { return absl::ToUnixMillis(options_.clock->Now()); }

void Coordinator::SeenLocked(Swarm& s, const std::string& agent) {
  int64_t& seen = s.last_seen_ms[agent];
  seen = std::max(seen, NowMs());
}

void Coordinator::Log(const std::string& line) { pending_logs_.push_back(line); }

void Coordinator::EmitLog(const std::string& line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::cerr << line << std::endl;
  }
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(Options options) {
  if (options.store == nullptr || options.blobs == nullptr || options.clock == nullptr) {
    return absl::InvalidArgumentError("coordinator needs a store, blobs and a clock");
  }
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options)));
  absl::MutexLock lock(&c->mu_);
  WXP_ASSIGN_OR_RETURN(c->swarms_, c->LoadLocked(/*at_start=*/true));
  c->failures_seen_ = c->options_.store->Failures();
  return c;
}

absl::StatusOr<std::map<std::string, std::unique_ptr<Coordinator::Swarm>>> Coordinator::LoadLocked(
    bool at_start) {
  std::map<std::string, std::unique_ptr<Swarm>> swarms;
  WXP_ASSIGN_OR_RETURN(std::vector<store::SwarmRecord> rows, options_.store->ListSwarms());
  for (store::SwarmRecord& row : rows) {
    if (options_.leases != nullptr && leased_.count(row.name) == 0) continue;
    const std::string name = row.name;
    WXP_ASSIGN_OR_RETURN(swarms[name], LoadSwarmLocked(std::move(row), at_start));
  }
  return swarms;
}

absl::StatusOr<std::unique_ptr<Coordinator::Swarm>> Coordinator::LoadSwarmLocked(
    store::SwarmRecord row, bool at_start) {
  store::SwarmStore& st = *options_.store;
  wxp::v1::SwarmSpec spec;
  if (!spec.ParseFromString(row.spec)) {
    return absl::DataLossError(absl::StrCat("stored spec of swarm '", row.name, "' is corrupt"));
  }
  WXP_ASSIGN_OR_RETURN(ResolvedSpec resolved,
                       ResolveSwarmSpec(spec, spec.hyperparameters().seed()));
  wxp::v1::UtilityWeights weights;
  if (!weights.ParseFromString(row.utility)) {
    return absl::DataLossError(absl::StrCat("stored utility of '", row.name, "' is corrupt"));
  }
  WXP_ASSIGN_OR_RETURN(UtilityFunction utility, UtilityFromProto(weights));
  auto s = std::unique_ptr<Swarm>(new Swarm{row, resolved, utility, resolved.schema});
  if (weights.has_scheduled()) s->scheduled = weights.scheduled();
  WXP_ASSIGN_OR_RETURN(s->experts, st.ListExperts(row.name));
  WXP_ASSIGN_OR_RETURN(s->particles, st.ListParticles(row.name));
  if (s->coefficients() && !s->particles.empty()) {
    WXP_ASSIGN_OR_RETURN(
        std::vector<float> alpha,
        coordinator_internal::ReadAlpha(*options_.blobs, s->particles[0].initial_blob_id));
    s->alpha_dim = static_cast<int64_t>(alpha.size());
  }
  // The adapter config exported with g is particle 0's expert's (the first to join
  // before the pool exists).
  if (!s->experts.empty()) s->config_json = s->experts[0].config_json;
  for (const store::ExpertRecord& e : s->experts) {
    if (!s->particles.empty() && e.blob_id == s->particles[0].initial_blob_id) {
      s->config_json = e.config_json;
    }
  }
  // Online is about being heard from recently: after a restart, the last stored contact.
  for (const store::ExpertRecord& e : s->experts) {
    int64_t& seen = s->last_seen_ms[e.agent];
    seen = std::max(seen, e.joined_ms);
  }
  for (const ParticleRow& p : s->particles) {
    int64_t& seen = s->last_seen_ms[p.owner];
    seen = std::max(seen, p.last_report_ms);
  }
  if (s->audited()) {
    WXP_ASSIGN_OR_RETURN(std::vector<store::AuditClaim> claims, st.ListAuditClaims(row.name));
    for (store::AuditClaim& a : claims) {
      if (a.state == store::AuditState::kPending) {
        s->pending_audits[{a.particle_id, a.iteration}] = std::move(a);
      }
    }
  }
  WXP_ASSIGN_OR_RETURN(std::vector<store::EvaluationRecord> evals, st.ListEvaluations(row.name));
  for (const auto& e : evals) {
    s->evals[{e.particle_id, e.iteration}] = InfoOf(e);
    // A held-back candidate is not a report of its round until it is decided.
    if (e.iteration > row.closed_iterations && !s->HeldBack(e.particle_id, e.iteration)) {
      RoundStats& r = s->rounds[e.iteration];
      ++r.reports;
      r.failed += e.failed;
    }
  }
  if (!s->particles.empty()) {
    WXP_ASSIGN_OR_RETURN(
        SwarmEngine engine,
        SwarmEngine::Restore(resolved.params, EngineStateFromRows(row, s->particles)));
    s->engine = std::move(engine);
  }
  // A crash between storing an uploaded blob and recording it leaves an evaluation that
  // is not marked held although its bytes are here: reconcile.
  std::vector<std::pair<int, int>> unheld;
  for (const auto& [key, e] : s->evals) {
    if (!e.held && !e.failed) unheld.push_back(key);
  }
  store::SwarmUpdate held = UnrecordedUploadsLocked(*s, unheld);
  if (!held.blobs_now_held.empty()) {
    // With replicas the write needs the lease's token like any other (MaintainLeases has
    // recorded it before loading): without one it would be refused every time.
    if (auto l = leased_.find(row.name); l != leased_.end()) held.fence = l->second.token;
    absl::Status marked = st.Apply(held);
    if (at_start) WXP_RETURN_IF_ERROR(marked);
    if (marked.ok()) {
      for (const auto& key : held.blobs_now_held) s->evals[key].held = true;
      Log(absl::StrFormat("event=uploads_recorded swarm=%s evaluations=%d", row.name,
                          held.blobs_now_held.size()));
    } else {
      // Serving goes on without marking them (after a full disk, or a lock the previous
      // leader's session still held); MaintainLeases retries, and so does a later reload.
      s->reconcile_due = true;
      Log(absl::StrFormat("event=reconcile_failed swarm=%s evaluations=%d error=\"%s\"", row.name,
                          held.blobs_now_held.size(), marked.message()));
    }
  }
  s->PruneEvals();
  return s;
}

store::SwarmUpdate Coordinator::UnrecordedUploadsLocked(
    const Swarm& s, const std::vector<std::pair<int, int>>& keys) {
  store::SwarmUpdate held;
  held.swarm = s.row.name;
  for (const auto& key : keys) {
    auto it = s.evals.find(key);
    if (it == s.evals.end()) continue;
    const coordinator_internal::EvalInfo& e = it->second;
    if (e.held || e.failed || !options_.blobs->Has(e.blob_id)) continue;
    // The check OnBlobStored would have made: a blob it refused (NaN, another schema) is
    // stored too, and must not become a target.
    absl::StatusOr<int64_t> size = CheckPositionBlob(*options_.blobs, s.schema, e.blob_id);
    if (!size.ok()) continue;
    held.blobs_now_held.push_back(key);
    held.blob_refs.push_back({e.blob_id, *size, 0});
  }
  return held;
}

absl::Status Coordinator::ReloadIfNeededLocked() {
  store::SwarmStore& st = *options_.store;
  if (st.Failures() == failures_seen_) return absl::OkStatus();
  // A queued update failed, so memory ran ahead of the store with changes that are lost:
  // settle what we queued, then start over from what is durable.
  st.WaitDurable(last_ticket_).IgnoreError();
  st.ResumeAfterFailure();
  WXP_ASSIGN_OR_RETURN(auto swarms, LoadLocked(/*at_start=*/false));
  // The reconcile write in LoadLocked may itself have failed: that must not block others.
  st.ResumeAfterFailure();
  // Contact is not state the failed write could have changed: keep what memory saw.
  for (auto& [name, s] : swarms) {
    auto old = swarms_.find(name);
    if (old == swarms_.end()) continue;
    for (const auto& [agent, ms] : old->second->last_seen_ms) {
      int64_t& seen = s->last_seen_ms[agent];
      seen = std::max(seen, ms);
    }
  }
  swarms_ = std::move(swarms);
  last_ticket_ = 0;
  failures_seen_ = st.Failures();
  Log("event=state_reloaded reason=write_failed");
  return absl::OkStatus();
}

void Coordinator::EnqueueLocked(store::SwarmUpdate update) {
  if (auto l = leased_.find(update.swarm); l != leased_.end()) update.fence = l->second.token;
  last_ticket_ = options_.store->Enqueue(std::move(update));
}

absl::Status Coordinator::FlushLocked() { return options_.store->WaitDurable(last_ticket_); }

absl::Status Coordinator::ServeStatus(absl::FunctionRef<absl::Status()> locked) {
  return Serve<bool>([&]() -> absl::StatusOr<bool> {
           mu_.AssertHeld();
           WXP_RETURN_IF_ERROR(locked());
           return true;
         })
      .status();
}

absl::StatusOr<Coordinator::Swarm*> Coordinator::Find(const std::string& name) {
  auto it = swarms_.find(name);
  if (options_.leases == nullptr) {
    if (it == swarms_.end())
      return absl::NotFoundError(absl::StrCat("no swarm named '", name, "'"));
    return it->second.get();
  }
  if (it == swarms_.end()) return NotLedLocked(name);
  // Past the lease's end on this replica's clock another replica may lead the swarm
  // already: nothing is answered from this memory until a renewal succeeds (writes would be
  // fenced anyway; this keeps stale reads out too).
  auto l = leased_.find(name);
  if (l == leased_.end() || NowMs() >= l->second.expires_ms) {
    return absl::UnavailableError(
        absl::StrCat("this replica's lease of swarm '", name, "' ran out; retry shortly"));
  }
  return it->second.get();
}

}  // namespace wxp::server
