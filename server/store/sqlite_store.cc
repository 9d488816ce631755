#include "server/store/sqlite_store.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace wxp::store {
namespace {

using db::Statement;

// Schema version 1 (SPEC 6). Later versions append migrations; never edit a shipped one.
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
)sql"}};
  return *migrations;
}

constexpr int kCompatibleVersion = 1;

constexpr char kSwarmColumns[] =
    "name, spec, state, termination, created_ms, utility_version, utility, g_particle, "
    "g_iteration, g_utility, gw_particle, gw_iteration, gw_utility, closed_iterations, "
    "last_global_improvement, stopped, open_round, round_opened_ms, round_g_particle, "
    "round_g_iteration, round_g_utility, round_gw_particle, round_gw_iteration, "
    "round_gw_utility";

constexpr char kParticleColumns[] =
    "particle_id, owner, initial_blob_id, velocity_partner_blob_id, current_blob_id, "
    "last_report_ms, evaluated, utility, utility_iteration, best_utility, pbest_particle, "
    "pbest_iteration, stale_iterations, stale_through, cooldown, restarts, started_iteration, "
    "restart_at_started, recorded_started";

constexpr char kEvaluationColumns[] =
    "particle_id, iteration, blob_id, blob_held, scores, utility, utility_version, failed, "
    "failure_reason, evaluation_seconds, time_ms";

constexpr char kHistoryColumns[] =
    "iteration, utility_version, g_utility, gw_utility, mean_utility, step_length, restarts, "
    "reports, closed_ms";

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

std::string ScoresToJson(const std::map<std::string, double>& scores) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : scores) j[k] = v;
  return j.dump();
}

absl::StatusOr<std::map<std::string, double>> ScoresFromJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::DataLossError("stored scores are not a JSON object");
  std::map<std::string, double> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number()) return absl::DataLossError("stored score is not a number");
    out[it.key()] = it.value().get<double>();
  }
  return out;
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
  absl::StatusOr<Role> role = ParseRole(q.ColumnText(1));
  if (!role.ok()) {
    return absl::DataLossError(absl::StrCat("stored client '", c.client.name,
                                            "' has no valid role: ", role.status().message()));
  }
  c.client.role = *role;
  return c;
}

// Prepares (cached) `sql`, lets `bind` set its parameters, and maps every row with `read`.
template <typename T, typename Bind, typename Read>
absl::StatusOr<std::vector<T>> Query(db::Database* db, const std::string& sql, Bind bind,
                                     Read read) {
  WXP_ASSIGN_OR_RETURN(Statement q, db->Cached(sql));
  bind(q);
  std::vector<T> out;
  for (;;) {
    WXP_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return out;
    if constexpr (std::is_same_v<decltype(read(q)), absl::StatusOr<T>>) {
      WXP_ASSIGN_OR_RETURN(T item, read(q));
      out.push_back(std::move(item));
    } else {
      out.push_back(read(q));
    }
  }
}

auto BindNothing = [](Statement&) {};

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const Options& options) {
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<db::Database> db,
                       db::Database::Open({options.path, true, options.synchronous}));
  WXP_RETURN_IF_ERROR(db->Migrate(Migrations(), kCompatibleVersion));
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(db)));
}

absl::StatusOr<int64_t> SqliteStore::SwarmId(const std::string& name) {
  WXP_ASSIGN_OR_RETURN(Statement q, db_->Cached("SELECT id FROM swarms WHERE name = ?"));
  q.Bind(1, absl::string_view(name));
  WXP_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no swarm named '", name, "'"));
  return q.ColumnInt(0);
}

absl::Status SqliteStore::InsertAudit(const AuditRecord& a) {
  WXP_ASSIGN_OR_RETURN(Statement q,
                       db_->Cached("INSERT INTO audit_log (time_ms, actor, action, swarm, detail) "
                                   "VALUES (?, ?, ?, ?, ?)"));
  return q.Bind(1, a.time_ms)
      .Bind(2, absl::string_view(a.actor))
      .Bind(3, absl::string_view(a.action))
      .Bind(4, absl::string_view(a.swarm))
      .Bind(5, absl::string_view(a.detail))
      .Run();
}

