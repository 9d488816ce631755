// The PostgreSQL store's table layout (SPEC 6, 6.1): the schema migrations, the column lists
// its queries use, and how a row maps to a record and back. The tables mirror the SQLite
// store's (internal/sqlite_schema.h) with PostgreSQL's types: BIGINT, DOUBLE PRECISION,
// BOOLEAN, BYTEA. Internal to server/store: shared by postgres_store.cc (open and writes)
// and postgres_store_reads.cc (reads); nothing else includes this.
#ifndef WXP_SERVER_STORE_INTERNAL_POSTGRES_SCHEMA_H_
#define WXP_SERVER_STORE_INTERNAL_POSTGRES_SCHEMA_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/db/postgres.h"
#include "server/store/internal/columns.h"
#include "server/store/swarm_store.h"

namespace wxp::store::postgres_internal {

// Every schema version, oldest first. Later versions append; never edit a shipped one.
const std::vector<db::pg::Migration>& Migrations();
// The oldest schema version this code can read and write. 2: a binary without leases must
// not write to a database whose swarms replicas lead (its writes would not be fenced). 3:
// audits (SPEC 12); an older binary would serve quarantined clients.
inline constexpr int kCompatibleVersion = 3;

// The column lists: internal/columns.h.
using internal::FromExcluded;
using internal::kAuditClaimColumns;
using internal::kClientColumns;
using internal::kEvaluationColumns;
using internal::kHistoryColumns;
using internal::kParticleColumns;
using internal::kSwarmColumns;

// "$first, $first+1, ..." for `count` parameters.
std::string Placeholders(int first, int count);
// "a = $first, b = $first+1, ..." over a column list.
std::string Assignments(const std::string& columns, int first);

// Record -> parameters, in column-list order.
void AddSwarm(db::pg::Params& p, const SwarmRecord& s);
void AddParticle(db::pg::Params& p, const ParticleRow& row);
void AddEvaluation(db::pg::Params& p, const EvaluationRecord& e);
void AddHistory(db::pg::Params& p, const HistoryRecord& h);

// Row -> record, for a result selecting the matching column list. DataLoss for a stored
// value the record cannot hold (scores that are not a JSON object of numbers, an unknown
// role).
SwarmRecord ReadSwarm(const db::pg::Result& r, int row);
ParticleRow ReadParticle(const db::pg::Result& r, int row);
absl::StatusOr<EvaluationRecord> ReadEvaluation(const db::pg::Result& r, int row);
HistoryRecord ReadHistory(const db::pg::Result& r, int row);
absl::StatusOr<ClientRecord> ReadClient(const db::pg::Result& r, int row);
absl::StatusOr<AuditClaim> ReadAuditClaim(const db::pg::Result& r, int row);

}  // namespace wxp::store::postgres_internal

#endif  // WXP_SERVER_STORE_INTERNAL_POSTGRES_SCHEMA_H_
