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
#include "server/store/swarm_store.h"

namespace wxp::store::sqlite_internal {

// Every schema version, oldest first. Later versions append; never edit a shipped one.
const std::vector<db::Migration>& Migrations();
// The oldest schema version this code can read and write.
inline constexpr int kCompatibleVersion = 1;

// Column lists, in the order the Read* functions read and BindSwarm binds them.
inline constexpr char kSwarmColumns[] =
    "name, spec, state, termination, created_ms, utility_version, utility, g_particle, "
    "g_iteration, g_utility, gw_particle, gw_iteration, gw_utility, closed_iterations, "
    "last_global_improvement, stopped, open_round, round_opened_ms, round_g_particle, "
    "round_g_iteration, round_g_utility, round_gw_particle, round_gw_iteration, "
    "round_gw_utility";
inline constexpr char kParticleColumns[] =
    "particle_id, owner, initial_blob_id, velocity_partner_blob_id, current_blob_id, "
    "last_report_ms, evaluated, utility, utility_iteration, best_utility, pbest_particle, "
    "pbest_iteration, stale_iterations, stale_through, cooldown, restarts, started_iteration, "
    "restart_at_started, recorded_started";
inline constexpr char kEvaluationColumns[] =
    "particle_id, iteration, blob_id, blob_held, scores, utility, utility_version, failed, "
    "failure_reason, evaluation_seconds, time_ms";
inline constexpr char kHistoryColumns[] =
    "iteration, utility_version, g_utility, gw_utility, mean_utility, step_length, restarts, "
    "reports, closed_ms";

// Row -> record, for a statement selecting the matching column list (clients: identity,
// role, first_seen_ms, last_seen_ms, revoked). DataLoss for a stored value the record
// cannot hold (scores that are not a JSON object of numbers, an unknown role).
SwarmRecord ReadSwarm(const db::Statement& q);
ParticleRow ReadParticle(const db::Statement& q);
absl::StatusOr<EvaluationRecord> ReadEvaluation(const db::Statement& q);
HistoryRecord ReadHistory(const db::Statement& q);
absl::StatusOr<ClientRecord> ReadClient(const db::Statement& q);

// Record -> parameters 1..24 of a statement over kSwarmColumns.
void BindSwarm(db::Statement& q, const SwarmRecord& s);

}  // namespace wxp::store::sqlite_internal

#endif  // WXP_SERVER_STORE_INTERNAL_SQLITE_SCHEMA_H_
