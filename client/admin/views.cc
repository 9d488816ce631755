#include "client/admin/views.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/admin/format.h"

namespace wxp::admin {
namespace {

// g or g_w if the server knows one: it leaves them unset (or at particle -1) until the
// initial evaluation.
const v1::PositionRef* Known(const v1::SwarmStatus& s, bool best) {
  if (best ? !s.has_global_best() : !s.has_global_worst()) return nullptr;
  const v1::PositionRef& p = best ? s.global_best() : s.global_worst();
  return p.particle_id() >= 0 ? &p : nullptr;
}

std::string Utility(const v1::PositionRef* p) {
  if (p == nullptr) return "-";
  return absl::StrFormat("%s  (particle %d, iteration %d)", FormatNumber(p->utility()),
                         p->particle_id(), p->iteration());
}

// The particle space (SPEC 4.3) in one line; a server that predates the fields sends
// none of them, which reads as what such a swarm is: WEIGHTS.
std::string Space(const v1::SwarmStatus& s) {
  if (s.space() == v1::TOKEN_MIXTURE) {
    std::string out =
        absl::StrCat("TOKEN_MIXTURE (combination ", v1::TokenCombinationKind_Name(s.combination()));
    if (s.coefficient_dimension() > 0) {
      absl::StrAppend(&out, ", experts ", s.coefficient_dimension());
    }
    return out + ")";
  }
  if (s.space() != v1::EXPERT_COEFFICIENTS) {
    return s.expert_sharing() == v1::FORBIDDEN ? "WEIGHTS (expert sharing forbidden)" : "WEIGHTS";
  }
  std::string out =
      absl::StrCat("EXPERT_COEFFICIENTS (decoder ", v1::CoefficientDecoder_Name(s.decoder()));
  if (s.decoder() == v1::LORA_PRODUCT_SVD) absl::StrAppend(&out, ", svd rank ", s.svd_rank());
  if (s.per_module()) absl::StrAppend(&out, ", per module");
  // 0 until the pool exists: the dimension depends on how many experts join.
  if (s.coefficient_dimension() > 0) {
    absl::StrAppend(&out, ", dimension ", s.coefficient_dimension());
  }
  return absl::StrCat(
      out, s.expert_sharing() == v1::FORBIDDEN ? ", experts not shared)" : ", experts shared)");
}

// Local training (SPEC 4.4) in one line, "off" when absent or every_k is 0.
std::string LocalTrainingLine(const v1::SwarmStatus& s) {
  const v1::LocalTraining& t = s.local_training();
  if (t.every_k() <= 0) return "off";
  const std::string dp =
      t.dp_epsilon() > 0 ? absl::StrCat(", DP-SGD epsilon ", FormatNumber(t.dp_epsilon()),
                                        " delta ", FormatNumber(t.dp_delta()), " clip ",
                                        FormatNumber(t.dp_clip_norm() > 0 ? t.dp_clip_norm() : 1.0),
                                        " per site over the run")
                         : "";
  return absl::StrCat("every ", t.every_k(), " iterations: ", t.steps(), " steps, lr ",
                      FormatNumber(t.learning_rate()), ", batch ", t.batch(), dp);
}

std::string Ago(const google::protobuf::Timestamp& t, absl::Time now) {
  const absl::Time when = FromProtoTime(t);
  if (when == absl::InfinitePast()) return "-";
  return FormatAge(now - when);
}

// Entries of the latest weight version, in iteration order.
std::vector<const v1::HistoryEntry*> LatestReading(const v1::GetHistoryResponse& history) {
  int version = 0;
  for (const auto& e : history.entries()) version = std::max(version, e.utility_weight_version());
  std::vector<const v1::HistoryEntry*> out;
  for (const auto& e : history.entries()) {
    if (e.utility_weight_version() == version) out.push_back(&e);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto* a, const auto* b) { return a->iteration() < b->iteration(); });
  return out;
}

}  // namespace

