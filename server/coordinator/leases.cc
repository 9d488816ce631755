#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/leader_redirect.h"
#include "common/status_macros.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/internal/swarm_state.h"

// Several replicas on one store (SPEC 6.1): which swarms this replica leads.
//
// The spreading rule. Every MaintainLeases, a replica counts the replicas alive (those
// whose announcement, renewed each time, has not run out) and the swarms in the store; its
// fair share is ceil(swarms / replicas alive). It takes free or expired leases (in name
// order) only while it holds fewer than its share, and when it holds more than its share
// while others are alive, it gives one lease back per round (the most recently named), so
// a replica that joins gets work without anyone losing more than one swarm at a time. A
// replica alone takes every swarm; when one dies, its swarms' leases expire and the
// survivors, whose share grew, take them.

namespace wxp::server {

absl::Status Coordinator::MaintainLeases() {
  if (options_.leases == nullptr) return absl::OkStatus();
  store::SwarmLeases& leases = *options_.leases;
  const int64_t ttl = absl::ToInt64Milliseconds(options_.lease_duration);
  const int64_t now = NowMs();
  WXP_ASSIGN_OR_RETURN(const int alive, leases.Heartbeat(now, ttl));
  WXP_ASSIGN_OR_RETURN(std::vector<store::SwarmRecord> rows, options_.store->ListSwarms());
  WXP_ASSIGN_OR_RETURN(auto all, leases.List());
  std::map<std::string, int64_t> held;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, lease] : leased_) held[name] = lease.token;
  }
  // Renewals, without mu_: requests go on meanwhile.
  std::map<std::string, int64_t> renewed;
  std::vector<std::string> lost;
  for (const auto& [name, token] : held) {
    absl::StatusOr<store::LeaseHolder> h = leases.TryAcquire(name, now, ttl);
    if (!h.ok()) continue;  // unreachable: the lease runs out on its own if this lasts
    if (h->mine && h->token == token) {
      renewed[name] = token;
    } else {
      lost.push_back(name);
      if (!h->mine) all[name] = *h;
    }
  }
  const int share = static_cast<int>((rows.size() + std::max(alive, 1) - 1) / std::max(alive, 1));
  int mine = static_cast<int>(renewed.size());
  std::map<std::string, store::LeaseHolder> acquired;
  for (const store::SwarmRecord& row : rows) {
    if (mine >= share) break;
    if (held.count(row.name)) continue;
    auto it = all.find(row.name);
    if (it != all.end() && !it->second.mine && it->second.expires_ms > now) continue;
    absl::StatusOr<store::LeaseHolder> h = leases.TryAcquire(row.name, now, ttl);
    if (!h.ok()) continue;
    if (h->mine) {
      acquired[row.name] = *h;
      ++mine;
    }
    all[row.name] = *h;
  }
  std::string release;
  int64_t release_token = 0;
  if (alive > 1 && mine > share && !renewed.empty()) {
    release = renewed.rbegin()->first;
    release_token = renewed.rbegin()->second;
  }
  std::vector<std::string> logs;
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& name : lost) DropLocked(name, "lease_lost");
    for (const auto& [name, token] : renewed) {
      auto l = leased_.find(name);
      if (l != leased_.end() && l->second.token == token) l->second.expires_ms = now + ttl;
    }
    for (const auto& [name, h] : acquired) {
      leased_[name] = {h.token, now + ttl};
      absl::StatusOr<store::SwarmRecord> row = options_.store->GetSwarm(name);
      absl::StatusOr<std::unique_ptr<Swarm>> s =
          row.ok() ? LoadSwarmLocked(*std::move(row), /*at_start=*/false)
                   : absl::StatusOr<std::unique_ptr<Swarm>>(row.status());
      if (!s.ok()) {
        // Not served half-loaded: given back, another replica (or a later round) tries.
        leased_.erase(name);
        leases.Release(name, h.token).IgnoreError();
        Log(absl::StrFormat("event=lease_load_failed swarm=%s error=\"%s\"", name,
                            s.status().message()));
        continue;
      }
      swarms_[name] = *std::move(s);
      Log(absl::StrFormat("event=lease_acquired swarm=%s replica=%s token=%d", name,
                          leases.replica_id(), h.token));
    }
    if (!release.empty() && leased_.count(release)) DropLocked(release, "rebalanced");
    others_.clear();
    for (const auto& [name, h] : all) {
      if (!h.mine && h.expires_ms > now) others_[name] = h;
    }
    logs.swap(pending_logs_);
  }
  if (!release.empty()) leases.Release(release, release_token).IgnoreError();
  for (const std::string& line : logs) EmitLog(line);
  RecordUnrecordedUploads();
  return absl::OkStatus();
}

