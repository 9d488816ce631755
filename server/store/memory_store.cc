#include "server/store/memory_store.h"

#include "absl/strings/str_cat.h"

namespace wxp::store {
namespace {

absl::Status UnknownSwarm(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("no swarm named '", name, "'"));
}

}  // namespace

absl::Status MemoryStore::CreateSwarm(const SwarmRecord& swarm, const AuditRecord& audit) {
  absl::MutexLock lock(&mu_);
  if (state_.swarms.count(swarm.name)) {
    return absl::AlreadyExistsError(absl::StrCat("a swarm named '", swarm.name, "' exists"));
  }
  state_.swarms[swarm.name].row = swarm;
  state_.audit.push_back(audit);
  return absl::OkStatus();
}

absl::Status MemoryStore::ApplyTo(State& state, const SwarmUpdate& u) {
  auto it = state.swarms.find(u.swarm);
  if (it == state.swarms.end()) return UnknownSwarm(u.swarm);
  Swarm& s = it->second;
  if (u.swarm_row) {
    if (u.swarm_row->name != u.swarm) {
      return absl::InvalidArgumentError("an update cannot rename a swarm");
    }
    s.row = *u.swarm_row;
  }
  for (const ParticleRow& p : u.particles) s.particles[p.particle_id] = p;
  for (const ExpertRecord& e : u.experts) {
    if (!s.experts.emplace(e.ordinal, e).second) {
      return absl::AlreadyExistsError(absl::StrCat("expert ", e.ordinal, " already recorded"));
    }
  }
  if (u.evaluation) {
    const auto key = std::make_pair(u.evaluation->iteration, u.evaluation->particle_id);
    if (!s.evaluations.emplace(key, *u.evaluation).second) {
      return absl::AlreadyExistsError(absl::StrCat("particle ", u.evaluation->particle_id,
                                                   " already reported iteration ",
                                                   u.evaluation->iteration));
    }
  }
  for (const auto& [particle, iteration] : u.blobs_now_held) {
    auto e = s.evaluations.find({iteration, particle});
    if (e == s.evaluations.end()) {
      return absl::NotFoundError(
          absl::StrCat("no evaluation of particle ", particle, " at iteration ", iteration));
    }
    e->second.blob_held = true;
  }
  for (const HistoryRecord& h : u.history) s.history[{h.utility_version, h.iteration}] = h;
  for (const AuditRecord& a : u.audit) state.audit.push_back(a);
  for (const BlobRecord& b : u.blob_refs) {
    BlobRecord& r = state.blobs[b.id];
    r.id = b.id;
    if (r.refcount == 0) r.size = b.size;
    ++r.refcount;
  }
  for (const std::string& id : u.blob_unrefs) {
    auto b = state.blobs.find(id);
    if (b != state.blobs.end() && b->second.refcount > 0) --b->second.refcount;
  }
  for (const AuditClaim& a : u.audits) {
    const auto key = std::make_pair(a.iteration, a.particle_id);
    if (s.evaluations.count(key) == 0) {
      return absl::NotFoundError(absl::StrCat("no evaluation of particle ", a.particle_id,
                                              " at iteration ", a.iteration, " to audit"));
    }
    s.audits[key] = a;
  }
  for (const StandingChange& c : u.standings) {
    auto [it, inserted] = state.clients.try_emplace(c.client);
    ClientRecord& r = it->second;
    if (inserted) r = {{c.client, Role::kAgent}, c.now_ms, c.now_ms, false};
    if (c.disputed) {
      ++r.audits_disputed;
      ++r.strikes;
      if (r.strikes >= c.quarantine_after) r.quarantined = true;
    } else {
      ++r.audits_confirmed;
    }
  }
  return absl::OkStatus();
}

MemoryStore::MemoryStore()
    : pipeline_(
          [this](const std::vector<const SwarmUpdate*>& batch, std::vector<absl::Status>& refused) {
            return CommitBatch(batch, refused);
          }) {}

void MemoryStore::FailCommitsWith(absl::Status s) {
  absl::MutexLock lock(&mu_);
  commit_failure_ = std::move(s);
}

void MemoryStore::RequireFences(std::function<int64_t(const std::string& swarm)> lease_token) {
  absl::MutexLock lock(&mu_);
  lease_token_ = std::move(lease_token);
}

absl::Status MemoryStore::CommitBatch(const std::vector<const SwarmUpdate*>& batch,
                                      std::vector<absl::Status>& refused) {
  absl::MutexLock lock(&mu_);
  if (!commit_failure_.ok()) return commit_failure_;
  // Each update goes to a copy swapped in on success: all or nothing, like a savepoint.
  for (size_t i = 0; i < batch.size(); ++i) {
    if (lease_token_ &&
        (batch[i]->fence == 0 || batch[i]->fence != lease_token_(batch[i]->swarm))) {
      refused[i] = LeaseLostError(batch[i]->swarm);
      continue;
    }
    State next = state_;
    refused[i] = ApplyTo(next, *batch[i]);
    if (refused[i].ok()) state_ = std::move(next);
  }
  return absl::OkStatus();
}

absl::StatusOr<const MemoryStore::Swarm*> MemoryStore::Find(const std::string& name) const {
  auto it = state_.swarms.find(name);
  if (it == state_.swarms.end()) return UnknownSwarm(name);
  return &it->second;
}

absl::StatusOr<SwarmRecord> MemoryStore::GetSwarm(const std::string& name) {
  absl::ReaderMutexLock lock(&mu_);
  absl::StatusOr<const Swarm*> s = Find(name);
  if (!s.ok()) return s.status();
  return (*s)->row;
}

