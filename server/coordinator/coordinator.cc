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
#include "common/rng.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/swarm_move.h"
#include "google/protobuf/util/time_util.h"

namespace wxp::server {
namespace {

using store::ParticleRow;
using store::SwarmUpdate;

constexpr size_t kMaxConfigBytes = 64 << 10;
constexpr int64_t kRetryAfterMs = 500;

struct EvalInfo {
  std::string blob_id;
  bool held = false;
  double utility = 0;
  std::map<std::string, double> scores;
  bool failed = false;
};

struct RoundStats {
  int reports = 0;
  int failed = 0;
  int restarts = 0;
};

// Reports needed before a deadline may close a round of `n` particles.
int QuorumOf(const wxp::v1::SwarmSpec& spec, int n) {
  if (spec.quorum_rule_case() == wxp::v1::SwarmSpec::kQuorumCount) {
    return std::min(spec.quorum_count(), n);
  }
  return std::max(1, static_cast<int>(std::ceil(spec.quorum() * n)));
}

google::protobuf::Timestamp ToTimestamp(int64_t ms) {
  return google::protobuf::util::TimeUtil::MillisecondsToTimestamp(ms);
}

// A position others will move toward must be a well-formed adapter of the swarm's schema
// with finite values. Its size in bytes when it is; InvalidArgument naming the blob if not.
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
  return absl::PermissionDeniedError(absl::StrCat("particle ", particle, " belongs to '", owner,
                                                  "', not to '", caller.identity, "'"));
}

}  // namespace

struct Coordinator::Swarm {
  store::SwarmRecord row;
  ResolvedSpec resolved;
  UtilityFunction utility;
  std::optional<Schema> schema;
  std::string config_json;
  std::vector<store::ExpertRecord> experts;
  std::vector<ParticleRow> particles;  // meta; engine fields are refreshed when persisting
  std::optional<SwarmEngine> engine;
  // (particle, iteration) -> evaluation, for the recent ones only: each particle's latest
  // and those g, g_w, the round's g / g_w and every p_i point at (PruneEvals). The store
  // holds them all; keeping every one made the server's memory grow with every report.
  std::map<std::pair<int, int>, EvalInfo> evals;
  std::map<int, RoundStats> rounds;  // iteration -> stats of open iterations

  bool sync() const { return resolved.spec.mode() == wxp::v1::SYNC; }
  int pool_size() const {
    return engine ? engine->num_particles() : static_cast<int>(particles.size());
  }

  // Engine globals copied into the row, ready to persist.
  void SyncRow() {
    if (!engine) return;
    const SwarmEngineState st = engine->state();
    row.global_best = st.global_best;
    row.global_best_utility = st.global_best_utility;
    row.global_worst = st.global_worst;
    row.global_worst_utility = st.global_worst_utility;
    row.closed_iterations = st.closed_iterations;
    row.last_global_improvement = st.last_global_improvement;
    row.stopped = st.stopped;
  }
  ParticleRow RowOf(int i) const {
    ParticleRow p = particles[i];
    if (engine) p.engine = engine->particle(i);
    return p;
  }

  // The latest iteration of `particle` held in `evals` (-1 if none).
  int LatestEval(int particle) const {
    auto it = evals.lower_bound({particle + 1, std::numeric_limits<int>::min()});
    if (it == evals.begin()) return -1;
    --it;
    return it->first.first == particle ? it->first.second : -1;
  }

  // Drops the evaluations nothing in memory refers to any more. Runs once they outnumber
  // the pool a few times over, so its cost per report stays constant.
  void PruneEvals() {
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
    for (auto it = evals.begin(); it != evals.end();) {
      const auto next = std::next(it);
      const bool latest = next == evals.end() || next->first.first != it->first.first;
      if (!latest && keep.count(it->first) == 0) evals.erase(it);
      it = next;
    }
  }
};

namespace {

EvalInfo InfoOf(const store::EvaluationRecord& e) {
  return {e.blob_id, e.blob_held, e.utility, e.scores, e.failed};
}

}  // namespace

bool Coordinator::UploadAlwaysOrAudited(const Swarm& s, int particle, int iteration) {
  return s.resolved.spec.upload_policy() == wxp::v1::ALWAYS ||
         DrawUniform(s.resolved.params.seed, RngStream::kAudit, iteration, particle) <
             s.resolved.spec.audit_sample_rate();
}

Coordinator::Coordinator(Options options) : options_(std::move(options)) {}
Coordinator::~Coordinator() = default;

int64_t Coordinator::NowMs() const { return absl::ToUnixMillis(options_.clock->Now()); }

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