absl::Time FromProtoTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string StateName(v1::SwarmState state) {
  if (state == v1::SWARM_STATE_UNSPECIFIED) return "UNKNOWN";
  return v1::SwarmState_Name(state);
}

bool IsFinal(v1::SwarmState state) { return state == v1::FINISHED || state == v1::STOPPED; }

std::string RenderSwarmList(const v1::ListSwarmsResponse& list) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::SwarmStatus& s : list.swarms()) {
    rows.push_back(
        {s.name(), StateName(s.state()), absl::StrCat(s.iteration()),
         Known(s, true) ? FormatNumber(s.global_best().utility()) : "-",
         absl::StrCat(s.particles_live(), "/", s.particles()), absl::StrCat(s.agents_online()),
         absl::StrCat(s.experts_joined(), "/", s.min_experts()), v1::RoundMode_Name(s.mode())});
  }
  return RenderTable({"NAME", "STATE", "ITER", "G-UTILITY", "LIVE/N", "AGENTS", "EXPERTS", "MODE"},
                     rows);
}

std::vector<double> GlobalBestHistory(const v1::GetHistoryResponse& history) {
  std::vector<double> g;
  for (const v1::HistoryEntry* e : LatestReading(history)) g.push_back(e->global_best_utility());
  return g;
}

std::string RenderSwarmStatus(const v1::SwarmStatus& s, const std::vector<double>& g_history,
                              absl::Time now) {
  std::string out;
  auto line = [&](const std::string& key, const std::string& value) {
    absl::StrAppendFormat(&out, "%-16s %s\n", key, value);
  };
  line("swarm", s.name());
  line("state", s.termination_reason().empty()
                    ? StateName(s.state())
                    : absl::StrCat(StateName(s.state()), " (", s.termination_reason(), ")"));
  line("mode", v1::RoundMode_Name(s.mode()));
  line("space", Space(s));
  line("local training", LocalTrainingLine(s));
  line("iteration", absl::StrCat(s.iteration()));
  line("step length", FormatNumber(s.step_length()));
  line("g utility", Utility(Known(s, true)));
  if (const v1::PositionRef* g = Known(s, true); g != nullptr && g->alpha_size() > 0) {
    line("g alpha", FormatCoefficients({g->alpha().begin(), g->alpha().end()}));
  }
  line("g_w utility", Utility(Known(s, false)));
  line("particles", absl::StrFormat("%d (live %d, stale %d)", s.particles(), s.particles_live(),
                                    s.particles_stale()));
  line("agents online", absl::StrCat(s.agents_online()));
  line("experts", absl::StrFormat("%d joined, %d needed", s.experts_joined(), s.min_experts()));
  const absl::Time last = FromProtoTime(s.last_round_time());
  line("last round", last == absl::InfinitePast()
                         ? "-"
                         : absl::StrCat(FormatUtcTime(last), " (", FormatAge(now - last), " ago)"));
  line("weights", absl::StrCat("version ", s.utility_weight_version()));
  if (!g_history.empty()) {
    line("g history",
         absl::StrFormat("%s  %s -> %s", Sparkline(g_history), FormatNumber(g_history.front()),
                         FormatNumber(g_history.back())));
  }
  return out;
}

std::string RenderParticles(const v1::ListParticlesResponse& particles, absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::ParticleInfo& p : particles.particles()) {
    const bool reported = p.iteration() >= 0;
    rows.push_back(
        {absl::StrCat(p.particle_id()), p.owner(), absl::StrCat(p.iteration()),
         reported ? FormatNumber(p.utility()) : "-",
         reported ? FormatNumber(p.best_utility()) : "-", absl::StrCat(p.restarts()),
         Ago(p.last_report_time(), now),
         // Audits (SPEC 12): claims disputed, and "+N" waiting for an auditor.
         absl::StrCat(p.disputed_claims(), p.pending_audits()
                                               ? absl::StrCat(" +", p.pending_audits(), " pending")
                                               : "")});
  }
  return RenderTable(
      {"ID", "OWNER", "ITER", "UTILITY", "BEST", "RESTARTS", "LAST REPORT", "DISPUTED"}, rows);
}