absl::StatusOr<std::vector<SwarmRecord>> MemoryStore::ListSwarms() {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<SwarmRecord> out;
  for (const auto& [name, s] : state_.swarms) out.push_back(s.row);
  return out;
}

absl::StatusOr<std::vector<ParticleRow>> MemoryStore::ListParticles(const std::string& swarm) {
  absl::ReaderMutexLock lock(&mu_);
  absl::StatusOr<const Swarm*> s = Find(swarm);
  if (!s.ok()) return s.status();
  std::vector<ParticleRow> out;
  for (const auto& [id, p] : (*s)->particles) out.push_back(p);
  return out;
}

absl::StatusOr<std::vector<ExpertRecord>> MemoryStore::ListExperts(const std::string& swarm) {
  absl::ReaderMutexLock lock(&mu_);
  absl::StatusOr<const Swarm*> s = Find(swarm);
  if (!s.ok()) return s.status();
  std::vector<ExpertRecord> out;
  for (const auto& [ordinal, e] : (*s)->experts) out.push_back(e);
  return out;
}

absl::StatusOr<EvaluationRecord> MemoryStore::GetEvaluation(const std::string& swarm,
                                                            int32_t particle_id,
                                                            int32_t iteration) {
  absl::ReaderMutexLock lock(&mu_);
  absl::StatusOr<const Swarm*> s = Find(swarm);
  if (!s.ok()) return s.status();
  auto it = (*s)->evaluations.find({iteration, particle_id});
  if (it == (*s)->evaluations.end()) {
    return absl::NotFoundError(
        absl::StrCat("no evaluation of particle ", particle_id, " at iteration ", iteration));
  }
  return it->second;
}

absl::StatusOr<std::vector<EvaluationRecord>> MemoryStore::ListEvaluations(
    const std::string& swarm) {
  absl::ReaderMutexLock lock(&mu_);
  absl::StatusOr<const Swarm*> s = Find(swarm);
  if (!s.ok()) return s.status();
  std::vector<EvaluationRecord> out;
  for (const auto& [key, e] : (*s)->evaluations) out.push_back(e);
  return out;
}

absl::StatusOr<std::vector<EvaluationRecord>> MemoryStore::ListEvaluationsOfBlob(
    const std::string& swarm, const std::string& blob_id) {
  absl::ReaderMutexLock lock(&mu_);
  absl::StatusOr<const Swarm*> s = Find(swarm);
  if (!s.ok()) return s.status();
  std::vector<EvaluationRecord> out;
  for (const auto& [key, e] : (*s)->evaluations) {
    if (e.blob_id == blob_id) out.push_back(e);
  }
  return out;
}

absl::StatusOr<std::vector<HistoryRecord>> MemoryStore::ListHistory(const std::string& swarm) {
  absl::ReaderMutexLock lock(&mu_);
  absl::StatusOr<const Swarm*> s = Find(swarm);
  if (!s.ok()) return s.status();
  std::vector<HistoryRecord> out;
  for (const auto& [key, h] : (*s)->history) out.push_back(h);
  return out;
}

absl::StatusOr<std::vector<AuditRecord>> MemoryStore::ListAudit(const std::string& swarm) {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<AuditRecord> out;
  for (const AuditRecord& a : state_.audit) {
    if (a.swarm == swarm) out.push_back(a);
  }
  return out;
}

absl::StatusOr<std::vector<AuditClaim>> MemoryStore::ListAuditClaims(const std::string& swarm) {
  absl::ReaderMutexLock lock(&mu_);
  absl::StatusOr<const Swarm*> s = Find(swarm);
  if (!s.ok()) return s.status();
  std::vector<AuditClaim> out;
  for (const auto& [key, a] : (*s)->audits) out.push_back(a);
  return out;
}

absl::Status MemoryStore::LiftQuarantine(const std::string& identity, const AuditRecord& audit) {
  absl::MutexLock lock(&mu_);
  auto it = state_.clients.find(identity);
  if (it == state_.clients.end()) {
    return absl::NotFoundError(absl::StrCat("no client '", identity, "'"));
  }
  it->second.quarantined = false;
  it->second.strikes = 0;
  state_.audit.push_back(audit);
  return absl::OkStatus();
}

absl::Status MemoryStore::TouchClient(const Identity& client, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = state_.clients.try_emplace(client.name);
  ClientRecord& c = it->second;
  if (inserted) c.first_seen_ms = now_ms;
  c.client = client;
  c.last_seen_ms = now_ms;
  return absl::OkStatus();
}

absl::StatusOr<ClientRecord> MemoryStore::GetClient(const std::string& identity) {
  absl::ReaderMutexLock lock(&mu_);
  auto it = state_.clients.find(identity);
  if (it == state_.clients.end()) {
    return absl::NotFoundError(absl::StrCat("no client '", identity, "'"));
  }
  return it->second;
}

absl::StatusOr<std::vector<ClientRecord>> MemoryStore::ListClients() {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ClientRecord> out;
  for (const auto& [id, c] : state_.clients) out.push_back(c);
  return out;
}

absl::Status MemoryStore::SetRevoked(const std::string& identity, bool revoked,
                                     const AuditRecord& audit) {
  absl::MutexLock lock(&mu_);
  auto it = state_.clients.find(identity);
  if (it == state_.clients.end()) {
    return absl::NotFoundError(absl::StrCat("no client '", identity, "'"));
  }
  it->second.revoked = revoked;
  state_.audit.push_back(audit);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BlobRecord>> MemoryStore::ListBlobs() {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<BlobRecord> out;
  for (const auto& [id, b] : state_.blobs) out.push_back(b);
  return out;
}

}  // namespace wxp::store