absl::StatusOr<std::map<std::string, std::unique_ptr<Coordinator::Swarm>>>
Coordinator::LoadLocked(bool at_start) {
  std::map<std::string, std::unique_ptr<Swarm>> swarms;
  store::SwarmStore& st = *options_.store;
  WXP_ASSIGN_OR_RETURN(std::vector<store::SwarmRecord> rows, st.ListSwarms());
  for (store::SwarmRecord& row : rows) {
    wxp::v1::SwarmSpec spec;
    if (!spec.ParseFromString(row.spec)) {
      return absl::DataLossError(absl::StrCat("stored spec of swarm '", row.name, "' is corrupt"));
    }
    WXP_ASSIGN_OR_RETURN(ResolvedSpec resolved, ResolveSwarmSpec(spec, spec.hyperparameters().seed()));
    wxp::v1::UtilityWeights weights;
    if (!weights.ParseFromString(row.utility)) {
      return absl::DataLossError(absl::StrCat("stored utility of '", row.name, "' is corrupt"));
    }
    WXP_ASSIGN_OR_RETURN(UtilityFunction utility, UtilityFromProto(weights));
    auto s = std::unique_ptr<Swarm>(new Swarm{row, resolved, utility, resolved.schema});
    WXP_ASSIGN_OR_RETURN(s->experts, st.ListExperts(row.name));
    WXP_ASSIGN_OR_RETURN(s->particles, st.ListParticles(row.name));
    if (!s->experts.empty()) s->config_json = s->experts[0].config_json;
    WXP_ASSIGN_OR_RETURN(std::vector<store::EvaluationRecord> evals, st.ListEvaluations(row.name));
    for (const auto& e : evals) {
      s->evals[{e.particle_id, e.iteration}] = InfoOf(e);
      if (e.iteration > row.closed_iterations) {
        RoundStats& r = s->rounds[e.iteration];
        ++r.reports;
        r.failed += e.failed;
      }
    }
    if (!s->particles.empty()) {
      SwarmEngineState state;
      for (const ParticleRow& p : s->particles) state.particles.push_back(p.engine);
      state.global_best = row.global_best;
      state.global_best_utility = row.global_best_utility;
      state.global_worst = row.global_worst;
      state.global_worst_utility = row.global_worst_utility;
      state.closed_iterations = row.closed_iterations;
      state.last_global_improvement = row.last_global_improvement;
      state.stopped = row.stopped;
      WXP_ASSIGN_OR_RETURN(SwarmEngine engine, SwarmEngine::Restore(resolved.params, state));
      s->engine = std::move(engine);
    }
    // A crash between storing an uploaded blob and recording it leaves an evaluation that
    // is not marked held although its bytes are here: reconcile. The bytes get the check
    // OnBlobStored would have made: a blob it refused (NaN, another schema) is stored too,
    // and must not become a target after a restart.
    store::SwarmUpdate held;
    held.swarm = row.name;
    for (auto& [key, e] : s->evals) {
      if (e.held || e.failed || !options_.blobs->Has(e.blob_id)) continue;
      absl::StatusOr<int64_t> size = CheckPositionBlob(*options_.blobs, s->schema, e.blob_id);
      if (!size.ok()) continue;
      held.blobs_now_held.push_back(key);
      held.blob_refs.push_back({e.blob_id, *size, 0});
    }
    if (!held.blobs_now_held.empty()) {
      absl::Status marked = st.Apply(held);
      // After a failed write (a full disk) serving goes on without marking them; a later
      // reload or restart retries.
      if (at_start) WXP_RETURN_IF_ERROR(marked);
      if (marked.ok()) {
        for (const auto& key : held.blobs_now_held) s->evals[key].held = true;
      }
    }
    s->PruneEvals();
    swarms[row.name] = std::move(s);
  }
  return swarms;
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
  swarms_ = std::move(swarms);
  last_ticket_ = 0;
  failures_seen_ = st.Failures();
  Log("event=state_reloaded reason=write_failed");
  return absl::OkStatus();
}

void Coordinator::EnqueueLocked(store::SwarmUpdate update) {
  last_ticket_ = options_.store->Enqueue(std::move(update));
}

absl::Status Coordinator::FlushLocked() { return options_.store->WaitDurable(last_ticket_); }

template <typename T>
absl::StatusOr<T> Coordinator::Serve(absl::FunctionRef<absl::StatusOr<T>()> locked) {
  absl::StatusOr<T> out = absl::UnknownError("not served");
  store::SwarmStore::Ticket seen = 0;
  std::vector<std::string> logs;
  {
    absl::MutexLock lock(&mu_);
    WXP_RETURN_IF_ERROR(ReloadIfNeededLocked());
    out = locked();
    seen = last_ticket_;
    logs.swap(pending_logs_);
  }
  // Whatever the answer says, changed or read, may depend on queued updates: it goes out
  // only once they are durable (the commit happens here, without mu_, shared with others).
  WXP_RETURN_IF_ERROR(options_.store->WaitDurable(seen));
  for (const std::string& line : logs) EmitLog(line);
  return out;
}

absl::Status Coordinator::ServeStatus(absl::FunctionRef<absl::Status()> locked) {
  return Serve<bool>([&]() -> absl::StatusOr<bool> {
           WXP_RETURN_IF_ERROR(locked());
           return true;
         })
      .status();
}

absl::StatusOr<Coordinator::Swarm*> Coordinator::Find(const std::string& name) {
  auto it = swarms_.find(name);
  if (it == swarms_.end()) return absl::NotFoundError(absl::StrCat("no swarm named '", name, "'"));
  return it->second.get();
}

