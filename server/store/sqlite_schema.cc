#include "server/store/internal/sqlite_schema.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/internal/scores_json.h"

namespace wxp::store::sqlite_internal {
namespace {

using db::Statement;
using internal::ScoresFromJson;

}  // namespace

// Schema version 1 (SPEC 6).
const std::vector<db::Migration>& Migrations() {
  static const auto* migrations = new std::vector<db::Migration>{
      {1, R"sql(
CREATE TABLE swarms (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  spec BLOB NOT NULL,
  state INTEGER NOT NULL,
  termination TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  utility_version INTEGER NOT NULL,
  utility BLOB NOT NULL,
  g_particle INTEGER NOT NULL,
  g_iteration INTEGER NOT NULL,
  g_utility REAL NOT NULL,
  gw_particle INTEGER NOT NULL,
  gw_iteration INTEGER NOT NULL,
  gw_utility REAL NOT NULL,
  closed_iterations INTEGER NOT NULL,
  last_global_improvement INTEGER NOT NULL,
  stopped INTEGER NOT NULL,
  open_round INTEGER NOT NULL,
  round_opened_ms INTEGER NOT NULL,
  round_g_particle INTEGER NOT NULL,
  round_g_iteration INTEGER NOT NULL,
  round_g_utility REAL NOT NULL,
  round_gw_particle INTEGER NOT NULL,
  round_gw_iteration INTEGER NOT NULL,
  round_gw_utility REAL NOT NULL
);
-- Every utility weight version a swarm has had (dynamic utility, SPEC 4.2).
CREATE TABLE utility_versions (
  swarm_id INTEGER NOT NULL REFERENCES swarms(id),
  version INTEGER NOT NULL,
  utility BLOB NOT NULL,
  PRIMARY KEY (swarm_id, version)
);
CREATE TABLE clients (
  identity TEXT PRIMARY KEY NOT NULL,
  role TEXT NOT NULL,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  revoked INTEGER NOT NULL
);
CREATE TABLE experts (
  swarm_id INTEGER NOT NULL REFERENCES swarms(id),
  ordinal INTEGER NOT NULL,
  agent TEXT NOT NULL,
  blob_id TEXT NOT NULL,
  joined_ms INTEGER NOT NULL,
  capacity INTEGER NOT NULL,
  config_json TEXT NOT NULL,
  PRIMARY KEY (swarm_id, ordinal)
);
CREATE TABLE particles (
  swarm_id INTEGER NOT NULL REFERENCES swarms(id),
  particle_id INTEGER NOT NULL,
  owner TEXT NOT NULL,
  initial_blob_id TEXT NOT NULL,
  velocity_partner_blob_id TEXT NOT NULL,
  current_blob_id TEXT NOT NULL,
  last_report_ms INTEGER NOT NULL,
  evaluated INTEGER NOT NULL,
  utility REAL NOT NULL,
  utility_iteration INTEGER NOT NULL,
  best_utility REAL NOT NULL,
  pbest_particle INTEGER NOT NULL,
  pbest_iteration INTEGER NOT NULL,
  stale_iterations INTEGER NOT NULL,
  stale_through INTEGER NOT NULL,
  cooldown INTEGER NOT NULL,
  restarts INTEGER NOT NULL,
  started_iteration INTEGER NOT NULL,
  restart_at_started INTEGER NOT NULL,
  recorded_started INTEGER NOT NULL,
  PRIMARY KEY (swarm_id, particle_id)
);
CREATE TABLE evaluations (
  swarm_id INTEGER NOT NULL REFERENCES swarms(id),
  iteration INTEGER NOT NULL,
  particle_id INTEGER NOT NULL,
  blob_id TEXT NOT NULL,
  blob_held INTEGER NOT NULL,
  scores TEXT NOT NULL,
  utility REAL NOT NULL,
  utility_version INTEGER NOT NULL,
  failed INTEGER NOT NULL,
  failure_reason TEXT NOT NULL,
  evaluation_seconds REAL NOT NULL,
  time_ms INTEGER NOT NULL,
  PRIMARY KEY (swarm_id, iteration, particle_id)
);
-- One row per closed round and utility version: the g / g_w / mean history.
CREATE TABLE history (
  swarm_id INTEGER NOT NULL REFERENCES swarms(id),
  utility_version INTEGER NOT NULL,
  iteration INTEGER NOT NULL,
  g_utility REAL NOT NULL,
  gw_utility REAL NOT NULL,
  mean_utility REAL NOT NULL,
  step_length REAL NOT NULL,
  restarts INTEGER NOT NULL,
  reports INTEGER NOT NULL,
  closed_ms INTEGER NOT NULL,
  PRIMARY KEY (swarm_id, utility_version, iteration)
);
CREATE TABLE blobs (
  id TEXT PRIMARY KEY NOT NULL,
  size INTEGER NOT NULL,
  refcount INTEGER NOT NULL CHECK (refcount >= 0)
);
CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  swarm TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX audit_log_by_swarm ON audit_log (swarm, id);
)sql"},
      // Uploads find the evaluations naming their blob without scanning a swarm's history
      // (the coordinator keeps only recent evaluations in memory). Older binaries can still
      // open the database: an index changes no row.
      {2, R"sql(
CREATE INDEX evaluations_by_blob ON evaluations (blob_id);
)sql"},
      // Audits (SPEC 12): each audited claim, and each client's standing.
      {3, R"sql(
CREATE TABLE audits (
  swarm_id INTEGER NOT NULL REFERENCES swarms(id),
  iteration INTEGER NOT NULL,
  particle_id INTEGER NOT NULL,
  reporter TEXT NOT NULL,
  candidate INTEGER NOT NULL,
  state INTEGER NOT NULL,
  audited_scores TEXT NOT NULL,
  auditor TEXT NOT NULL,
  decided_ms INTEGER NOT NULL,
  PRIMARY KEY (swarm_id, iteration, particle_id),
  FOREIGN KEY (swarm_id, iteration, particle_id)
    REFERENCES evaluations (swarm_id, iteration, particle_id)
);
ALTER TABLE clients ADD COLUMN audits_confirmed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN audits_disputed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN strikes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0;
)sql"}};
  return *migrations;
}

SwarmRecord ReadSwarm(const Statement& q) {
  SwarmRecord s;
  s.name = q.ColumnText(0);
  s.spec = q.ColumnBlob(1);
  s.state = static_cast<SwarmState>(q.ColumnInt(2));
  s.termination = q.ColumnText(3);
  s.created_ms = q.ColumnInt(4);
  s.utility_version = static_cast<int32_t>(q.ColumnInt(5));
  s.utility = q.ColumnBlob(6);
  s.global_best = {static_cast<int>(q.ColumnInt(7)), static_cast<int>(q.ColumnInt(8))};
  s.global_best_utility = q.ColumnDouble(9);
  s.global_worst = {static_cast<int>(q.ColumnInt(10)), static_cast<int>(q.ColumnInt(11))};
  s.global_worst_utility = q.ColumnDouble(12);
  s.closed_iterations = static_cast<int32_t>(q.ColumnInt(13));
  s.last_global_improvement = static_cast<int32_t>(q.ColumnInt(14));
  s.stopped = q.ColumnInt(15) != 0;
  s.open_round = static_cast<int32_t>(q.ColumnInt(16));
  s.round_opened_ms = q.ColumnInt(17);
  s.round_best = {static_cast<int>(q.ColumnInt(18)), static_cast<int>(q.ColumnInt(19))};
  s.round_best_utility = q.ColumnDouble(20);
  s.round_worst = {static_cast<int>(q.ColumnInt(21)), static_cast<int>(q.ColumnInt(22))};
  s.round_worst_utility = q.ColumnDouble(23);
  return s;
}

void BindSwarm(Statement& q, const SwarmRecord& s) {
  q.Bind(1, absl::string_view(s.name))
      .BindBlob(2, s.spec)
      .Bind(3, static_cast<int64_t>(s.state))
      .Bind(4, absl::string_view(s.termination))
      .Bind(5, s.created_ms)
      .Bind(6, int64_t{s.utility_version})
      .BindBlob(7, s.utility)
      .Bind(8, int64_t{s.global_best.particle})
      .Bind(9, int64_t{s.global_best.iteration})
      .Bind(10, s.global_best_utility)
      .Bind(11, int64_t{s.global_worst.particle})
      .Bind(12, int64_t{s.global_worst.iteration})
      .Bind(13, s.global_worst_utility)
      .Bind(14, int64_t{s.closed_iterations})
      .Bind(15, int64_t{s.last_global_improvement})
      .Bind(16, int64_t{s.stopped})
      .Bind(17, int64_t{s.open_round})
      .Bind(18, s.round_opened_ms)
      .Bind(19, int64_t{s.round_best.particle})
      .Bind(20, int64_t{s.round_best.iteration})
      .Bind(21, s.round_best_utility)
      .Bind(22, int64_t{s.round_worst.particle})
      .Bind(23, int64_t{s.round_worst.iteration})
      .Bind(24, s.round_worst_utility);
}

ParticleRow ReadParticle(const Statement& q) {
  ParticleRow p;
  p.particle_id = static_cast<int32_t>(q.ColumnInt(0));
  p.owner = q.ColumnText(1);
  p.initial_blob_id = q.ColumnText(2);
  p.velocity_partner_blob_id = q.ColumnText(3);
  p.current_blob_id = q.ColumnText(4);
  p.last_report_ms = q.ColumnInt(5);
  ParticleRecord& e = p.engine;
  e.evaluated = q.ColumnInt(6) != 0;
  e.utility = q.ColumnDouble(7);
  e.utility_iteration = static_cast<int>(q.ColumnInt(8));
  e.best_utility = q.ColumnDouble(9);
  e.personal_best = {static_cast<int>(q.ColumnInt(10)), static_cast<int>(q.ColumnInt(11))};
  e.stale_iterations = static_cast<int>(q.ColumnInt(12));
  e.stale_through = static_cast<int>(q.ColumnInt(13));
  e.cooldown = static_cast<int>(q.ColumnInt(14));
  e.restarts = static_cast<int>(q.ColumnInt(15));
  e.started_iteration = static_cast<int>(q.ColumnInt(16));
  e.restart_at_started = q.ColumnInt(17) != 0;
  e.recorded_started = q.ColumnInt(18) != 0;
  return p;
}

absl::StatusOr<EvaluationRecord> ReadEvaluation(const Statement& q) {
  EvaluationRecord e;
  e.particle_id = static_cast<int32_t>(q.ColumnInt(0));
  e.iteration = static_cast<int32_t>(q.ColumnInt(1));
  e.blob_id = q.ColumnText(2);
  e.blob_held = q.ColumnInt(3) != 0;
  WXP_ASSIGN_OR_RETURN(e.scores, ScoresFromJson(q.ColumnText(4)));
  e.utility = q.ColumnDouble(5);
  e.utility_version = static_cast<int32_t>(q.ColumnInt(6));
  e.failed = q.ColumnInt(7) != 0;
  e.failure_reason = q.ColumnText(8);
  e.evaluation_seconds = q.ColumnDouble(9);
  e.time_ms = q.ColumnInt(10);
  return e;
}

HistoryRecord ReadHistory(const Statement& q) {
  HistoryRecord h;
  h.iteration = static_cast<int32_t>(q.ColumnInt(0));
  h.utility_version = static_cast<int32_t>(q.ColumnInt(1));
  h.global_best_utility = q.ColumnDouble(2);
  h.global_worst_utility = q.ColumnDouble(3);
  h.mean_utility = q.ColumnDouble(4);
  h.step_length = q.ColumnDouble(5);
  h.restarts = static_cast<int32_t>(q.ColumnInt(6));
  h.reports = static_cast<int32_t>(q.ColumnInt(7));
  h.closed_ms = q.ColumnInt(8);
  return h;
}

// The role column is text (RoleName); one that does not parse is refused, not guessed at.
absl::StatusOr<ClientRecord> ReadClient(const Statement& q) {
  ClientRecord c{{q.ColumnText(0)}, q.ColumnInt(2), q.ColumnInt(3), q.ColumnInt(4) != 0};
  c.audits_confirmed = static_cast<int32_t>(q.ColumnInt(5));
  c.audits_disputed = static_cast<int32_t>(q.ColumnInt(6));
  c.strikes = static_cast<int32_t>(q.ColumnInt(7));
  c.quarantined = q.ColumnInt(8) != 0;
  absl::StatusOr<Role> role = ParseRole(q.ColumnText(1));
  if (!role.ok()) {
    return absl::DataLossError(absl::StrCat("stored client '", c.client.name,
                                            "' has no valid role: ", role.status().message()));
  }
  c.client.role = *role;
  return c;
}

absl::StatusOr<AuditClaim> ReadAuditClaim(const Statement& q) {
  AuditClaim a;
  a.particle_id = static_cast<int32_t>(q.ColumnInt(0));
  a.iteration = static_cast<int32_t>(q.ColumnInt(1));
  a.reporter = q.ColumnText(2);
  a.candidate = q.ColumnInt(3) != 0;
  const int64_t state = q.ColumnInt(4);
  if (state < 1 || state > 3) {
    return absl::DataLossError(absl::StrCat("stored audit of particle ", a.particle_id,
                                            " iteration ", a.iteration, " has state ", state));
  }
  a.state = static_cast<AuditState>(state);
  WXP_ASSIGN_OR_RETURN(a.audited_scores, ScoresFromJson(q.ColumnText(5)));
  a.auditor = q.ColumnText(6);
  a.decided_ms = q.ColumnInt(7);
  return a;
}

}  // namespace wxp::store::sqlite_internal