absl::Status SqliteStore::WriteSwarmRow(int64_t id, const SwarmRecord& s) {
  WXP_ASSIGN_OR_RETURN(Statement q,
                       db_->Cached(absl::StrCat(
                           "UPDATE swarms SET (", kSwarmColumns,
                           ") = (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                           "?, ?, ?) WHERE id = ?")));
  BindSwarm(q, s);
  q.Bind(25, id);
  WXP_RETURN_IF_ERROR(q.Run());
  WXP_ASSIGN_OR_RETURN(Statement v,
                       db_->Cached("INSERT OR IGNORE INTO utility_versions (swarm_id, version, "
                                   "utility) VALUES (?, ?, ?)"));
  return v.Bind(1, id).Bind(2, int64_t{s.utility_version}).BindBlob(3, s.utility).Run();
}

absl::Status SqliteStore::CreateSwarm(const SwarmRecord& swarm, const AuditRecord& audit) {
  absl::MutexLock lock(&mu_);
  db::Transaction txn(db_.get());
  WXP_RETURN_IF_ERROR(txn.status());
  if (SwarmId(swarm.name).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("a swarm named '", swarm.name, "' exists"));
  }
  WXP_ASSIGN_OR_RETURN(
      Statement q,
      db_->Cached(absl::StrCat("INSERT INTO swarms (", kSwarmColumns,
                               ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                               "?, ?, ?, ?, ?)")));
  BindSwarm(q, swarm);
  WXP_RETURN_IF_ERROR(q.Run());
  WXP_RETURN_IF_ERROR(WriteSwarmRow(db_->LastInsertRowId(), swarm));
  WXP_RETURN_IF_ERROR(InsertAudit(audit));
  return txn.Commit();
}

absl::Status SqliteStore::ApplyLocked(const SwarmUpdate& u) {
  WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(u.swarm));
  if (u.swarm_row) {
    if (u.swarm_row->name != u.swarm) {
      return absl::InvalidArgumentError("an update cannot rename a swarm");
    }
    WXP_RETURN_IF_ERROR(WriteSwarmRow(id, *u.swarm_row));
  }
  for (const ParticleRow& p : u.particles) {
    WXP_ASSIGN_OR_RETURN(
        Statement q,
        db_->Cached(absl::StrCat("INSERT OR REPLACE INTO particles (swarm_id, ", kParticleColumns,
                                 ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                                 "?, ?, ?)")));
    const ParticleRecord& e = p.engine;
    WXP_RETURN_IF_ERROR(q.Bind(1, id)
                            .Bind(2, int64_t{p.particle_id})
                            .Bind(3, absl::string_view(p.owner))
                            .Bind(4, absl::string_view(p.initial_blob_id))
                            .Bind(5, absl::string_view(p.velocity_partner_blob_id))
                            .Bind(6, absl::string_view(p.current_blob_id))
                            .Bind(7, p.last_report_ms)
                            .Bind(8, int64_t{e.evaluated})
                            .Bind(9, e.utility)
                            .Bind(10, int64_t{e.utility_iteration})
                            .Bind(11, e.best_utility)
                            .Bind(12, int64_t{e.personal_best.particle})
                            .Bind(13, int64_t{e.personal_best.iteration})
                            .Bind(14, int64_t{e.stale_iterations})
                            .Bind(15, int64_t{e.stale_through})
                            .Bind(16, int64_t{e.cooldown})
                            .Bind(17, int64_t{e.restarts})
                            .Bind(18, int64_t{e.started_iteration})
                            .Bind(19, int64_t{e.restart_at_started})
                            .Bind(20, int64_t{e.recorded_started})
                            .Run());
  }
  for (const ExpertRecord& e : u.experts) {
    WXP_ASSIGN_OR_RETURN(Statement q,
                         db_->Cached("INSERT INTO experts (swarm_id, ordinal, agent, blob_id, "
                                     "joined_ms, capacity, config_json) VALUES (?, ?, ?, ?, ?, "
                                     "?, ?)"));
    absl::Status s = q.Bind(1, id)
                         .Bind(2, int64_t{e.ordinal})
                         .Bind(3, absl::string_view(e.agent))
                         .Bind(4, absl::string_view(e.blob_id))
                         .Bind(5, e.joined_ms)
                         .Bind(6, int64_t{e.capacity})
                         .Bind(7, absl::string_view(e.config_json))
                         .Run();
    if (s.code() == absl::StatusCode::kFailedPrecondition) {
      return absl::AlreadyExistsError(absl::StrCat("expert ", e.ordinal, " already recorded"));
    }
    WXP_RETURN_IF_ERROR(s);
  }
  if (u.evaluation) {
    const EvaluationRecord& e = *u.evaluation;
    WXP_ASSIGN_OR_RETURN(Statement q, db_->Cached(absl::StrCat(
                                          "INSERT INTO evaluations (swarm_id, ", kEvaluationColumns,
                                          ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")));
    absl::Status s = q.Bind(1, id)
                         .Bind(2, int64_t{e.particle_id})
                         .Bind(3, int64_t{e.iteration})
                         .Bind(4, absl::string_view(e.blob_id))
                         .Bind(5, int64_t{e.blob_held})
                         .Bind(6, absl::string_view(ScoresToJson(e.scores)))
                         .Bind(7, e.utility)
                         .Bind(8, int64_t{e.utility_version})
                         .Bind(9, int64_t{e.failed})
                         .Bind(10, absl::string_view(e.failure_reason))
                         .Bind(11, e.evaluation_seconds)
                         .Bind(12, e.time_ms)
                         .Run();
    if (s.code() == absl::StatusCode::kFailedPrecondition) {
      return absl::AlreadyExistsError(
          absl::StrCat("particle ", e.particle_id, " already reported iteration ", e.iteration));
    }
    WXP_RETURN_IF_ERROR(s);
  }
  for (const auto& [particle, iteration] : u.blobs_now_held) {
    WXP_ASSIGN_OR_RETURN(Statement q,
                         db_->Cached("UPDATE evaluations SET blob_held = 1 WHERE swarm_id = ? "
                                     "AND particle_id = ? AND iteration = ?"));
    WXP_RETURN_IF_ERROR(q.Bind(1, id).Bind(2, int64_t{particle}).Bind(3, int64_t{iteration}).Run());
    if (db_->Changes() != 1) {
      return absl::NotFoundError(
          absl::StrCat("no evaluation of particle ", particle, " at iteration ", iteration));
    }
  }
  for (const HistoryRecord& h : u.history) {
    WXP_ASSIGN_OR_RETURN(
        Statement q,
        db_->Cached(absl::StrCat("INSERT OR REPLACE INTO history (swarm_id, ", kHistoryColumns,
                                 ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")));
    WXP_RETURN_IF_ERROR(q.Bind(1, id)
                            .Bind(2, int64_t{h.iteration})
                            .Bind(3, int64_t{h.utility_version})
                            .Bind(4, h.global_best_utility)
                            .Bind(5, h.global_worst_utility)
                            .Bind(6, h.mean_utility)
                            .Bind(7, h.step_length)
                            .Bind(8, int64_t{h.restarts})
                            .Bind(9, int64_t{h.reports})
                            .Bind(10, h.closed_ms)
                            .Run());
  }
  for (const AuditRecord& a : u.audit) WXP_RETURN_IF_ERROR(InsertAudit(a));
  for (const BlobRecord& b : u.blob_refs) {
    WXP_ASSIGN_OR_RETURN(Statement q,
                         db_->Cached("INSERT INTO blobs (id, size, refcount) VALUES (?, ?, 1) "
                                     "ON CONFLICT(id) DO UPDATE SET refcount = refcount + 1"));
    WXP_RETURN_IF_ERROR(q.Bind(1, absl::string_view(b.id)).Bind(2, b.size).Run());
  }
  for (const std::string& blob : u.blob_unrefs) {
    WXP_ASSIGN_OR_RETURN(Statement q, db_->Cached("UPDATE blobs SET refcount = refcount - 1 "
                                                  "WHERE id = ? AND refcount > 0"));
    WXP_RETURN_IF_ERROR(q.Bind(1, absl::string_view(blob)).Run());
  }
  return absl::OkStatus();
}

SqliteStore::SqliteStore(std::unique_ptr<db::Database> db)
    : db_(std::move(db)),
      pipeline_(
          [this](const std::vector<const SwarmUpdate*>& batch, std::vector<absl::Status>& refused) {
            return CommitBatch(batch, refused);
          }) {}

absl::Status SqliteStore::CommitBatch(const std::vector<const SwarmUpdate*>& batch,
                                      std::vector<absl::Status>& refused) {
  absl::MutexLock lock(&mu_);
  db::Transaction txn(db_.get());
  WXP_RETURN_IF_ERROR(txn.status());
  if (batch.size() == 1) {
    // Alone, the transaction is the update's savepoint.
    absl::Status s = ApplyLocked(*batch[0]);
    if (UpdatePipeline::IsRefusal(s)) {
      refused[0] = s;
      return absl::OkStatus();  // rolled back with the transaction
    }
    WXP_RETURN_IF_ERROR(s);
    return txn.Commit();
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    WXP_RETURN_IF_ERROR(db_->Execute("SAVEPOINT one_update"));
    absl::Status s = ApplyLocked(*batch[i]);
    if (UpdatePipeline::IsRefusal(s)) {
      refused[i] = s;
      WXP_RETURN_IF_ERROR(db_->Execute("ROLLBACK TO one_update"));
    } else {
      WXP_RETURN_IF_ERROR(s);
    }
    WXP_RETURN_IF_ERROR(db_->Execute("RELEASE one_update"));
  }
  return txn.Commit();
}

absl::StatusOr<SwarmRecord> SqliteStore::GetSwarm(const std::string& name) {
  absl::MutexLock lock(&mu_);
  WXP_ASSIGN_OR_RETURN(
      std::vector<SwarmRecord> rows,
      Query<SwarmRecord>(
          db_.get(), absl::StrCat("SELECT ", kSwarmColumns, " FROM swarms WHERE name = ?"),
          [&](Statement& q) { q.Bind(1, absl::string_view(name)); }, ReadSwarm));
  if (rows.empty()) return absl::NotFoundError(absl::StrCat("no swarm named '", name, "'"));
  return rows[0];
}

absl::StatusOr<std::vector<SwarmRecord>> SqliteStore::ListSwarms() {
  absl::MutexLock lock(&mu_);
  return Query<SwarmRecord>(db_.get(),
                            absl::StrCat("SELECT ", kSwarmColumns, " FROM swarms ORDER BY name"),
                            BindNothing, ReadSwarm);
}

absl::StatusOr<std::vector<ParticleRow>> SqliteStore::ListParticles(const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
  return Query<ParticleRow>(
      db_.get(),
      absl::StrCat("SELECT ", kParticleColumns,
                   " FROM particles WHERE swarm_id = ? ORDER BY particle_id"),
      [&](Statement& q) { q.Bind(1, id); }, ReadParticle);
}

absl::StatusOr<std::vector<ExpertRecord>> SqliteStore::ListExperts(const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
  return Query<ExpertRecord>(
      db_.get(),
      "SELECT ordinal, agent, blob_id, joined_ms, capacity, config_json FROM experts WHERE "
      "swarm_id = ? ORDER BY ordinal",
      [&](Statement& q) { q.Bind(1, id); },
      [](const Statement& q) {
        return ExpertRecord{
            static_cast<int32_t>(q.ColumnInt(0)), q.ColumnText(1), q.ColumnText(2), q.ColumnInt(3),
            static_cast<int32_t>(q.ColumnInt(4)), q.ColumnText(5)};
      });
}

absl::StatusOr<EvaluationRecord> SqliteStore::GetEvaluation(const std::string& swarm,
                                                            int32_t particle_id,
                                                            int32_t iteration) {
  absl::MutexLock lock(&mu_);
  WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
  WXP_ASSIGN_OR_RETURN(
      std::vector<EvaluationRecord> rows,
      Query<EvaluationRecord>(
          db_.get(),
          absl::StrCat("SELECT ", kEvaluationColumns,
                       " FROM evaluations WHERE swarm_id = ? AND iteration = ? AND "
                       "particle_id = ?"),
          [&](Statement& q) {
            q.Bind(1, id).Bind(2, int64_t{iteration}).Bind(3, int64_t{particle_id});
          },
          ReadEvaluation));
  if (rows.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no evaluation of particle ", particle_id, " at iteration ", iteration));
  }
  return rows[0];
}

absl::StatusOr<std::vector<EvaluationRecord>> SqliteStore::ListEvaluations(
    const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
  return Query<EvaluationRecord>(
      db_.get(),
      absl::StrCat("SELECT ", kEvaluationColumns,
                   " FROM evaluations WHERE swarm_id = ? ORDER BY iteration, particle_id"),
      [&](Statement& q) { q.Bind(1, id); }, ReadEvaluation);
}

absl::StatusOr<std::vector<EvaluationRecord>> SqliteStore::ListEvaluationsOfBlob(
    const std::string& swarm, const std::string& blob_id) {
  absl::MutexLock lock(&mu_);
  WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
  return Query<EvaluationRecord>(
      db_.get(),
      absl::StrCat("SELECT ", kEvaluationColumns,
                   " FROM evaluations WHERE blob_id = ? AND swarm_id = ? "
                   "ORDER BY iteration, particle_id"),
      [&](Statement& q) { q.Bind(1, absl::string_view(blob_id)).Bind(2, id); }, ReadEvaluation);
}

absl::StatusOr<std::vector<HistoryRecord>> SqliteStore::ListHistory(const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
  return Query<HistoryRecord>(
      db_.get(),
      absl::StrCat("SELECT ", kHistoryColumns,
                   " FROM history WHERE swarm_id = ? ORDER BY utility_version, iteration"),
      [&](Statement& q) { q.Bind(1, id); }, ReadHistory);
}

absl::StatusOr<std::vector<AuditRecord>> SqliteStore::ListAudit(const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  return Query<AuditRecord>(
      db_.get(),
      "SELECT time_ms, actor, action, swarm, detail FROM audit_log WHERE swarm = ? ORDER BY id",
      [&](Statement& q) { q.Bind(1, absl::string_view(swarm)); },
      [](const Statement& q) {
        return AuditRecord{q.ColumnInt(0), q.ColumnText(1), q.ColumnText(2), q.ColumnText(3),
                           q.ColumnText(4)};
      });
}

absl::Status SqliteStore::TouchClient(const Identity& client, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  WXP_ASSIGN_OR_RETURN(
      Statement q,
      db_->Cached("INSERT INTO clients (identity, role, first_seen_ms, last_seen_ms, revoked) "
                  "VALUES (?, ?, ?, ?, 0) ON CONFLICT(identity) DO UPDATE SET "
                  "role = excluded.role, last_seen_ms = excluded.last_seen_ms"));
  return q.Bind(1, absl::string_view(client.name))
      .Bind(2, RoleName(client.role))
      .Bind(3, now_ms)
      .Bind(4, now_ms)
      .Run();
}

absl::StatusOr<ClientRecord> SqliteStore::GetClient(const std::string& identity) {
  absl::MutexLock lock(&mu_);
  WXP_ASSIGN_OR_RETURN(
      std::vector<ClientRecord> rows,
      Query<ClientRecord>(
          db_.get(),
          "SELECT identity, role, first_seen_ms, last_seen_ms, revoked FROM "
          "clients WHERE identity = ?",
          [&](Statement& q) { q.Bind(1, absl::string_view(identity)); }, ReadClient));
  if (rows.empty()) return absl::NotFoundError(absl::StrCat("no client '", identity, "'"));
  return rows[0];
}

absl::StatusOr<std::vector<ClientRecord>> SqliteStore::ListClients() {
  absl::MutexLock lock(&mu_);
  return Query<ClientRecord>(db_.get(),
                             "SELECT identity, role, first_seen_ms, last_seen_ms, revoked FROM "
                             "clients ORDER BY identity",
                             BindNothing, ReadClient);
}

absl::Status SqliteStore::SetRevoked(const std::string& identity, bool revoked,
                                     const AuditRecord& audit) {
  absl::MutexLock lock(&mu_);
  db::Transaction txn(db_.get());
  WXP_RETURN_IF_ERROR(txn.status());
  WXP_ASSIGN_OR_RETURN(Statement q,
                       db_->Cached("UPDATE clients SET revoked = ? WHERE identity = ?"));
  WXP_RETURN_IF_ERROR(q.Bind(1, int64_t{revoked}).Bind(2, absl::string_view(identity)).Run());
  if (db_->Changes() != 1) return absl::NotFoundError(absl::StrCat("no client '", identity, "'"));
  WXP_RETURN_IF_ERROR(InsertAudit(audit));
  return txn.Commit();
}

absl::StatusOr<std::vector<BlobRecord>> SqliteStore::ListBlobs() {
  absl::MutexLock lock(&mu_);
  return Query<BlobRecord>(db_.get(), "SELECT id, size, refcount FROM blobs ORDER BY id",
                           BindNothing, [](const Statement& q) {
                             return BlobRecord{q.ColumnText(0), q.ColumnInt(1), q.ColumnInt(2)};
                           });
}

absl::StatusOr<std::string> SqliteStore::IntegrityCheck() {
  absl::MutexLock lock(&mu_);
  return db_->IntegrityCheck();
}

}  // namespace wxp::store