// ---------------------------------------------------------------------------------------
// Admin

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
    if (swarms_.count(resolved.spec.name())) {
      return absl::AlreadyExistsError(
          absl::StrCat("a swarm named '", resolved.spec.name(), "' already exists"));
    }
    store::SwarmRecord row;
    row.name = resolved.spec.name();
    row.spec = resolved.spec.SerializeAsString();
    row.state = wxp::v1::PENDING_EXPERTS;
    row.created_ms = NowMs();
    row.utility_version = 1;
    row.utility = UtilityToProto(resolved.utility).SerializeAsString();
    WXP_RETURN_IF_ERROR(options_.store->CreateSwarm(
        row, {row.created_ms, caller.identity, "create swarm", row.name, ""}));
    auto s = std::unique_ptr<Swarm>(new Swarm{row, resolved, resolved.utility, resolved.schema});
    swarms_[row.name] = std::move(s);
    Log(absl::StrFormat("event=swarm_created swarm=%s by=%s mode=%s min_experts=%d seed=%d",
                        row.name, caller.identity, wxp::v1::RoundMode_Name(resolved.spec.mode()),
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

wxp::v1::SwarmStatus Coordinator::StatusOf(const Swarm& s) {
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
  *out.mutable_created_time() = ToTimestamp(s.row.created_ms);
  if (s.row.round_opened_ms > 0) *out.mutable_last_round_time() = ToTimestamp(s.row.round_opened_ms);
  if (s.engine) {
    out.set_step_length(s.engine->StepLength(s.row.closed_iterations + 1));
    *out.mutable_global_best() = Ref(s, s.engine->global_best(), s.engine->global_best_utility());
    *out.mutable_global_worst() =
        Ref(s, s.engine->global_worst(), s.engine->global_worst_utility());
    // Live: reported in the open round or the one before it.
    std::set<std::string> agents;
    int live = 0;
    for (int i = 0; i < s.pool_size(); ++i) {
      const ParticleRecord& p = s.engine->particle(i);
      if (p.utility_iteration >= s.row.closed_iterations) {
        ++live;
        agents.insert(s.particles[i].owner);
      }
    }
    out.set_particles_live(live);
    out.set_particles_stale(s.pool_size() - live);
    out.set_agents_online(static_cast<int>(agents.size()));
  } else {
    // No pool yet: no g / g_w (particle_id -1, as documented), and iteration 1's lambda.
    out.set_step_length(s.resolved.params.step_length);
    *out.mutable_global_best() = Ref(s, PositionRef{}, 0);
    *out.mutable_global_worst() = Ref(s, PositionRef{}, 0);
    std::set<std::string> agents;
    for (const auto& e : s.experts) agents.insert(e.agent);
    out.set_agents_online(static_cast<int>(agents.size()));
  }
  return out;
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::GetSwarmStatus(const std::string& swarm) {
  return Serve<wxp::v1::SwarmStatus>([&]() -> absl::StatusOr<wxp::v1::SwarmStatus> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    return StatusOf(*s);
  });
}

absl::StatusOr<wxp::v1::ListSwarmsResponse> Coordinator::ListSwarms() {
  return Serve<wxp::v1::ListSwarmsResponse>([&]() -> absl::StatusOr<wxp::v1::ListSwarmsResponse> {
    wxp::v1::ListSwarmsResponse out;
    for (const auto& [name, s] : swarms_) *out.add_swarms() = StatusOf(*s);
    return out;
  });
}

absl::StatusOr<wxp::v1::ListParticlesResponse> Coordinator::ListParticles(
    const std::string& swarm) {
  return Serve<wxp::v1::ListParticlesResponse>(
      [&]() -> absl::StatusOr<wxp::v1::ListParticlesResponse> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    wxp::v1::ListParticlesResponse out;
    for (int i = 0; i < s->pool_size(); ++i) {
      const ParticleRow p = s->RowOf(i);
      auto* info = out.add_particles();
      info->set_particle_id(i);
      info->set_owner(p.owner);
      info->set_iteration(p.engine.utility_iteration);
      info->set_utility(p.engine.utility);
      info->set_best_utility(p.engine.best_utility);
      info->set_restarts(p.engine.restarts);
      if (p.last_report_ms > 0) *info->mutable_last_report_time() = ToTimestamp(p.last_report_ms);
    }
    return out;
  });
}

absl::StatusOr<wxp::v1::GetHistoryResponse> Coordinator::GetHistory(const std::string& swarm) {
  {
    absl::MutexLock lock(&mu_);
    WXP_RETURN_IF_ERROR(Find(swarm).status());
  }
  WXP_ASSIGN_OR_RETURN(std::vector<store::HistoryRecord> rows,
                       options_.store->ListHistory(swarm));
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
  return out;
}

absl::StatusOr<wxp::v1::UtilityWeights> Coordinator::GetUtilityWeights(const std::string& swarm) {
  return Serve<wxp::v1::UtilityWeights>([&]() -> absl::StatusOr<wxp::v1::UtilityWeights> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    return UtilityToProto(s->utility);
  });
}

