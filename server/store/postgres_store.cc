// PostgresStore opening and writing; its reads are in postgres_store_reads.cc, the table
// layout (schema, column lists, row codecs) in internal/postgres_schema.h.
#include "server/store/postgres_store.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/internal/postgres_schema.h"
#include "server/store/internal/scores_json.h"

namespace wxp::store {

using db::pg::Params;
using db::pg::Result;
using db::pg::Transaction;
using postgres_internal::AddEvaluation;
using postgres_internal::AddHistory;
using postgres_internal::AddParticle;
using postgres_internal::AddSwarm;
using postgres_internal::Assignments;
using postgres_internal::FromExcluded;
using postgres_internal::kAuditClaimColumns;
using postgres_internal::kCompatibleVersion;
using postgres_internal::kEvaluationColumns;
using postgres_internal::kHistoryColumns;
using postgres_internal::kParticleColumns;
using postgres_internal::kSwarmColumns;
using postgres_internal::Migrations;
using postgres_internal::Placeholders;

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(const Options& options) {
  std::string session_sql;
  if (options.session_timeout_ms > 0) {
    session_sql =
        absl::StrCat("SET idle_in_transaction_session_timeout = ", options.session_timeout_ms,
                     "; SET lock_timeout = ", options.session_timeout_ms);
  }
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<db::pg::Connection> conn,
                       db::pg::Connection::Open(options.conninfo, session_sql));
  WXP_RETURN_IF_ERROR(conn->Migrate(Migrations(), kCompatibleVersion));
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<db::pg::Connection> reader,
                       db::pg::Connection::Open(options.conninfo, session_sql));
  return std::unique_ptr<PostgresStore>(
      new PostgresStore(std::move(conn), std::move(reader), options.require_fence));
}

PostgresStore::PostgresStore(std::unique_ptr<db::pg::Connection> conn,
                             std::unique_ptr<db::pg::Connection> reader, bool require_fence)
    : conn_(std::move(conn)),
      reader_(std::move(reader)),
      require_fence_(require_fence),
      pipeline_(
          [this](const std::vector<const SwarmUpdate*>& batch, std::vector<absl::Status>& refused) {
            return CommitBatch(batch, refused);
          }) {}

absl::Status PostgresStore::Commit(Transaction& txn) {
  absl::Status s = txn.Commit();
  if (!s.ok() && txn.commit_sent()) commit_in_doubt_ = true;
  return s;
}

absl::StatusOr<int64_t> PostgresStore::SwarmId(const std::string& name) {
  WXP_ASSIGN_OR_RETURN(Result r,
                       conn_->Query("SELECT id FROM swarms WHERE name = $1", Params().Text(name)));
  if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("no swarm named '", name, "'"));
  return r.Int(0, 0);
}

absl::Status PostgresStore::InsertAudit(const AuditRecord& a) {
  return conn_
      ->Query(
          "INSERT INTO audit_log (time_ms, actor, action, swarm, detail) VALUES ($1, $2, $3, $4, "
          "$5)",
          Params().Int(a.time_ms).Text(a.actor).Text(a.action).Text(a.swarm).Text(a.detail))
      .status();
}

absl::Status PostgresStore::WriteSwarmRow(int64_t id, const SwarmRecord& s) {
  Params p;
  AddSwarm(p, s);
  p.Int(id);
  WXP_RETURN_IF_ERROR(conn_
                          ->Query(absl::StrCat("UPDATE swarms SET ", Assignments(kSwarmColumns, 1),
                                               " WHERE id = $25"),
                                  p)
                          .status());
  return conn_
      ->Query(
          "INSERT INTO utility_versions (swarm_id, version, utility) VALUES ($1, $2, $3) "
          "ON CONFLICT DO NOTHING",
          Params().Int(id).Int(s.utility_version).Bytes(s.utility))
      .status();
}

absl::Status PostgresStore::CreateSwarm(const SwarmRecord& swarm, const AuditRecord& audit) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::Status {
    Transaction txn(conn_.get());
    WXP_RETURN_IF_ERROR(txn.status());
    if (SwarmId(swarm.name).ok()) {
      return absl::AlreadyExistsError(absl::StrCat("a swarm named '", swarm.name, "' exists"));
    }
    Params p;
    AddSwarm(p, swarm);
    WXP_ASSIGN_OR_RETURN(
        Result r, conn_->Query(absl::StrCat("INSERT INTO swarms (", kSwarmColumns, ") VALUES (",
                                            Placeholders(1, 24), ") RETURNING id"),
                               p));
    WXP_RETURN_IF_ERROR(WriteSwarmRow(r.Int(0, 0), swarm));
    WXP_RETURN_IF_ERROR(InsertAudit(audit));
    return Commit(txn);
  });
}

absl::Status PostgresStore::CheckFence(const SwarmUpdate& u) {
  if (u.fence == 0 && !require_fence_) return absl::OkStatus();
  // FOR SHARE: a takeover (an UPDATE of this row) waits until this transaction ends, so the
  // next leader loads the swarm only after this write, or this write sees the new token.
  WXP_ASSIGN_OR_RETURN(
      Result r, conn_->Query("SELECT token FROM swarm_leases WHERE swarm = $1 AND token = $2 "
                             "FOR SHARE",
                             Params().Text(u.swarm).Int(u.fence)));
  if (u.fence == 0 || r.rows() != 1) return LeaseLostError(u.swarm);
  return absl::OkStatus();
}