std::string RenderHistoryTable(const v1::GetHistoryResponse& history) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::HistoryEntry& e : history.entries()) {
    rows.push_back({absl::StrCat(e.utility_weight_version()), absl::StrCat(e.iteration()),
                    FormatNumber(e.global_best_utility()), FormatNumber(e.global_worst_utility()),
                    FormatNumber(e.mean_utility()), FormatNumber(e.step_length()),
                    absl::StrCat(e.restarts()), absl::StrCat(e.reports())});
  }
  return RenderTable({"WEIGHTS", "ITER", "G", "G_W", "MEAN", "STEP", "RESTARTS", "REPORTS"}, rows);
}

std::string RenderAuditedClaims(const v1::GetHistoryResponse& history) {
  if (history.audits().empty()) return "";
  std::vector<std::vector<std::string>> rows;
  auto scores = [](const google::protobuf::Map<std::string, double>& m) {
    std::map<std::string, double> sorted(m.begin(), m.end());
    std::vector<std::string> parts;
    for (const auto& [name, v] : sorted) parts.push_back(absl::StrCat(name, "=", FormatNumber(v)));
    return parts.empty() ? std::string("-") : absl::StrJoin(parts, " ");
  };
  for (const v1::AuditedClaim& c : history.audits()) {
    const char* verdict = c.verdict() == v1::AUDIT_CONFIRMED  ? "confirmed"
                          : c.verdict() == v1::AUDIT_DISPUTED ? "DISPUTED"
                                                              : "pending";
    rows.push_back({absl::StrCat(c.iteration()), absl::StrCat(c.particle_id()), c.reporter(),
                    c.candidate() ? "g candidate" : "sample", verdict, scores(c.claimed_scores()),
                    scores(c.audited_scores()), c.auditor().empty() ? "-" : c.auditor()});
  }
  return "\naudited claims\n" + RenderTable({"ITER", "PARTICLE", "REPORTER", "WHY", "VERDICT",
                                             "CLAIMED", "AUDITED", "AUDITOR"},
                                            rows);
}

std::string RenderHistoryCsv(const v1::GetHistoryResponse& history) {
  std::string out =
      "weight_version,iteration,global_best_utility,global_worst_utility,mean_utility,"
      "step_length,restarts,reports,closed_time\n";
  for (const v1::HistoryEntry& e : history.entries()) {
    // %.17g: CSV is for programs, which want the exact doubles back.
    absl::StrAppendFormat(&out, "%d,%d,%.17g,%.17g,%.17g,%.17g,%d,%d,%s\n",
                          e.utility_weight_version(), e.iteration(), e.global_best_utility(),
                          e.global_worst_utility(), e.mean_utility(), e.step_length(), e.restarts(),
                          e.reports(), CsvField(FormatUtcTime(FromProtoTime(e.closed_time()))));
  }
  return out;
}

