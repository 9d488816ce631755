// SqliteStore opening and writing; its reads are in sqlite_store_reads.cc, the table layout
// (schema, column lists, row codecs) in internal/sqlite_schema.h.
#include "server/store/sqlite_store.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/internal/scores_json.h"
#include "server/store/internal/sqlite_schema.h"

namespace wxp::store {

using db::Statement;
using internal::ScoresToJson;
using sqlite_internal::BindSwarm;
using sqlite_internal::FromExcluded;
using sqlite_internal::kAuditClaimColumns;
using sqlite_internal::kCompatibleVersion;
using sqlite_internal::kEvaluationColumns;
using sqlite_internal::kHistoryColumns;
using sqlite_internal::kParticleColumns;
using sqlite_internal::kSwarmColumns;
using sqlite_internal::Migrations;

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const Options& options) {
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<db::Database> db,
                       db::Database::Open({options.path, true, options.synchronous}));
  WXP_RETURN_IF_ERROR(db->Migrate(Migrations(), kCompatibleVersion));
  std::unique_ptr<db::Database> reader;
  if (options.path != ":memory:") {
    WXP_ASSIGN_OR_RETURN(reader, db::Database::Open({options.path, true, options.synchronous}));
  }
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(db), std::move(reader)));
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
  // Every report writes its particle: the statement's text is built once, not per row.
  static const auto* upsert_particle = new std::string(
      absl::StrCat("INSERT INTO particles (swarm_id, ", kParticleColumns,
                   ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON "
                   "CONFLICT (swarm_id, particle_id) DO UPDATE SET ",
                   FromExcluded(kParticleColumns)));
  for (const ParticleRow& p : u.particles) {
    WXP_ASSIGN_OR_RETURN(Statement q, db_->Cached(*upsert_particle));
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
        db_->Cached(absl::StrCat("INSERT INTO history (swarm_id, ", kHistoryColumns,
                                 ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (swarm_id, "
                                 "utility_version, iteration) DO UPDATE SET ",
                                 FromExcluded(kHistoryColumns))));
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
  for (const AuditClaim& a : u.audits) {
    WXP_ASSIGN_OR_RETURN(Statement e, db_->Cached("SELECT 1 FROM evaluations WHERE swarm_id = ? "
                                                  "AND iteration = ? AND particle_id = ?"));
    e.Bind(1, id).Bind(2, int64_t{a.iteration}).Bind(3, int64_t{a.particle_id});
    WXP_ASSIGN_OR_RETURN(bool found, e.Step());
    if (!found) {
      return absl::NotFoundError(absl::StrCat("no evaluation of particle ", a.particle_id,
                                              " at iteration ", a.iteration, " to audit"));
    }
    WXP_ASSIGN_OR_RETURN(
        Statement q,
        db_->Cached(absl::StrCat("INSERT INTO audits (swarm_id, ", kAuditClaimColumns,
                                 ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (swarm_id, "
                                 "iteration, particle_id) DO UPDATE SET ",
                                 FromExcluded(kAuditClaimColumns))));
    WXP_RETURN_IF_ERROR(q.Bind(1, id)
                            .Bind(2, int64_t{a.particle_id})
                            .Bind(3, int64_t{a.iteration})
                            .Bind(4, absl::string_view(a.reporter))
                            .Bind(5, int64_t{a.candidate})
                            .Bind(6, static_cast<int64_t>(a.state))
                            .Bind(7, absl::string_view(ScoresToJson(a.audited_scores)))
                            .Bind(8, absl::string_view(a.auditor))
                            .Bind(9, a.decided_ms)
                            .Run());
  }
  for (const StandingChange& c : u.standings) {
    WXP_ASSIGN_OR_RETURN(
        Statement ins,
        db_->Cached("INSERT INTO clients (identity, role, first_seen_ms, last_seen_ms, revoked) "
                    "VALUES (?, 'agent', ?, ?, 0) ON CONFLICT(identity) DO NOTHING"));
    WXP_RETURN_IF_ERROR(
        ins.Bind(1, absl::string_view(c.client)).Bind(2, c.now_ms).Bind(3, c.now_ms).Run());
    WXP_ASSIGN_OR_RETURN(
        Statement q,
        db_->Cached("UPDATE clients SET audits_confirmed = audits_confirmed + ?, "
                    "audits_disputed = audits_disputed + ?, strikes = strikes + ?, "
                    "quarantined = CASE WHEN ? AND strikes + 1 >= ? THEN 1 ELSE quarantined END "
                    "WHERE identity = ?"));
    const int64_t disputed = c.disputed ? 1 : 0;
    WXP_RETURN_IF_ERROR(q.Bind(1, 1 - disputed)
                            .Bind(2, disputed)
                            .Bind(3, disputed)
                            .Bind(4, disputed)
                            .Bind(5, int64_t{c.quarantine_after})
                            .Bind(6, absl::string_view(c.client))
                            .Run());
  }
  return absl::OkStatus();
}

SqliteStore::SqliteStore(std::unique_ptr<db::Database> db, std::unique_ptr<db::Database> reader)
    : db_(std::move(db)),
      reader_(std::move(reader)),
      pipeline_(
          [this](const std::vector<const SwarmUpdate*>& batch, std::vector<absl::Status>& refused) {
            return CommitBatch(batch, refused);
          }) {}

absl::Status SqliteStore::CommitBatch(const std::vector<const SwarmUpdate*>& batch,
                                      std::vector<absl::Status>& refused) {
  absl::MutexLock lock(&mu_);
  db::Transaction txn(db_.get());
  WXP_RETURN_IF_ERROR(txn.status());
  WXP_ASSIGN_OR_RETURN(const bool commit,
                       ApplyBatchInSavepoints(
                           batch, refused,
                           [this](const SwarmUpdate& u) {
                             mu_.AssertHeld();  // CommitBatch holds it; tells the lock analysis
                             return ApplyLocked(u);
                           },
                           [this](const char* sql) { return db_->Execute(sql); }));
  return commit ? txn.Commit() : absl::OkStatus();
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

absl::Status SqliteStore::LiftQuarantine(const std::string& identity, const AuditRecord& audit) {
  absl::MutexLock lock(&mu_);
  db::Transaction txn(db_.get());
  WXP_RETURN_IF_ERROR(txn.status());
  WXP_ASSIGN_OR_RETURN(
      Statement q,
      db_->Cached("UPDATE clients SET quarantined = 0, strikes = 0 WHERE identity = ?"));
  WXP_RETURN_IF_ERROR(q.Bind(1, absl::string_view(identity)).Run());
  if (db_->Changes() != 1) return absl::NotFoundError(absl::StrCat("no client '", identity, "'"));
  WXP_RETURN_IF_ERROR(InsertAudit(audit));
  return txn.Commit();
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

}  // namespace wxp::store