absl::Status PostgresStore::ApplyLocked(const SwarmUpdate& u) {
  WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(u.swarm));
  WXP_RETURN_IF_ERROR(CheckFence(u));
  if (u.swarm_row) {
    if (u.swarm_row->name != u.swarm) {
      return absl::InvalidArgumentError("an update cannot rename a swarm");
    }
    WXP_RETURN_IF_ERROR(WriteSwarmRow(id, *u.swarm_row));
  }
  // Every report writes its particle: the statement's text is built once, not per row.
  static const auto* upsert_particle = new std::string(absl::StrCat(
      "INSERT INTO particles (swarm_id, ", kParticleColumns, ") VALUES (", Placeholders(1, 20),
      ") ON CONFLICT (swarm_id, particle_id) DO UPDATE SET ", FromExcluded(kParticleColumns)));
  for (const ParticleRow& row : u.particles) {
    Params p;
    p.Int(id);
    AddParticle(p, row);
    WXP_RETURN_IF_ERROR(conn_->Query(*upsert_particle, p).status());
  }
  for (const ExpertRecord& e : u.experts) {
    WXP_ASSIGN_OR_RETURN(
        Result r, conn_->Query("INSERT INTO experts (swarm_id, ordinal, agent, blob_id, joined_ms, "
                               "capacity, config_json) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                               "ON CONFLICT DO NOTHING",
                               Params()
                                   .Int(id)
                                   .Int(e.ordinal)
                                   .Text(e.agent)
                                   .Text(e.blob_id)
                                   .Int(e.joined_ms)
                                   .Int(e.capacity)
                                   .Text(e.config_json)));
    if (r.affected() != 1) {
      return absl::AlreadyExistsError(absl::StrCat("expert ", e.ordinal, " already recorded"));
    }
  }
  if (u.evaluation) {
    const EvaluationRecord& e = *u.evaluation;
    Params p;
    p.Int(id);
    AddEvaluation(p, e);
    WXP_ASSIGN_OR_RETURN(
        Result r,
        conn_->Query(absl::StrCat("INSERT INTO evaluations (swarm_id, ", kEvaluationColumns,
                                  ") VALUES (", Placeholders(1, 12), ") ON CONFLICT DO NOTHING"),
                     p));
    if (r.affected() != 1) {
      return absl::AlreadyExistsError(
          absl::StrCat("particle ", e.particle_id, " already reported iteration ", e.iteration));
    }
  }
  for (const auto& [particle, iteration] : u.blobs_now_held) {
    WXP_ASSIGN_OR_RETURN(Result r, conn_->Query("UPDATE evaluations SET blob_held = true WHERE "
                                                "swarm_id = $1 AND particle_id = $2 AND "
                                                "iteration = $3",
                                                Params().Int(id).Int(particle).Int(iteration)));
    if (r.affected() != 1) {
      return absl::NotFoundError(
          absl::StrCat("no evaluation of particle ", particle, " at iteration ", iteration));
    }
  }
  for (const HistoryRecord& h : u.history) {
    Params p;
    p.Int(id);
    AddHistory(p, h);
    WXP_RETURN_IF_ERROR(
        conn_
            ->Query(absl::StrCat("INSERT INTO history (swarm_id, ", kHistoryColumns, ") VALUES (",
                                 Placeholders(1, 10),
                                 ") ON CONFLICT (swarm_id, utility_version, iteration) DO UPDATE "
                                 "SET ",
                                 FromExcluded(kHistoryColumns)),
                    p)
            .status());
  }
  for (const AuditRecord& a : u.audit) WXP_RETURN_IF_ERROR(InsertAudit(a));
  for (const BlobRecord& b : u.blob_refs) {
    WXP_RETURN_IF_ERROR(conn_
                            ->Query("INSERT INTO blobs (id, size, refcount) VALUES ($1, $2, 1) "
                                    "ON CONFLICT (id) DO UPDATE SET refcount = blobs.refcount + 1",
                                    Params().Text(b.id).Int(b.size))
                            .status());
  }
  for (const std::string& blob : u.blob_unrefs) {
    WXP_RETURN_IF_ERROR(conn_
                            ->Query("UPDATE blobs SET refcount = refcount - 1 WHERE id = $1 AND "
                                    "refcount > 0",
                                    Params().Text(blob))
                            .status());
  }
  for (const AuditClaim& a : u.audits) {
    WXP_ASSIGN_OR_RETURN(Result e,
                         conn_->Query("SELECT 1 FROM evaluations WHERE swarm_id = $1 "
                                      "AND iteration = $2 AND particle_id = $3",
                                      Params().Int(id).Int(a.iteration).Int(a.particle_id)));
    if (e.rows() != 1) {
      return absl::NotFoundError(absl::StrCat("no evaluation of particle ", a.particle_id,
                                              " at iteration ", a.iteration, " to audit"));
    }
    WXP_RETURN_IF_ERROR(
        conn_
            ->Query(absl::StrCat("INSERT INTO audits (swarm_id, ", kAuditClaimColumns, ") VALUES (",
                                 Placeholders(1, 9),
                                 ") ON CONFLICT (swarm_id, iteration, particle_id) DO UPDATE SET ",
                                 FromExcluded(kAuditClaimColumns)),
                    Params()
                        .Int(id)
                        .Int(a.particle_id)
                        .Int(a.iteration)
                        .Text(a.reporter)
                        .Bool(a.candidate)
                        .Int(static_cast<int64_t>(a.state))
                        .Text(internal::ScoresToJson(a.audited_scores))
                        .Text(a.auditor)
                        .Int(a.decided_ms))
            .status());
  }
  for (const StandingChange& c : u.standings) {
    WXP_RETURN_IF_ERROR(
        conn_
            ->Query("INSERT INTO clients (identity, role, first_seen_ms, last_seen_ms, revoked) "
                    "VALUES ($1, 'agent', $2, $2, false) ON CONFLICT (identity) DO NOTHING",
                    Params().Text(c.client).Int(c.now_ms))
            .status());
    const int64_t disputed = c.disputed ? 1 : 0;
    WXP_RETURN_IF_ERROR(
        conn_
            ->Query("UPDATE clients SET audits_confirmed = audits_confirmed + $1, "
                    "audits_disputed = audits_disputed + $2, strikes = strikes + $2, "
                    "quarantined = quarantined OR ($2 = 1 AND strikes + 1 >= $3) "
                    "WHERE identity = $4",
                    Params().Int(1 - disputed).Int(disputed).Int(c.quarantine_after).Text(c.client))
            .status());
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::CommitBatch(const std::vector<const SwarmUpdate*>& batch,
                                        std::vector<absl::Status>& refused) {
  absl::MutexLock lock(&mu_);
  return Retrying([&] {
    std::fill(refused.begin(), refused.end(), absl::OkStatus());
    return CommitBatchOnce(batch, refused);
  });
}

absl::Status PostgresStore::CommitBatchOnce(const std::vector<const SwarmUpdate*>& batch,
                                            std::vector<absl::Status>& refused) {
  auto apply = [this](const SwarmUpdate& u) {
    mu_.AssertHeld();  // CommitBatch holds it; tells the lock analysis
    return ApplyLocked(u);
  };
  if (batch.size() > 1) {
    // Without savepoints first (ApplyBatchWhole): each costs a round trip here.
    Transaction txn(conn_.get());
    WXP_RETURN_IF_ERROR(txn.status());
    WXP_ASSIGN_OR_RETURN(const bool all_applied, ApplyBatchWhole(batch, apply));
    if (all_applied) return Commit(txn);
  }  // a refusal: rolled back here, and applied again update by update
  Transaction txn(conn_.get());
  WXP_RETURN_IF_ERROR(txn.status());
  WXP_ASSIGN_OR_RETURN(const bool commit,
                       ApplyBatchInSavepoints(batch, refused, apply, [this](const char* sql) {
                         return conn_->Execute(sql);
                       }));
  return commit ? Commit(txn) : absl::OkStatus();
}

absl::Status PostgresStore::TouchClient(const Identity& client, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  return Retrying([&] {
    return conn_
        ->Query(
            "INSERT INTO clients (identity, role, first_seen_ms, last_seen_ms, revoked) "
            "VALUES ($1, $2, $3, $4, false) ON CONFLICT (identity) DO UPDATE SET "
            "role = excluded.role, last_seen_ms = excluded.last_seen_ms",
            Params().Text(client.name).Text(RoleName(client.role)).Int(now_ms).Int(now_ms))
        .status();
  });
}

absl::Status PostgresStore::LiftQuarantine(const std::string& identity, const AuditRecord& audit) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::Status {
    Transaction txn(conn_.get());
    WXP_RETURN_IF_ERROR(txn.status());
    WXP_ASSIGN_OR_RETURN(Result r,
                         conn_->Query("UPDATE clients SET quarantined = false, strikes = 0 WHERE "
                                      "identity = $1",
                                      Params().Text(identity)));
    if (r.affected() != 1) return absl::NotFoundError(absl::StrCat("no client '", identity, "'"));
    WXP_RETURN_IF_ERROR(InsertAudit(audit));
    return Commit(txn);
  });
}

absl::Status PostgresStore::SetRevoked(const std::string& identity, bool revoked,
                                       const AuditRecord& audit) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::Status {
    Transaction txn(conn_.get());
    WXP_RETURN_IF_ERROR(txn.status());
    WXP_ASSIGN_OR_RETURN(Result r,
                         conn_->Query("UPDATE clients SET revoked = $1 WHERE identity = $2",
                                      Params().Bool(revoked).Text(identity)));
    if (r.affected() != 1) return absl::NotFoundError(absl::StrCat("no client '", identity, "'"));
    WXP_RETURN_IF_ERROR(InsertAudit(audit));
    return Commit(txn);
  });
}

}  // namespace wxp::store
