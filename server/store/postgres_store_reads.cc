// PostgresStore's reads (see postgres_store.h); its open and writes are in postgres_store.cc.
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/internal/postgres_schema.h"
#include "server/store/postgres_store.h"

namespace wxp::store {
namespace {

using db::pg::Params;
using db::pg::Result;

// Maps every row of `r` with `read` (which may fail with DataLoss).
template <typename T, typename Read>
absl::StatusOr<std::vector<T>> Rows(const Result& r, Read read) {
  std::vector<T> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    if constexpr (std::is_same_v<decltype(read(r, i)), absl::StatusOr<T>>) {
      WXP_ASSIGN_OR_RETURN(T item, read(r, i));
      out.push_back(std::move(item));
    } else {
      out.push_back(read(r, i));
    }
  }
  return out;
}

ExpertRecord ReadExpert(const Result& r, int i) {
  return ExpertRecord{static_cast<int32_t>(r.Int(i, 0)), r.Text(i, 1), r.Text(i, 2), r.Int(i, 3),
                      static_cast<int32_t>(r.Int(i, 4)), r.Text(i, 5)};
}

AuditRecord ReadAudit(const Result& r, int i) {
  return AuditRecord{r.Int(i, 0), r.Text(i, 1), r.Text(i, 2), r.Text(i, 3), r.Text(i, 4)};
}

BlobRecord ReadBlob(const Result& r, int i) {
  return BlobRecord{r.Text(i, 0), r.Int(i, 1), r.Int(i, 2)};
}

}  // namespace

using postgres_internal::kAuditClaimColumns;
using postgres_internal::kClientColumns;
using postgres_internal::kCompatibleVersion;
using postgres_internal::kEvaluationColumns;
using postgres_internal::kHistoryColumns;
using postgres_internal::kParticleColumns;
using postgres_internal::kSwarmColumns;
using postgres_internal::Migrations;
using postgres_internal::ReadAuditClaim;
using postgres_internal::ReadClient;
using postgres_internal::ReadEvaluation;
using postgres_internal::ReadHistory;
using postgres_internal::ReadParticle;
using postgres_internal::ReadSwarm;

absl::StatusOr<SwarmRecord> PostgresStore::GetSwarm(const std::string& name) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<SwarmRecord> {
    WXP_ASSIGN_OR_RETURN(Result r, conn_->Query(absl::StrCat("SELECT ", kSwarmColumns,
                                                             " FROM swarms WHERE name = $1"),
                                                Params().Text(name)));
    if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("no swarm named '", name, "'"));
    return ReadSwarm(r, 0);
  });
}

absl::StatusOr<std::vector<SwarmRecord>> PostgresStore::ListSwarms() {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<std::vector<SwarmRecord>> {
    WXP_ASSIGN_OR_RETURN(Result r, conn_->Query(absl::StrCat("SELECT ", kSwarmColumns,
                                                             " FROM swarms ORDER BY name")));
    return Rows<SwarmRecord>(r, ReadSwarm);
  });
}

absl::StatusOr<std::vector<ParticleRow>> PostgresStore::ListParticles(const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<std::vector<ParticleRow>> {
    WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
    WXP_ASSIGN_OR_RETURN(Result r, conn_->Query(absl::StrCat("SELECT ", kParticleColumns,
                                                             " FROM particles WHERE swarm_id = $1 "
                                                             "ORDER BY particle_id"),
                                                Params().Int(id)));
    return Rows<ParticleRow>(r, ReadParticle);
  });
}

absl::StatusOr<std::vector<ExpertRecord>> PostgresStore::ListExperts(const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<std::vector<ExpertRecord>> {
    WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
    WXP_ASSIGN_OR_RETURN(
        Result r, conn_->Query("SELECT ordinal, agent, blob_id, joined_ms, capacity, config_json "
                               "FROM experts WHERE swarm_id = $1 ORDER BY ordinal",
                               Params().Int(id)));
    return Rows<ExpertRecord>(r, ReadExpert);
  });
}

absl::StatusOr<EvaluationRecord> PostgresStore::GetEvaluation(const std::string& swarm,
                                                              int32_t particle_id,
                                                              int32_t iteration) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<EvaluationRecord> {
    WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
    WXP_ASSIGN_OR_RETURN(Result r,
                         conn_->Query(absl::StrCat("SELECT ", kEvaluationColumns,
                                                   " FROM evaluations WHERE swarm_id = $1 AND "
                                                   "iteration = $2 AND particle_id = $3"),
                                      Params().Int(id).Int(iteration).Int(particle_id)));
    if (r.rows() == 0) {
      return absl::NotFoundError(
          absl::StrCat("no evaluation of particle ", particle_id, " at iteration ", iteration));
    }
    return ReadEvaluation(r, 0);
  });
}