std::string RenderHistorySvg(const std::string& swarm, const v1::GetHistoryResponse& history) {
  // g under every weight version (older ones dashed: the readings before a change, and the
  // re-readings of the past under each new version); g_w and mean under the latest.
  std::map<int, std::vector<const v1::HistoryEntry*>> by_version;
  for (const auto& e : history.entries()) by_version[e.utility_weight_version()].push_back(&e);
  static constexpr const char* kOlderColors[] = {"#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  std::vector<ChartSeries> series;
  std::vector<ChartMarker> markers;
  int last_iteration = -1;  // the last iteration read under an earlier version
  for (const auto& [version, entries] : by_version) {
    const bool latest = version == by_version.rbegin()->first;
    ChartSeries g{by_version.size() == 1 ? "g (best)" : absl::StrCat("g (weights v", version, ")"),
                  latest ? "#2ca02c" : kOlderColors[series.size() % 4],
                  {},
                  !latest};
    std::vector<const v1::HistoryEntry*> sorted = entries;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto* a, const auto* b) { return a->iteration() < b->iteration(); });
    for (const v1::HistoryEntry* e : sorted) {
      g.points.push_back({e->iteration(), e->global_best_utility()});
    }
    // The change to this version came after the last round read under the earlier ones.
    if (last_iteration >= 0) {
      markers.push_back({last_iteration + 0.5, absl::StrCat("weights v", version)});
    }
    for (const v1::HistoryEntry* e : sorted)
      last_iteration = std::max(last_iteration, e->iteration());
    series.push_back(std::move(g));
  }
  ChartSeries gw{"g_w (worst)", "#d62728", {}}, mean{"mean", "#1f77b4", {}};
  int version = 0;
  for (const v1::HistoryEntry* e : LatestReading(history)) {
    gw.points.push_back({e->iteration(), e->global_worst_utility()});
    mean.points.push_back({e->iteration(), e->mean_utility()});
    version = e->utility_weight_version();
  }
  series.push_back(std::move(mean));
  series.push_back(std::move(gw));
  const std::string weights =
      by_version.size() > 1 ? absl::StrCat("weights v", by_version.begin()->first, " -> v", version)
                            : absl::StrCat("weights v", version);
  return RenderSvgLineChart(
      absl::StrCat("swarm ", swarm, ": utility per iteration (", weights, ")"), "iteration",
      "utility", series, markers);
}

std::string RenderWeights(const v1::UtilityWeights& weights) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::UtilityComponent& c : weights.components()) {
    std::string range = "-";
    if (c.has_min_value() || c.has_max_value()) {
      range = absl::StrCat("[", c.has_min_value() ? FormatNumber(c.min_value()) : "", ", ",
                           c.has_max_value() ? FormatNumber(c.max_value()) : "", "]");
    }
    rows.push_back({c.name(),
                    c.direction() == v1::UtilityComponent::MINIMIZE ? "minimize" : "maximize",
                    FormatNumber(c.weight()), range});
  }
  std::string text = absl::StrCat("weight version ", weights.version(), "\n",
                                  RenderTable({"COMPONENT", "DIRECTION", "WEIGHT", "RANGE"}, rows));
  if (weights.has_scheduled()) {
    // Sorted by name, so the line is the same whatever the map's order.
    const std::map<std::string, double> next(weights.scheduled().weights().begin(),
                                             weights.scheduled().weights().end());
    std::string changes;
    for (const auto& [name, w] : next) absl::StrAppend(&changes, " ", name, "=", FormatNumber(w));
    absl::StrAppend(&text, "scheduled after iteration ", weights.scheduled().after_iteration(), ":",
                    changes, "\n");
  }
  return text;
}

std::string RenderClients(const v1::ListClientsResponse& clients, absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::ClientInfo& c : clients.clients()) {
    // Audits (SPEC 12): the share of audited claims confirmed, and how many were audited.
    const int audited = c.audits_confirmed() + c.audits_disputed();
    rows.push_back({c.identity(), c.role(), FormatUtcTime(FromProtoTime(c.first_seen())),
                    Ago(c.last_seen(), now), c.revoked() ? "yes" : "no",
                    audited == 0 ? "-"
                                 : absl::StrFormat("%.2f (%d/%d)", c.reputation(),
                                                   c.audits_confirmed(), audited),
                    c.quarantined() ? absl::StrCat("yes (", c.strikes(), " disputes)") : "no"});
  }
  return RenderTable(
      {"IDENTITY", "ROLE", "FIRST SEEN", "LAST SEEN", "REVOKED", "REPUTATION", "QUARANTINED"},
      rows);
}

}  // namespace wxp::admin