absl::StatusOr<wxp::v1::UtilityWeights> Coordinator::SetUtilityWeights(
    const Caller& caller, const std::string& swarm,
    const std::map<std::string, double>& weights) {
  return Serve<wxp::v1::UtilityWeights>([&]() -> absl::StatusOr<wxp::v1::UtilityWeights> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    if (s->row.state == wxp::v1::FINISHED || s->row.state == wxp::v1::STOPPED) {
      return absl::FailedPreconditionError(
          absl::StrCat("swarm '", swarm, "' is over; its weights are final"));
    }
    WXP_ASSIGN_OR_RETURN(UtilityFunction utility, s->utility.WithWeights(weights));

    // Re-weight every evaluation from its stored components (memory holds only recent ones).
    std::map<std::pair<int, int>, EvalInfo> all;
    {
      WXP_RETURN_IF_ERROR(FlushLocked());
      WXP_ASSIGN_OR_RETURN(std::vector<store::EvaluationRecord> rows,
                           options_.store->ListEvaluations(swarm));
      for (const auto& e : rows) all[{e.particle_id, e.iteration}] = InfoOf(e);
    }
    std::map<std::pair<int, int>, double> rescored;
    for (const auto& [key, e] : all) {
      if (e.failed) continue;
      WXP_ASSIGN_OR_RETURN(rescored[key], utility.Combine(e.scores));
    }
    store::SwarmUpdate u;
    u.swarm = swarm;
    std::optional<SwarmEngine> engine = s->engine;
    if (engine) {
      // Re-choose among held positions; ties keep the earliest (iteration, particle).
      SwarmEngineState st = engine->state();
      st.global_best = st.global_worst = PositionRef{};
      for (auto& p : st.particles) p.personal_best = PositionRef{};
      std::vector<std::pair<std::pair<int, int>, double>> order(rescored.begin(), rescored.end());
      std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
        return std::make_pair(a.first.second, a.first.first) <
               std::make_pair(b.first.second, b.first.first);
      });
      for (const auto& [key, value] : order) {
        const auto& [particle, iteration] = key;
        ParticleRecord& p = st.particles[particle];
        if (p.utility_iteration == iteration) p.utility = value;
        if (!all.at(key).held) continue;
        const PositionRef ref{particle, iteration};
        if (!p.personal_best.valid() || value > p.best_utility) {
          p.personal_best = ref;
          p.best_utility = value;
        }
        if (!st.global_best.valid() || value > st.global_best_utility) {
          st.global_best = ref;
          st.global_best_utility = value;
        }
        if (!st.global_worst.valid() || value < st.global_worst_utility) {
          st.global_worst = ref;
          st.global_worst_utility = value;
        }
      }
      WXP_ASSIGN_OR_RETURN(SwarmEngine next, SwarmEngine::Restore(s->resolved.params, st));
      engine = std::move(next);
      // The new reading of the history: g / g_w / mean of what was known after each round.
      for (int k = 0; k <= s->row.closed_iterations; ++k) {
        double best = 0, worst = 0, sum = 0;
        bool any = false;
        int count = 0;
        for (const auto& [key, value] : order) {
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
    Swarm next_view{s->row, s->resolved, utility};
    next_view.particles = s->particles;
    next_view.engine = engine;
    next_view.SyncRow();
    next_view.row.utility_version = utility.version();
    next_view.row.utility = UtilityToProto(utility).SerializeAsString();
    if (engine) {
      // Targets issued from now on use the re-chosen g / g_w.
      next_view.row.round_best = engine->global_best();
      next_view.row.round_best_utility = engine->global_best_utility();
      next_view.row.round_worst = engine->global_worst();
      next_view.row.round_worst_utility = engine->global_worst_utility();
      for (int i = 0; i < next_view.pool_size(); ++i) u.particles.push_back(next_view.RowOf(i));
    }
    u.swarm_row = next_view.row;
    std::string detail;
    for (const auto& [name, w] : weights) absl::StrAppend(&detail, name, "=", w, " ");
    u.audit.push_back({NowMs(), caller.identity, "set utility weights", swarm, detail});
    EnqueueLocked(std::move(u));
    s->row = next_view.row;
    s->utility = utility;
    s->engine = std::move(engine);
    for (const auto& [key, value] : rescored) {
      if (auto it = s->evals.find(key); it != s->evals.end()) it->second.utility = value;
    }
    // p_i, g and g_w were re-chosen: what they point at must be in memory.
    for (const auto& [key, e] : all) {
      const PositionRef ref{key.first, key.second};
      const bool wanted = s->engine && (s->engine->global_best() == ref ||
                                        s->engine->global_worst() == ref ||
                                        s->engine->particle(key.first).personal_best == ref);
      if (wanted && !s->evals.count(key)) {
        s->evals[key] = e;
        s->evals[key].utility = rescored.count(key) ? rescored.at(key) : e.utility;
      }
    }
    Log(absl::StrFormat("event=utility_weights swarm=%s version=%d by=%s %s", swarm,
                        utility.version(), caller.identity, detail));
    return UtilityToProto(utility);
  });
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::SetState(const Caller& caller,
                                                           const std::string& swarm,
                                                           int32_t state,
                                                           const std::string& action,
                                                           const std::string& reason) {
  return Serve<wxp::v1::SwarmStatus>([&]() -> absl::StatusOr<wxp::v1::SwarmStatus> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    const int32_t current = s->row.state;
    if (current == wxp::v1::FINISHED || current == wxp::v1::STOPPED) {
      return absl::FailedPreconditionError(
          absl::StrCat("swarm '", swarm, "' is ", wxp::v1::SwarmState_Name(
                                                      static_cast<wxp::v1::SwarmState>(current)),
                       "; it cannot be ", action, "d"));
    }
    if (state == wxp::v1::PAUSED && current == wxp::v1::PAUSED) return StatusOf(*s);
    if (state == wxp::v1::RUNNING && current != wxp::v1::PAUSED) {
      return absl::FailedPreconditionError(absl::StrCat("swarm '", swarm, "' is not paused"));
    }
    if (state == wxp::v1::PAUSED && current != wxp::v1::RUNNING) {
      return absl::FailedPreconditionError(absl::StrCat("swarm '", swarm, "' is not running"));
    }
    store::SwarmRecord row = s->row;
    std::optional<SwarmEngine> engine = s->engine;
    row.state = state;
    if (state == wxp::v1::STOPPED) {
      row.termination = "stopped";
      if (engine) engine->Stop();
      row.stopped = true;
    }
    SwarmUpdate u;
    u.swarm = swarm;
    u.audit.push_back({NowMs(), caller.identity, action, swarm, reason});
    Swarm next_globals{row, s->resolved, s->utility};
    next_globals.engine = engine;
    next_globals.SyncRow();
    u.swarm_row = next_globals.row;
    EnqueueLocked(std::move(u));
    s->row = next_globals.row;
    s->engine = std::move(engine);
    Log(absl::StrFormat("event=swarm_%s swarm=%s by=%s reason=%s", action, swarm, caller.identity,
                        reason.empty() ? "-" : reason));
    return StatusOf(*s);
  });
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::Pause(const Caller& caller,
                                                        const std::string& swarm,
                                                        const std::string& reason) {
  return SetState(caller, swarm, wxp::v1::PAUSED, "pause", reason);
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::Resume(const Caller& caller,
                                                         const std::string& swarm,
                                                         const std::string& reason) {
  return SetState(caller, swarm, wxp::v1::RUNNING, "resume", reason);
}

absl::StatusOr<wxp::v1::SwarmStatus> Coordinator::Stop(const Caller& caller,
                                                       const std::string& swarm,
                                                       const std::string& reason) {
  return SetState(caller, swarm, wxp::v1::STOPPED, "stop", reason);
}

absl::StatusOr<Coordinator::BestPosition> Coordinator::Best(const std::string& swarm) {
  return Serve<Coordinator::BestPosition>([&]() -> absl::StatusOr<Coordinator::BestPosition> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    if (!s->engine || !s->engine->global_best().valid()) {
      return absl::FailedPreconditionError(
          absl::StrCat("swarm '", swarm, "' has no evaluated position yet"));
    }
    const PositionRef g = s->engine->global_best();
    const auto it = s->evals.find({g.particle, g.iteration});
    if (it == s->evals.end() || !it->second.held) {
      return absl::UnavailableError(
          absl::StrCat("the global best of '", swarm, "' has not been uploaded yet; retry shortly"));
    }
    return BestPosition{it->second.blob_id, s->engine->global_best_utility(), s->config_json};
  });
}

absl::StatusOr<size_t> Coordinator::EvaluationsInMemory(const std::string& swarm) {
  return Serve<size_t>([&]() -> absl::StatusOr<size_t> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    return s->evals.size();
  });
}

