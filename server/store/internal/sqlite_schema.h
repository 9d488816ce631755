// The SQLite store's table layout (SPEC 6): the schema migrations, the column lists its
// queries use, and how a row maps to a record and back. Internal to server/store: shared by
// sqlite_store.cc (open and writes) and sqlite_store_reads.cc (reads); nothing else
// includes this.
#ifndef WXP_SERVER_STORE_INTERNAL_SQLITE_SCHEMA_H_
#define WXP_SERVER_STORE_INTERNAL_SQLITE_SCHEMA_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/db/sqlite.h"
#include "server/store/internal/columns.h"
#include "server/store/swarm_store.h"

namespace wxp::store::sqlite_internal {

// Every schema version, oldest first. Later versions append; never edit a shipped one.
const std::vector<db::Migration>& Migrations();
// The oldest schema version this code can read and write.
// 3: audits (SPEC 12); an older binary would serve quarantined clients.
inline constexpr int kCompatibleVersion = 3;

// The column lists: internal/columns.h.
using internal::FromExcluded;
using internal::kAuditClaimColumns;
using internal::kClientColumns;
using internal::kEvaluationColumns;
using internal::kHistoryColumns;
using internal::kParticleColumns;
using internal::kSwarmColumns;

// Row -> record, for a statement selecting the matching column list (clients: identity,
// role, first_seen_ms, last_seen_ms, revoked and the audit columns). DataLoss for a stored value
// the record cannot hold (scores that are not a JSON object of numbers, an unknown role).
SwarmRecord ReadSwarm(const db::Statement& q);
ParticleRow ReadParticle(const db::Statement& q);
absl::StatusOr<EvaluationRecord> ReadEvaluation(const db::Statement& q);
HistoryRecord ReadHistory(const db::Statement& q);
absl::StatusOr<ClientRecord> ReadClient(const db::Statement& q);
absl::StatusOr<AuditClaim> ReadAuditClaim(const db::Statement& q);

// Record -> parameters 1..24 of a statement over kSwarmColumns.
void BindSwarm(db::Statement& q, const SwarmRecord& s);

}  // namespace wxp::store::sqlite_internal

#endif  // WXP_SERVER_STORE_INTERNAL_SQLITE_SCHEMA_H_
