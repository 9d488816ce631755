// The column lists both SQL stores (SQLite and PostgreSQL) select and write, in the order
// their Read* functions read a row: one table layout, two dialects. Internal to
// server/store.
#ifndef WXP_SERVER_STORE_INTERNAL_COLUMNS_H_
#define WXP_SERVER_STORE_INTERNAL_COLUMNS_H_

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace wxp::store::internal {

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
inline constexpr char kClientColumns[] =
    "identity, role, first_seen_ms, last_seen_ms, revoked, audits_confirmed, audits_disputed, "
    "strikes, quarantined";
inline constexpr char kAuditClaimColumns[] =
    "particle_id, iteration, reporter, candidate, state, audited_scores, auditor, decided_ms";

// "c1 = excluded.c1, c2 = excluded.c2, ..." for an upsert's DO UPDATE SET: both dialects
// spell it the same. An upsert updates the row in place where INSERT OR REPLACE would delete
// it and insert a new one, moving it in the table and touching every index.
inline std::string FromExcluded(const std::string& columns) {
  std::vector<std::string> parts;
  for (absl::string_view c : absl::StrSplit(columns, ", ")) {
    parts.push_back(absl::StrCat(c, " = excluded.", c));
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace wxp::store::internal

#endif  // WXP_SERVER_STORE_INTERNAL_COLUMNS_H_