// ---------------------------------------------------------------------------------------
// Agents

absl::StatusOr<wxp::v1::JoinResponse> Coordinator::Join(const Caller& caller,
                                                        const wxp::v1::JoinRequest& request) {
  if (request.expert_blob_ids().empty()) {
    return absl::InvalidArgumentError("join needs at least one expert blob id");
  }
  if (request.capacity() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("capacity must be >= 1, got ", request.capacity()));
  }
  if (request.adapter_config_json().size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError("adapter_config_json is larger than 64 KiB");
  }
  if (!request.adapter_config_json().empty()) {
    absl::Status s = ParseLoraConfig(request.adapter_config_json()).status();
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("adapter_config_json: ", s.message()));
  }
  return Serve<wxp::v1::JoinResponse>([&]() -> absl::StatusOr<wxp::v1::JoinResponse> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(request.swarm()));
    WXP_RETURN_IF_ERROR(CheckExpertBaseModel(s->resolved.spec, request.adapter_config_json()));
    std::set<std::string> mine;
    for (const auto& e : s->experts) {
      if (e.agent == caller.identity) mine.insert(e.blob_id);
    }
    std::vector<std::string> fresh;
    std::set<std::string> seen;
    for (const std::string& id : request.expert_blob_ids()) {
      if (!IsSha256Hex(id)) {
        return absl::InvalidArgumentError(absl::StrCat("'", id, "' is not a SHA-256 blob id"));
      }
      if (!seen.insert(id).second) {
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
        if (sw.particles[i].owner == caller.identity) out.add_assigned_particle_ids(i);
      }
      return out;
    };
    if (fresh.empty()) return respond(*s);  // an identical retry
    if (s->row.state != wxp::v1::PENDING_EXPERTS) {
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
      if (schema) {
        if (absl::Status c = a.schema.CheckSame(*schema); !c.ok()) {
          return absl::InvalidArgumentError(absl::StrCat("expert ", id, ": ", c.message()));
        }
      } else {
        schema = a.schema;
      }
    }
    Swarm next = *s;
    next.schema = schema;
    if (!s->schema) {
      // The first expert fixed the schema: it becomes part of the stored spec.
      *next.resolved.spec.mutable_schema() = SchemaToProto(*schema);
      next.row.spec = next.resolved.spec.SerializeAsString();
    }
    SwarmUpdate u;
    u.swarm = request.swarm();
    const int64_t now = NowMs();
    for (const std::string& id : fresh) {
      store::ExpertRecord e{static_cast<int32_t>(next.experts.size()), caller.identity, id, now,
                            request.capacity(), request.adapter_config_json()};
      next.experts.push_back(e);
      u.experts.push_back(e);
      u.blob_refs.push_back({id, 0, 0});
    }
    if (next.config_json.empty()) next.config_json = next.experts[0].config_json;
    u.audit.push_back({now, caller.identity, "join", request.swarm(),
                       absl::StrCat(fresh.size(), " expert(s), capacity ", request.capacity())});
    if (static_cast<int>(next.experts.size()) >= next.resolved.min_experts) {
      WXP_RETURN_IF_ERROR(BuildPool(u, next));
    }
    u.swarm_row = next.row;
    EnqueueLocked(std::move(u));
    *s = std::move(next);
    Log(absl::StrFormat("event=expert_joined swarm=%s agent=%s experts=%d/%d", request.swarm(),
                        caller.identity, s->experts.size(), s->resolved.min_experts));
    if (s->row.state == wxp::v1::RUNNING) {
      Log(absl::StrFormat("event=pool_built swarm=%s particles=%d", request.swarm(),
                          s->pool_size()));
    }
    return respond(*s);
  });
}

