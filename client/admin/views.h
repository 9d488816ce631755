// How wxpctl shows AdminService answers to people: pure functions from the messages (and
// the current time, for ages) to text, so they are tested without a server.
#ifndef WXP_CLIENT_ADMIN_VIEWS_H_
#define WXP_CLIENT_ADMIN_VIEWS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proto/wxp.pb.h"

namespace wxp::admin {

// InfinitePast for an unset timestamp.
absl::Time FromProtoTime(const google::protobuf::Timestamp& t);

// "RUNNING", "FINISHED", ...
std::string StateName(v1::SwarmState state);
bool IsFinal(v1::SwarmState state);

// One row per swarm: name, state, iteration, g utility, live/total particles, agents,
// experts, mode.
std::string RenderSwarmList(const v1::ListSwarmsResponse& list);

// The g utility per closed iteration under the latest weight version, in iteration order
// (what the status sparkline draws).
std::vector<double> GlobalBestHistory(const v1::GetHistoryResponse& history);

// "key  value" lines: state (and why it ended), mode, particle space (decoder, SVD rank,
// per module, dimension), iteration, step, g (and its alpha in coefficient spaces) and g_w,
// particles live/stale, agents online, experts, last round and its age, weight version,
// and the g history as a sparkline.
std::string RenderSwarmStatus(const v1::SwarmStatus& status, const std::vector<double>& g_history,
                              absl::Time now);

// One row per particle: id, owner, iteration, utility, best, restarts, last report age,
// disputed claims (and those pending an audit).
std::string RenderParticles(const v1::ListParticlesResponse& particles, absl::Time now);

// One row per history entry (every weight version; the version is a column).
std::string RenderHistoryTable(const v1::GetHistoryResponse& history);
// The audited claims (SPEC 12) under a heading, one row each; "" when there are none.
std::string RenderAuditedClaims(const v1::GetHistoryResponse& history);
// The same as CSV with a header line.
std::string RenderHistoryCsv(const v1::GetHistoryResponse& history);
// An SVG chart of the utility per iteration: g under every weight version (so a weight
// change shows both readings: the run as it went, and the past re-read under the new
// weights), a marker where each change came, and g_w and mean under the latest version.
std::string RenderHistorySvg(const std::string& swarm, const v1::GetHistoryResponse& history);

// The weight version and one row per component.
std::string RenderWeights(const v1::UtilityWeights& weights);

// One row per client: identity, role, first and last seen, revoked.
std::string RenderClients(const v1::ListClientsResponse& clients, absl::Time now);

}  // namespace wxp::admin

#endif  // WXP_CLIENT_ADMIN_VIEWS_H_