void Coordinator::RecordUnrecordedUploads() {
  store::SwarmStore::Ticket seen = 0;
  std::vector<std::string> logs;
  {
    absl::MutexLock lock(&mu_);
    // After a failed write nothing can be queued on top of memory: reload first (which
    // reconciles again as it loads).
    if (!ReloadIfNeededLocked().ok()) return;
    for (auto& [name, s] : swarms_) {
      if (!Find(name).ok()) continue;  // the lease ran out: nothing from this memory
      std::set<std::pair<int, int>> keys;
      if (s->reconcile_due) {
        for (const auto& [key, e] : s->evals) keys.insert(key);
      } else {
        // Cheap enough for every round: the positions every target waits for, as sync
        // rounds (the round's) and async moves (the engine's) use them.
        std::vector<PositionRef> refs = {s->row.round_best, s->row.round_worst};
        if (s->engine) {
          refs.push_back(s->engine->global_best());
          refs.push_back(s->engine->global_worst());
        }
        for (const PositionRef& r : refs) {
          if (r.valid()) keys.insert({r.particle, r.iteration});
        }
      }
      store::SwarmUpdate u =
          UnrecordedUploadsLocked(*s, std::vector<std::pair<int, int>>(keys.begin(), keys.end()));
      s->reconcile_due = false;
      if (u.blobs_now_held.empty()) continue;
      for (const auto& key : u.blobs_now_held) s->evals[key].held = true;
      Log(absl::StrFormat("event=uploads_recorded swarm=%s evaluations=%d", name,
                          u.blobs_now_held.size()));
      // Fenced like every write: a lost lease records nothing. If it fails, the next
      // request or round reloads, and the load reconciles (or marks the swarm due) again.
      EnqueueLocked(std::move(u));
    }
    seen = last_ticket_;
    logs.swap(pending_logs_);
  }
  if (absl::Status durable = options_.store->WaitDurable(seen); !durable.ok()) {
    OnWriteFailed(durable).IgnoreError();
    return;
  }
  for (const std::string& line : logs) EmitLog(line);
}

void Coordinator::DropLocked(const std::string& swarm, const std::string& reason) {
  // What is queued goes first: with the lease lost it is refused (fenced), given back it
  // commits before the next leader can load the swarm.
  FlushLocked().IgnoreError();
  const bool had = swarms_.erase(swarm) > 0;
  leased_.erase(swarm);
  if (had) Log(absl::StrFormat("event=lease_dropped swarm=%s reason=%s", swarm, reason));
}

absl::Status Coordinator::NotLedLocked(const std::string& swarm) {
  if (auto it = others_.find(swarm); it != others_.end() && it->second.expires_ms > NowMs()) {
    return LeaderRedirectError(swarm, it->second.address, it->second.replica_id);
  }
  absl::StatusOr<store::SwarmRecord> row = options_.store->GetSwarm(swarm);
  if (absl::IsNotFound(row.status())) return row.status();
  return absl::UnavailableError(absl::StrCat("no replica leads swarm '", swarm,
                                             "' at the moment (a failover is under way); retry"));
}

absl::Status Coordinator::OnWriteFailed(const absl::Status& s) {
  std::optional<std::string> swarm = store::LeaseLostSwarm(s);
  if (!swarm) return s;
  std::vector<std::string> logs;
  {
    absl::MutexLock lock(&mu_);
    DropLocked(*swarm, "write_fenced");
    logs.swap(pending_logs_);
  }
  for (const std::string& line : logs) EmitLog(line);
  return absl::UnavailableError(absl::StrCat("this replica lost the lease of swarm '", *swarm,
                                             "' and recorded nothing; retry"));
}

absl::Status Coordinator::CheckLeads(const std::string& swarm) {
  if (options_.leases == nullptr || swarm.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  absl::Status s = Find(swarm).status();
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

void Coordinator::ReleaseLeases() {
  if (options_.leases == nullptr) return;
  std::map<std::string, HeldLease> given;
  std::vector<std::string> logs;
  {
    absl::MutexLock lock(&mu_);
    given = leased_;
    for (const auto& [name, lease] : given) DropLocked(name, "shutdown");
    logs.swap(pending_logs_);
  }
  for (const auto& [name, lease] : given) {
    options_.leases->Release(name, lease.token).IgnoreError();
  }
  for (const std::string& line : logs) EmitLog(line);
}

std::vector<std::string> Coordinator::LedSwarms() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [name, s] : swarms_) out.push_back(name);
  return out;
}

}  // namespace wxp::server