absl::Status Coordinator::BuildPool(SwarmUpdate& u, Swarm& next) {
  const int n = static_cast<int>(next.experts.size());
  const int pool = next.resolved.params.ResolvedPoolSize(n);
  // Capacity: each agent hosts its own experts first; children go round-robin to agents
  // with room. Without room for every particle the pool waits for more capacity.
  std::vector<std::string> agents;
  std::map<std::string, int> room;
  for (const auto& e : next.experts) {
    if (!room.count(e.agent)) agents.push_back(e.agent);
    room[e.agent] = std::max(room[e.agent],
                             std::min(e.capacity, options_.max_particles_per_agent));
  }
  std::vector<std::string> owner(pool);
  for (int i = 0; i < n; ++i) {
    owner[i] = next.experts[i].agent;
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
      Log(absl::StrFormat("event=pool_waiting swarm=%s reason=capacity particles=%d",
                          next.row.name, pool));
      return absl::OkStatus();  // not enough room yet: stay PENDING_EXPERTS
    }
    owner[i] = agents[cursor % agents.size()];
    --room[owner[i]];
    ++cursor;
  }

  // Positions: experts as uploaded, children by crossover (server-side, SPEC 5.2).
  WXP_ASSIGN_OR_RETURN(std::vector<Crossover> plan,
                       PlanPool(n, pool, next.resolved.params.seed));
  std::vector<std::vector<float>> x;
  std::vector<std::string> ids;
  Adapter templ;
  for (const auto& e : next.experts) {
    WXP_ASSIGN_OR_RETURN(std::string bytes, options_.blobs->ReadAll(e.blob_id));
    WXP_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::FromBytes(std::move(bytes)));
    Adapter a = AdapterFromSafetensors(file);
    x.push_back(std::move(a.values));
    ids.push_back(e.blob_id);
    if (templ.schema.tensors().empty()) templ = std::move(a);
  }
  const int64_t dim = templ.schema.total_params();
  for (const Crossover& c : plan) {
    std::vector<float> child(dim);
    Interpolate(c.w, x[c.parent_a].data(), x[c.parent_b].data(), child.data(), dim);
    templ.values = child;
    WXP_ASSIGN_OR_RETURN(std::string bytes, SerializeAdapter(templ));
    WXP_ASSIGN_OR_RETURN(std::string id, options_.blobs->Put(bytes));
    u.blob_refs.push_back({id, static_cast<int64_t>(bytes.size()), 0});
    x.push_back(std::move(child));
    ids.push_back(id);
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
  next.row.state = wxp::v1::RUNNING;
  next.row.open_round = 0;
  next.row.round_opened_ms = NowMs();
  next.SyncRow();
  for (int i = 0; i < pool; ++i) u.particles.push_back(next.RowOf(i));
  u.audit.push_back({NowMs(), "wxp-server", "pool built", next.row.name,
                     absl::StrCat(pool, " particles from ", n, " experts")});
  return absl::OkStatus();
}

