#include "server/store/internal/postgres_schema.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "server/store/internal/scores_json.h"

namespace wxp::store::postgres_internal {

using db::pg::Params;
using db::pg::Result;

// Schema version 1: the SQLite store's version 2 in PostgreSQL's types. Version 2: leases.
const std::vector<db::pg::Migration>& Migrations() {
  static const auto* migrations = new std::vector<db::pg::Migration>{{1, R"sql(
CREATE TABLE swarms (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  spec BYTEA NOT NULL,
  state BIGINT NOT NULL,
  termination TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  utility_version BIGINT NOT NULL,
  utility BYTEA NOT NULL,
  g_particle BIGINT NOT NULL,
  g_iteration BIGINT NOT NULL,
  g_utility DOUBLE PRECISION NOT NULL,
  gw_particle BIGINT NOT NULL,
  gw_iteration BIGINT NOT NULL,
  gw_utility DOUBLE PRECISION NOT NULL,
  closed_iterations BIGINT NOT NULL,
  last_global_improvement BIGINT NOT NULL,
  stopped BOOLEAN NOT NULL,
  open_round BIGINT NOT NULL,
  round_opened_ms BIGINT NOT NULL,
  round_g_particle BIGINT NOT NULL,
  round_g_iteration BIGINT NOT NULL,
  round_g_utility DOUBLE PRECISION NOT NULL,
  round_gw_particle BIGINT NOT NULL,
  round_gw_iteration BIGINT NOT NULL,
  round_gw_utility DOUBLE PRECISION NOT NULL
);
-- Every utility weight version a swarm has had (dynamic utility, SPEC 4.2).
CREATE TABLE utility_versions (
  swarm_id BIGINT NOT NULL REFERENCES swarms(id),
  version BIGINT NOT NULL,
  utility BYTEA NOT NULL,
  PRIMARY KEY (swarm_id, version)
);
CREATE TABLE clients (
  identity TEXT PRIMARY KEY NOT NULL,
  role TEXT NOT NULL,
  first_seen_ms BIGINT NOT NULL,
  last_seen_ms BIGINT NOT NULL,
  revoked BOOLEAN NOT NULL
);
CREATE TABLE experts (
  swarm_id BIGINT NOT NULL REFERENCES swarms(id),
  ordinal BIGINT NOT NULL,
  agent TEXT NOT NULL,
  blob_id TEXT NOT NULL,
  joined_ms BIGINT NOT NULL,
  capacity BIGINT NOT NULL,
  config_json TEXT NOT NULL,
  PRIMARY KEY (swarm_id, ordinal)
);
CREATE TABLE particles (
  swarm_id BIGINT NOT NULL REFERENCES swarms(id),
  particle_id BIGINT NOT NULL,
  owner TEXT NOT NULL,
  initial_blob_id TEXT NOT NULL,
  velocity_partner_blob_id TEXT NOT NULL,
  current_blob_id TEXT NOT NULL,
  last_report_ms BIGINT NOT NULL,
  evaluated BOOLEAN NOT NULL,
  utility DOUBLE PRECISION NOT NULL,
  utility_iteration BIGINT NOT NULL,
  best_utility DOUBLE PRECISION NOT NULL,
  pbest_particle BIGINT NOT NULL,
  pbest_iteration BIGINT NOT NULL,
  stale_iterations BIGINT NOT NULL,
  stale_through BIGINT NOT NULL,
  cooldown BIGINT NOT NULL,
  restarts BIGINT NOT NULL,
  started_iteration BIGINT NOT NULL,
  restart_at_started BOOLEAN NOT NULL,
  recorded_started BOOLEAN NOT NULL,
  PRIMARY KEY (swarm_id, particle_id)
);
CREATE TABLE evaluations (
  swarm_id BIGINT NOT NULL REFERENCES swarms(id),
  iteration BIGINT NOT NULL,
  particle_id BIGINT NOT NULL,
  blob_id TEXT NOT NULL,
  blob_held BOOLEAN NOT NULL,
  scores TEXT NOT NULL,
  utility DOUBLE PRECISION NOT NULL,
  utility_version BIGINT NOT NULL,
  failed BOOLEAN NOT NULL,
  failure_reason TEXT NOT NULL,
  evaluation_seconds DOUBLE PRECISION NOT NULL,
  time_ms BIGINT NOT NULL,
  PRIMARY KEY (swarm_id, iteration, particle_id)
);
CREATE INDEX evaluations_by_blob ON evaluations (blob_id);
-- One row per closed round and utility version: the g / g_w / mean history.
CREATE TABLE history (
  swarm_id BIGINT NOT NULL REFERENCES swarms(id),
  utility_version BIGINT NOT NULL,
  iteration BIGINT NOT NULL,
  g_utility DOUBLE PRECISION NOT NULL,
  gw_utility DOUBLE PRECISION NOT NULL,
  mean_utility DOUBLE PRECISION NOT NULL,
  step_length DOUBLE PRECISION NOT NULL,
  restarts BIGINT NOT NULL,
  reports BIGINT NOT NULL,
  closed_ms BIGINT NOT NULL,
  PRIMARY KEY (swarm_id, utility_version, iteration)
);
CREATE TABLE blobs (
  id TEXT PRIMARY KEY NOT NULL,
  size BIGINT NOT NULL,
  refcount BIGINT NOT NULL CHECK (refcount >= 0)
);
CREATE TABLE audit_log (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time_ms BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  swarm TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX audit_log_by_swarm ON audit_log (swarm, id);
)sql"},
                                                                     {2, R"sql(
-- Several replicas (SPEC 6.1, server/store/lease.h): which replica leads each swarm, until
-- when, under which fencing token (it grows with every change of holder; every write of
-- the swarm checks it in its own transaction).
CREATE TABLE swarm_leases (
  swarm TEXT PRIMARY KEY NOT NULL REFERENCES swarms(name),
  replica_id TEXT NOT NULL,
  incarnation BIGINT NOT NULL,
  address TEXT NOT NULL,
  token BIGINT NOT NULL,
  expires_ms BIGINT NOT NULL
);
-- The replicas alive (each renews its row), so that swarms spread over them.
CREATE TABLE replicas (
  replica_id TEXT PRIMARY KEY NOT NULL,
  address TEXT NOT NULL,
  expires_ms BIGINT NOT NULL
);
)sql"},
                                                                     {3, R"sql(
-- Audits (SPEC 12): each audited claim, and each client's standing.
CREATE TABLE audits (
  swarm_id BIGINT NOT NULL REFERENCES swarms(id),
  iteration BIGINT NOT NULL,
  particle_id BIGINT NOT NULL,
  reporter TEXT NOT NULL,
  candidate BOOLEAN NOT NULL,
  state BIGINT NOT NULL,
  audited_scores TEXT NOT NULL,
  auditor TEXT NOT NULL,
  decided_ms BIGINT NOT NULL,
  PRIMARY KEY (swarm_id, iteration, particle_id),
  FOREIGN KEY (swarm_id, iteration, particle_id)
    REFERENCES evaluations (swarm_id, iteration, particle_id)
);
ALTER TABLE clients ADD COLUMN audits_confirmed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN audits_disputed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN strikes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN quarantined BOOLEAN NOT NULL DEFAULT false;
)sql"}};
  return *migrations;
}

std::string Placeholders(int first, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) absl::StrAppend(&out, i ? ", $" : "$", first + i);
  return out;
}

std::string Assignments(const std::string& columns, int first) {
  std::vector<std::string> parts;
  for (absl::string_view c : absl::StrSplit(columns, ", ")) {
    parts.push_back(absl::StrCat(c, " = $", first++));
  }
  return absl::StrJoin(parts, ", ");
}

void AddSwarm(Params& p, const SwarmRecord& s) {
  p.Text(s.name)
      .Bytes(s.spec)
      .Int(static_cast<int64_t>(s.state))
      .Text(s.termination)
      .Int(s.created_ms)
      .Int(s.utility_version)
      .Bytes(s.utility)
      .Int(s.global_best.particle)
      .Int(s.global_best.iteration)
      .Double(s.global_best_utility)
      .Int(s.global_worst.particle)
      .Int(s.global_worst.iteration)
      .Double(s.global_worst_utility)
      .Int(s.closed_iterations)
      .Int(s.last_global_improvement)
      .Bool(s.stopped)
      .Int(s.open_round)
      .Int(s.round_opened_ms)
      .Int(s.round_best.particle)
      .Int(s.round_best.iteration)
      .Double(s.round_best_utility)
      .Int(s.round_worst.particle)
      .Int(s.round_worst.iteration)
      .Double(s.round_worst_utility);
}

void AddParticle(Params& p, const ParticleRow& row) {
  const ParticleRecord& e = row.engine;
  p.Int(row.particle_id)
      .Text(row.owner)
      .Text(row.initial_blob_id)
      .Text(row.velocity_partner_blob_id)
      .Text(row.current_blob_id)
      .Int(row.last_report_ms)
      .Bool(e.evaluated)
      .Double(e.utility)
      .Int(e.utility_iteration)
      .Double(e.best_utility)
      .Int(e.personal_best.particle)
      .Int(e.personal_best.iteration)
      .Int(e.stale_iterations)
      .Int(e.stale_through)
      .Int(e.cooldown)
      .Int(e.restarts)
      .Int(e.started_iteration)
      .Bool(e.restart_at_started)
      .Bool(e.recorded_started);
}

void AddEvaluation(Params& p, const EvaluationRecord& e) {
  p.Int(e.particle_id)
      .Int(e.iteration)
      .Text(e.blob_id)
      .Bool(e.blob_held)
      .Text(internal::ScoresToJson(e.scores))
      .Double(e.utility)
      .Int(e.utility_version)
      .Bool(e.failed)
      .Text(e.failure_reason)
      .Double(e.evaluation_seconds)
      .Int(e.time_ms);
}

void AddHistory(Params& p, const HistoryRecord& h) {
  p.Int(h.iteration)
      .Int(h.utility_version)
      .Double(h.global_best_utility)
      .Double(h.global_worst_utility)
      .Double(h.mean_utility)
      .Double(h.step_length)
      .Int(h.restarts)
      .Int(h.reports)
      .Int(h.closed_ms);
}

SwarmRecord ReadSwarm(const Result& r, int i) {
  auto int32 = [&](int col) { return static_cast<int32_t>(r.Int(i, col)); };
  SwarmRecord s;
  s.name = r.Text(i, 0);
  s.spec = r.Bytes(i, 1);
  s.state = static_cast<SwarmState>(r.Int(i, 2));
  s.termination = r.Text(i, 3);
  s.created_ms = r.Int(i, 4);
  s.utility_version = int32(5);
  s.utility = r.Bytes(i, 6);
  s.global_best = {int32(7), int32(8)};
  s.global_best_utility = r.Double(i, 9);
  s.global_worst = {int32(10), int32(11)};
  s.global_worst_utility = r.Double(i, 12);
  s.closed_iterations = int32(13);
  s.last_global_improvement = int32(14);
  s.stopped = r.Bool(i, 15);
  s.open_round = int32(16);
  s.round_opened_ms = r.Int(i, 17);
  s.round_best = {int32(18), int32(19)};
  s.round_best_utility = r.Double(i, 20);
  s.round_worst = {int32(21), int32(22)};
  s.round_worst_utility = r.Double(i, 23);
  return s;
}

ParticleRow ReadParticle(const Result& r, int i) {
  auto int32 = [&](int col) { return static_cast<int32_t>(r.Int(i, col)); };
  ParticleRow p;
  p.particle_id = int32(0);
  p.owner = r.Text(i, 1);
  p.initial_blob_id = r.Text(i, 2);
  p.velocity_partner_blob_id = r.Text(i, 3);
  p.current_blob_id = r.Text(i, 4);
  p.last_report_ms = r.Int(i, 5);
  ParticleRecord& e = p.engine;
  e.evaluated = r.Bool(i, 6);
  e.utility = r.Double(i, 7);
  e.utility_iteration = int32(8);
  e.best_utility = r.Double(i, 9);
  e.personal_best = {int32(10), int32(11)};
  e.stale_iterations = int32(12);
  e.stale_through = int32(13);
  e.cooldown = int32(14);
  e.restarts = int32(15);
  e.started_iteration = int32(16);
  e.restart_at_started = r.Bool(i, 17);
  e.recorded_started = r.Bool(i, 18);
  return p;
}

absl::StatusOr<EvaluationRecord> ReadEvaluation(const Result& r, int i) {
  EvaluationRecord e;
  e.particle_id = static_cast<int32_t>(r.Int(i, 0));
  e.iteration = static_cast<int32_t>(r.Int(i, 1));
  e.blob_id = r.Text(i, 2);
  e.blob_held = r.Bool(i, 3);
  WXP_ASSIGN_OR_RETURN(e.scores, internal::ScoresFromJson(r.Text(i, 4)));
  e.utility = r.Double(i, 5);
  e.utility_version = static_cast<int32_t>(r.Int(i, 6));
  e.failed = r.Bool(i, 7);
  e.failure_reason = r.Text(i, 8);
  e.evaluation_seconds = r.Double(i, 9);
  e.time_ms = r.Int(i, 10);
  return e;
}

HistoryRecord ReadHistory(const Result& r, int i) {
  HistoryRecord h;
  h.iteration = static_cast<int32_t>(r.Int(i, 0));
  h.utility_version = static_cast<int32_t>(r.Int(i, 1));
  h.global_best_utility = r.Double(i, 2);
  h.global_worst_utility = r.Double(i, 3);
  h.mean_utility = r.Double(i, 4);
  h.step_length = r.Double(i, 5);
  h.restarts = static_cast<int32_t>(r.Int(i, 6));
  h.reports = static_cast<int32_t>(r.Int(i, 7));
  h.closed_ms = r.Int(i, 8);
  return h;
}

// The role column is text (RoleName); one that does not parse is refused, not guessed at.
absl::StatusOr<ClientRecord> ReadClient(const Result& r, int i) {
  ClientRecord c{{r.Text(i, 0)}, r.Int(i, 2), r.Int(i, 3), r.Bool(i, 4)};
  c.audits_confirmed = static_cast<int32_t>(r.Int(i, 5));
  c.audits_disputed = static_cast<int32_t>(r.Int(i, 6));
  c.strikes = static_cast<int32_t>(r.Int(i, 7));
  c.quarantined = r.Bool(i, 8);
  absl::StatusOr<Role> role = ParseRole(r.Text(i, 1));
  if (!role.ok()) {
    return absl::DataLossError(absl::StrCat("stored client '", c.client.name,
                                            "' has no valid role: ", role.status().message()));
  }
  c.client.role = *role;
  return c;
}

absl::StatusOr<AuditClaim> ReadAuditClaim(const Result& r, int i) {
  AuditClaim a;
  a.particle_id = static_cast<int32_t>(r.Int(i, 0));
  a.iteration = static_cast<int32_t>(r.Int(i, 1));
  a.reporter = r.Text(i, 2);
  a.candidate = r.Bool(i, 3);
  const int64_t state = r.Int(i, 4);
  if (state < 1 || state > 3) {
    return absl::DataLossError(absl::StrCat("stored audit of particle ", a.particle_id,
                                            " iteration ", a.iteration, " has state ", state));
  }
  a.state = static_cast<AuditState>(state);
  WXP_ASSIGN_OR_RETURN(a.audited_scores, internal::ScoresFromJson(r.Text(i, 5)));
  a.auditor = r.Text(i, 6);
  a.decided_ms = r.Int(i, 7);
  return a;
}

}  // namespace wxp::store::postgres_internal
