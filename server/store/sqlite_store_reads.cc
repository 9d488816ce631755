// SqliteStore's reads (see sqlite_store.h); its open and writes are in sqlite_store.cc.
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/internal/sqlite_schema.h"
#include "server/store/sqlite_store.h"

namespace wxp::store {
namespace {

using db::Statement;

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

using sqlite_internal::kAuditClaimColumns;
using sqlite_internal::kClientColumns;
using sqlite_internal::kEvaluationColumns;
using sqlite_internal::kHistoryColumns;
using sqlite_internal::kParticleColumns;
using sqlite_internal::kSwarmColumns;
using sqlite_internal::ReadAuditClaim;
using sqlite_internal::ReadClient;
using sqlite_internal::ReadEvaluation;
using sqlite_internal::ReadHistory;
using sqlite_internal::ReadParticle;
using sqlite_internal::ReadSwarm;

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

absl::StatusOr<std::vector<AuditClaim>> SqliteStore::ListAuditClaims(const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
  return Query<AuditClaim>(
      db_.get(),
      absl::StrCat("SELECT ", kAuditClaimColumns,
                   " FROM audits WHERE swarm_id = ? ORDER BY iteration, particle_id"),
      [&](Statement& q) { q.Bind(1, id); }, ReadAuditClaim);
}

absl::StatusOr<ClientRecord> SqliteStore::GetClient(const std::string& identity) {
  const auto read = [&](db::Database* db) {
    return Query<ClientRecord>(
        db, absl::StrCat("SELECT ", kClientColumns, " FROM clients WHERE identity = ?"),
        [&](Statement& q) { q.Bind(1, absl::string_view(identity)); }, ReadClient);
  };
  absl::StatusOr<std::vector<ClientRecord>> rows = absl::UnavailableError("no reader");
  {
    absl::MutexLock lock(&reader_mu_);
    if (reader_ != nullptr) rows = read(reader_.get());
  }
  if (!rows.ok()) {
    // In memory (no reader), or the reader failed (e.g. busy): the writer's connection.
    absl::MutexLock lock(&mu_);
    rows = read(db_.get());
  }
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return absl::NotFoundError(absl::StrCat("no client '", identity, "'"));
  return (*rows)[0];
}

absl::StatusOr<std::vector<ClientRecord>> SqliteStore::ListClients() {
  absl::MutexLock lock(&mu_);
  return Query<ClientRecord>(
      db_.get(), absl::StrCat("SELECT ", kClientColumns, " FROM clients ORDER BY identity"),
      BindNothing, ReadClient);
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