absl::StatusOr<wxp::v1::GetAssignmentResponse> Coordinator::GetAssignment(
    const Caller& caller, const std::string& swarm) {
  return Serve<wxp::v1::GetAssignmentResponse>(
      [&]() -> absl::StatusOr<wxp::v1::GetAssignmentResponse> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(swarm));
    wxp::v1::GetAssignmentResponse out;
    out.set_swarm_state(static_cast<wxp::v1::SwarmState>(s->row.state));
    *out.mutable_hyperparameters() = s->resolved.spec.hyperparameters();
    out.set_mode(s->resolved.spec.mode());
    out.set_upload_policy(s->resolved.spec.upload_policy());
    out.set_transport_dtype(s->resolved.spec.transport_dtype());
    if (s->row.state == wxp::v1::PENDING_EXPERTS) {
      out.set_status(wxp::v1::GetAssignmentResponse::WAIT);
      out.set_retry_after_ms(kRetryAfterMs);
      return out;
    }
    const bool done = s->row.state == wxp::v1::FINISHED || s->row.state == wxp::v1::STOPPED;
    out.set_status(done ? wxp::v1::GetAssignmentResponse::DONE
                        : wxp::v1::GetAssignmentResponse::ASSIGNED);
    for (int i = 0; i < s->pool_size(); ++i) {
      const ParticleRow& p = s->particles[i];
      if (p.owner != caller.identity) continue;
      auto* a = out.add_particles();
      a->set_particle_id(i);
      a->set_initial_position_blob_id(p.initial_blob_id);
      switch (s->resolved.params.initial_velocity) {
        case InitialVelocityMode::kRandomPeer:
          if (p.velocity_partner_blob_id.empty()) {
            a->mutable_initial_velocity()->set_zero(true);
          } else {
            a->mutable_initial_velocity()->set_partner_blob_id(p.velocity_partner_blob_id);
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
  return Serve<wxp::v1::GetTargetsResponse>([&]() -> absl::StatusOr<wxp::v1::GetTargetsResponse> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(request.swarm()));
    wxp::v1::GetTargetsResponse out;
    out.set_swarm_state(static_cast<wxp::v1::SwarmState>(s->row.state));
    out.set_utility_weight_version(s->row.utility_version);
    auto wait = [&]() {
      out.set_status(wxp::v1::GetTargetsResponse::WAIT);
      out.set_retry_after_ms(kRetryAfterMs);
      return out;
    };
    if (s->row.state == wxp::v1::PENDING_EXPERTS) return wait();
    const int i = request.particle_id();
    if (i < 0 || i >= s->pool_size()) {
      return absl::NotFoundError(absl::StrCat("swarm '", request.swarm(), "' has no particle ", i));
    }
    if (s->particles[i].owner != caller.identity) return NotOwner(caller, i, s->particles[i].owner);
    if (s->row.state == wxp::v1::FINISHED || s->row.state == wxp::v1::STOPPED) {
      out.set_status(wxp::v1::GetTargetsResponse::DONE);
      return out;
    }
    if (request.iteration() < 1) {
      return absl::InvalidArgumentError("targets are for iterations >= 1 (0 is the initial pool)");
    }
    const ParticleRecord& rec = s->engine->particle(i);
    if (request.iteration() < rec.started_iteration) {
      return absl::FailedPreconditionError(
          absl::StrCat("iteration ", request.iteration(), " is stale: particle ", i,
                       " is at iteration ", rec.started_iteration));
    }
    if (s->row.state == wxp::v1::PAUSED || !s->engine->initial_complete()) return wait();
    // Sync: iteration k waits for round k-1 to close, and a straggler that missed rounds is
    // moved to the open one. Async: no barrier, but a particle reports an iteration before it
    // starts the next.
    int k = request.iteration();
    if (s->sync()) {
      if (k > s->row.open_round) return wait();
      k = std::max(k, s->row.open_round);
    } else if (k > rec.started_iteration) {
      if (!s->evals.count({i, rec.started_iteration})) {
        return absl::FailedPreconditionError(
            absl::StrCat("particle ", i, " must report iteration ", rec.started_iteration,
                         " before it starts iteration ", k));
      }
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
    const double g_utility = s->sync() ? s->row.round_best_utility : s->engine->global_best_utility();
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
    return out;
  });
}

absl::StatusOr<wxp::v1::ReportResponse> Coordinator::Report(
    const Caller& caller, const wxp::v1::ReportRequest& request) {
  // Shape checks first: they need no state.
  if (!IsSha256Hex(request.position_blob_id())) {
    return absl::InvalidArgumentError("position_blob_id must be a SHA-256 hex digest");
  }
  if (request.evaluation_failed() && !request.scores().empty()) {
    return absl::InvalidArgumentError("a failed evaluation carries no scores");
  }
  if (!std::isfinite(request.evaluation_seconds()) || request.evaluation_seconds() < 0) {
    return absl::InvalidArgumentError("evaluation_seconds must be finite and >= 0");
  }
  return Serve<wxp::v1::ReportResponse>([&]() -> absl::StatusOr<wxp::v1::ReportResponse> {
    WXP_ASSIGN_OR_RETURN(Swarm * s, Find(request.swarm()));
    const int i = request.particle_id();
    if (!s->engine) {
      return absl::FailedPreconditionError(
          absl::StrCat("swarm '", request.swarm(), "' has no pool yet"));
    }
    if (i < 0 || i >= s->pool_size()) {
      return absl::NotFoundError(absl::StrCat("swarm '", request.swarm(), "' has no particle ", i));
    }
    if (s->particles[i].owner != caller.identity) return NotOwner(caller, i, s->particles[i].owner);
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
      if (e.blob_id == request.position_blob_id() && e.scores == scores &&
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
        out.set_upload_requested(!e.held && !e.failed &&
                                 (UploadAlwaysOrAudited(*s, i, k) ||
                                  s->engine->global_best() == here ||
                                  s->engine->global_worst() == here));
        out.set_global_best_utility(s->engine->global_best_utility());
        return out;
      }
      return absl::AlreadyExistsError(absl::StrCat(
          "particle ", i, " already reported iteration ", k, " with a different payload"));
    }
    if (s->row.state == wxp::v1::FINISHED || s->row.state == wxp::v1::STOPPED) {
      return absl::FailedPreconditionError(absl::StrCat("swarm '", request.swarm(), "' is over"));
    }
    const ParticleRecord& rec = s->engine->particle(i);
    if (k == 0) {
      if (rec.evaluated) {
        return absl::FailedPreconditionError("the initial position was already reported");
      }
      if (request.position_blob_id() != s->particles[i].initial_blob_id) {
        return absl::InvalidArgumentError(
            "the initial report must name the particle's initial position blob");
      }
    } else if (k != rec.started_iteration || rec.recorded_started) {
      return absl::FailedPreconditionError(
          absl::StrCat("iteration ", k, " is ", k < rec.started_iteration ? "stale" : "not open",
                       " for particle ", i, " (its targets are for iteration ",
                       rec.started_iteration, ")"));
    }
    if (s->sync() && k != s->row.open_round) {
      return absl::FailedPreconditionError(absl::StrCat(
          "iteration ", k, " is stale: round ", s->row.open_round, " is open"));
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
      WXP_ASSIGN_OR_RETURN(outcome, k == 0 ? engine.RecordInitial(i, utility)
                                           : engine.Record(i, k, utility));
    }
    const bool initial_blob = k == 0;  // the server made or received it already
    bool upload = false;
    if (!request.evaluation_failed() && !initial_blob) {
      upload = UploadAlwaysOrAudited(*s, i, k) || outcome.new_global_best ||
               outcome.new_global_worst;
    }
    const bool held = initial_blob || options_.blobs->Has(request.position_blob_id());

    Swarm& live = *s;
    const int64_t now = NowMs();
    store::EvaluationRecord e;
    e.particle_id = i;
    e.iteration = k;
    e.blob_id = request.position_blob_id();
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
    RoundStats& r = next_view.rounds[k];
    ++r.reports;
    r.failed += e.failed;
    particle.last_report_ms = now;
    if (!e.failed) particle.current_blob_id = e.blob_id;

    SwarmUpdate u;
    u.swarm = request.swarm();
    u.evaluation = e;
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
    live.rounds = std::move(next_view.rounds);
    live.PruneEvals();
    if (outcome.new_global_best) {
      Log(absl::StrFormat("event=new_global_best swarm=%s particle=%d iteration=%d utility=%.6g",
                          request.swarm(), i, k, utility));
    }
    wxp::v1::ReportResponse out;
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
    if (s.row.state == wxp::v1::FINISHED || s.row.state == wxp::v1::STOPPED) return absl::OkStatus();
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
      s.row.state = wxp::v1::FINISHED;
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
      WXP_ASSIGN_OR_RETURN(const int64_t size, CheckPositionBlob(*options_.blobs, s->schema, blob_id));
      u.blob_refs.push_back({blob_id, size, 0});
      EnqueueLocked(std::move(u));
      for (const auto& key : keys) {
        if (auto it = s->evals.find(key); it != s->evals.end()) it->second.held = true;
      }
    }
    return absl::OkStatus();
  });
}

absl::Status Coordinator::Tick() {
  return ServeStatus([&]() -> absl::Status {
    for (auto& [name, s] : swarms_) {
      if (s->row.state != wxp::v1::RUNNING || !s->engine) continue;
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
    }
    return absl::OkStatus();
  });
}

}  // namespace wxp::server