absl::StatusOr<std::vector<EvaluationRecord>> PostgresStore::ListEvaluations(
    const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<std::vector<EvaluationRecord>> {
    WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
    WXP_ASSIGN_OR_RETURN(Result r,
                         conn_->Query(absl::StrCat("SELECT ", kEvaluationColumns,
                                                   " FROM evaluations WHERE swarm_id = $1 ORDER "
                                                   "BY iteration, particle_id"),
                                      Params().Int(id)));
    return Rows<EvaluationRecord>(r, ReadEvaluation);
  });
}

absl::StatusOr<std::vector<EvaluationRecord>> PostgresStore::ListEvaluationsOfBlob(
    const std::string& swarm, const std::string& blob_id) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<std::vector<EvaluationRecord>> {
    WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
    WXP_ASSIGN_OR_RETURN(Result r,
                         conn_->Query(absl::StrCat("SELECT ", kEvaluationColumns,
                                                   " FROM evaluations WHERE blob_id = $1 AND "
                                                   "swarm_id = $2 ORDER BY iteration, particle_id"),
                                      Params().Text(blob_id).Int(id)));
    return Rows<EvaluationRecord>(r, ReadEvaluation);
  });
}

absl::StatusOr<std::vector<HistoryRecord>> PostgresStore::ListHistory(const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<std::vector<HistoryRecord>> {
    WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
    WXP_ASSIGN_OR_RETURN(Result r,
                         conn_->Query(absl::StrCat("SELECT ", kHistoryColumns,
                                                   " FROM history WHERE swarm_id = $1 ORDER BY "
                                                   "utility_version, iteration"),
                                      Params().Int(id)));
    return Rows<HistoryRecord>(r, ReadHistory);
  });
}

absl::StatusOr<std::vector<AuditRecord>> PostgresStore::ListAudit(const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<std::vector<AuditRecord>> {
    WXP_ASSIGN_OR_RETURN(Result r, conn_->Query("SELECT time_ms, actor, action, swarm, detail FROM "
                                                "audit_log WHERE swarm = $1 ORDER BY id",
                                                Params().Text(swarm)));
    return Rows<AuditRecord>(r, ReadAudit);
  });
}

absl::StatusOr<std::vector<AuditClaim>> PostgresStore::ListAuditClaims(const std::string& swarm) {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<std::vector<AuditClaim>> {
    WXP_ASSIGN_OR_RETURN(int64_t id, SwarmId(swarm));
    WXP_ASSIGN_OR_RETURN(Result r, conn_->Query(absl::StrCat("SELECT ", kAuditClaimColumns,
                                                             " FROM audits WHERE swarm_id = $1 "
                                                             "ORDER BY iteration, particle_id"),
                                                Params().Int(id)));
    return Rows<AuditClaim>(r, ReadAuditClaim);
  });
}

absl::StatusOr<ClientRecord> PostgresStore::GetClient(const std::string& identity) {
  const auto read = [&](db::pg::Connection& c) -> absl::StatusOr<ClientRecord> {
    WXP_ASSIGN_OR_RETURN(Result r, c.Query(absl::StrCat("SELECT ", kClientColumns,
                                                        " FROM clients WHERE identity = $1"),
                                           Params().Text(identity)));
    if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("no client '", identity, "'"));
    return ReadClient(r, 0);
  };
  {
    absl::MutexLock lock(&reader_mu_);
    if (!reader_->Broken() || reader_->Reconnect().ok()) {
      absl::StatusOr<ClientRecord> client = read(*reader_);
      if (client.ok() || absl::IsNotFound(client.status())) return client;
    }
  }
  absl::MutexLock lock(&mu_);
  return Retrying([&] { return read(*conn_); });
}

absl::StatusOr<std::vector<ClientRecord>> PostgresStore::ListClients() {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<std::vector<ClientRecord>> {
    WXP_ASSIGN_OR_RETURN(Result r, conn_->Query(absl::StrCat("SELECT ", kClientColumns,
                                                             " FROM clients ORDER BY identity")));
    return Rows<ClientRecord>(r, ReadClient);
  });
}

absl::StatusOr<std::vector<BlobRecord>> PostgresStore::ListBlobs() {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<std::vector<BlobRecord>> {
    WXP_ASSIGN_OR_RETURN(Result r,
                         conn_->Query("SELECT id, size, refcount FROM blobs ORDER BY id"));
    return Rows<BlobRecord>(r, ReadBlob);
  });
}

absl::StatusOr<std::string> PostgresStore::IntegrityCheck() {
  absl::MutexLock lock(&mu_);
  return Retrying([&]() -> absl::StatusOr<std::string> {
    WXP_ASSIGN_OR_RETURN(int version, conn_->SchemaVersion());
    if (version < kCompatibleVersion || version > Migrations().back().version) {
      return absl::StrCat("schema version ", version, " is not this binary's");
    }
    // The CHECK constraint forbids it; a database restored from elsewhere might not have it.
    WXP_ASSIGN_OR_RETURN(Result r, conn_->Query("SELECT count(*) FROM blobs WHERE refcount < 0"));
    if (r.Int(0, 0) != 0) return absl::StrCat(r.Int(0, 0), " blobs have a negative refcount");
    return std::string("ok");
  });
}

}  // namespace wxp::store
