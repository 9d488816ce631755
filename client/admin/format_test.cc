#include "client/admin/format.h"

#include "absl/time/clock.h"
#include "client/admin/views.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace wxp::admin {
namespace {

int CountOf(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(FormatTest, TableAlignsColumnsByDisplayWidth) {
  const std::string t = RenderTable({"NAME", "G"}, {{"a", "▁█"}, {"longer", "1"}, {"x"}});
  EXPECT_EQ(t,
            "NAME    G\n"
            "a       ▁█\n"
            "longer  1\n"
            "x\n");
  EXPECT_EQ(DisplayWidth("▁▂▃"), 3u);
  EXPECT_EQ(DisplayWidth("abc"), 3u);
}

TEST(FormatTest, SparklineSpansLowestToHighest) {
  EXPECT_EQ(Sparkline({0, 1, 2, 3, 4, 5, 6, 7}), "▁▂▃▄▅▆▇█");
  EXPECT_EQ(Sparkline({-3, 5}), "▁█");
  EXPECT_EQ(Sparkline({2, 2, 2}), "▁▁▁");
  EXPECT_EQ(Sparkline({1, NAN, 2}), "▁ █");
  EXPECT_EQ(Sparkline({}), "");
  // Resampled to the width, keeping both ends.
  std::vector<double> ramp;
  for (int i = 0; i < 100; ++i) ramp.push_back(i);
  const std::string s = Sparkline(ramp, 10);
  EXPECT_EQ(DisplayWidth(s), 10u);
  EXPECT_EQ(s.substr(0, 3), "▁");
  EXPECT_EQ(s.substr(s.size() - 3), "█");
}

TEST(FormatTest, NumbersAgesTimesAndCsv) {
  EXPECT_EQ(FormatNumber(0.123456789), "0.123457");
  EXPECT_EQ(FormatNumber(NAN), "-");
  EXPECT_EQ(FormatAge(absl::Seconds(42)), "42s");
  EXPECT_EQ(FormatAge(absl::Seconds(187)), "3m07s");
  EXPECT_EQ(FormatAge(absl::Hours(5) + absl::Minutes(2)), "5h02m");
  EXPECT_EQ(FormatAge(absl::Hours(51)), "2d03h");
  EXPECT_EQ(FormatAge(-absl::Seconds(3)), "0s");
  EXPECT_EQ(FormatAge(absl::InfiniteDuration()), "-");
  EXPECT_EQ(FormatUtcTime(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatUtcTime(absl::InfinitePast()), "-");
  EXPECT_EQ(FormatCoefficients({0.5f, -0.125f, 1.0f}), "[0.5, -0.125, 1]");
  EXPECT_EQ(FormatCoefficients({0.123456f, 1e-7f, -2e-5f, 1234.5678f}), "[0.1235, 0, 0, 1235]");
  EXPECT_EQ(FormatCoefficients({1, 2, 3, 4}, 2), "[1, 2, … (4 values)]");
  EXPECT_EQ(FormatCoefficients({}), "[]");
  EXPECT_EQ(CsvField("plain"), "plain");
  EXPECT_EQ(CsvField("a,\"b\""), "\"a,\"\"b\"\"\"");
}

TEST(FormatTest, SvgChartIsSelfContainedWithAxesAndLegend) {
  const std::string svg = RenderSvgLineChart("t<1>", "iteration", "utility",
                                             {{"g", "#00ff00", {{0, -1}, {1, -0.5}, {2, -0.25}}},
                                              {"one", "red", {{1, -0.7}}},
                                              {"empty", "blue", {}}});
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("t&lt;1&gt;"), std::string::npos) << "title is escaped";
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("<circle"), std::string::npos) << "a single point is still drawn";
  EXPECT_NE(svg.find(">iteration</text>"), std::string::npos);
  EXPECT_NE(svg.find(">utility</text>"), std::string::npos);
  EXPECT_NE(svg.find(">g</text>"), std::string::npos) << "legend";
  EXPECT_NE(svg.find(">empty</text>"), std::string::npos);
  EXPECT_EQ(svg.find("script"), std::string::npos);
  EXPECT_EQ(svg.find("href"), std::string::npos);
  EXPECT_EQ(svg.find(">0.5</text>"), std::string::npos) << "whole iterations get whole ticks";
  EXPECT_NE(svg.find(">1</text>"), std::string::npos);
  // A chart of nothing is still a valid document.
  EXPECT_NE(RenderSvgLineChart("", "", "", {}).find("</svg>"), std::string::npos);
}

template <typename T>
T Parse(const std::string& text) {
  T m;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &m)) << text;
  return m;
}

TEST(ViewsTest, StatusShowsProgressAndSparkline) {
  const auto s = Parse<v1::SwarmStatus>(
      "name: 'q4' state: FINISHED termination_reason: 'patience' iteration: 7 "
      "step_length: 0.3 global_best { particle_id: 2 iteration: 5 utility: -0.25 } "
      "global_worst { particle_id: 0 iteration: 0 utility: -2 } particles: 6 "
      "particles_live: 5 particles_stale: 1 agents_online: 2 experts_joined: 3 min_experts: 3 "
      "last_round_time { seconds: 1000 } utility_weight_version: 2 mode: SYNC");
  const std::string text = RenderSwarmStatus(s, {-1, -0.5, -0.25}, absl::FromUnixSeconds(1065));
  EXPECT_NE(text.find("FINISHED (patience)"), std::string::npos) << text;
  EXPECT_NE(text.find("-0.25  (particle 2, iteration 5)"), std::string::npos) << text;
  EXPECT_NE(text.find("6 (live 5, stale 1)"), std::string::npos) << text;
  EXPECT_NE(text.find("agents online    2"), std::string::npos) << text;
  EXPECT_NE(text.find("1970-01-01T00:16:40Z (1m05s ago)"), std::string::npos) << text;
  EXPECT_NE(text.find("▁▆█  -1 -> -0.25"), std::string::npos) << text;
  // No space fields (a WEIGHTS swarm, or a server that predates them): WEIGHTS, no alpha.
  EXPECT_NE(text.find("\nspace            WEIGHTS\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("g alpha"), std::string::npos) << text;
  EXPECT_NE(text.find("\nlocal training   off\n"), std::string::npos) << text;
  const std::string trained = RenderSwarmStatus(
      Parse<v1::SwarmStatus>(
          "name: 'w' local_training { every_k: 2 steps: 10 learning_rate: 0.005 batch: 64 }"),
      {}, absl::Now());
  EXPECT_NE(trained.find("\nlocal training   every 2 iterations: 10 steps, lr 0.005, batch 64\n"),
            std::string::npos)
      << trained;
  const std::string forbidden = RenderSwarmStatus(
      Parse<v1::SwarmStatus>("name: 'w' space: WEIGHTS expert_sharing: FORBIDDEN"), {},
      absl::Now());
  EXPECT_NE(forbidden.find("\nspace            WEIGHTS (expert sharing forbidden)\n"),
            std::string::npos)
      << forbidden;
  // Before the pool exists nothing pretends to be known.
  const std::string pending = RenderSwarmStatus(
      Parse<v1::SwarmStatus>("name: 'p' state: PENDING_EXPERTS global_best { particle_id: -1 }"),
      {}, absl::Now());
  EXPECT_NE(pending.find("g utility        -\n"), std::string::npos) << pending;
  EXPECT_EQ(pending.find("g history"), std::string::npos);
}

TEST(ViewsTest, StatusShowsTheCoefficientSpaceAndGsAlpha) {
  const auto s = Parse<v1::SwarmStatus>(
      "name: 'c' state: RUNNING mode: SYNC iteration: 2 space: EXPERT_COEFFICIENTS "
      "decoder: LORA_PRODUCT_SVD svd_rank: 8 per_module: true expert_sharing: ALLOWED "
      "coefficient_dimension: 15 global_best { particle_id: 1 iteration: 2 utility: 0.5 "
      "alpha: [0.25, -0.0312345, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5] }");
  const std::string text = RenderSwarmStatus(s, {}, absl::Now());
  EXPECT_NE(text.find("\nspace            EXPERT_COEFFICIENTS (decoder LORA_PRODUCT_SVD, svd "
                      "rank 8, per module, dimension 15, experts shared)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\ng alpha          [0.25, -0.03123, 1, 0, 0, 0, 0, 0, … (15 values)]\n"),
            std::string::npos)
      << text;
  // The line order people know stays: mode, then space, then iteration; g alpha after g.
  EXPECT_LT(text.find("\nmode "), text.find("\nspace "));
  EXPECT_LT(text.find("\nspace "), text.find("\niteration "));
  EXPECT_LT(text.find("\ng utility "), text.find("\ng alpha "));
  EXPECT_LT(text.find("\ng alpha "), text.find("\ng_w utility "));
  // Before the pool: no dimension yet, and no g.
  const std::string pending = RenderSwarmStatus(
      Parse<v1::SwarmStatus>("name: 'p' state: PENDING_EXPERTS space: EXPERT_COEFFICIENTS "
                             "decoder: LORA_PRODUCT expert_sharing: ALLOWED "
                             "global_best { particle_id: -1 }"),
      {}, absl::Now());
  EXPECT_NE(pending.find("\nspace            EXPERT_COEFFICIENTS (decoder LORA_PRODUCT, "
                         "experts shared)\n"),
            std::string::npos)
      << pending;
  EXPECT_EQ(pending.find("g alpha"), std::string::npos) << pending;
}

TEST(ViewsTest, HistoryUsesTheLatestWeightVersionForCurves) {
  const auto h = Parse<v1::GetHistoryResponse>(
      "entries { iteration: 0 global_best_utility: 1 global_worst_utility: 0 mean_utility: 0.5 "
      "utility_weight_version: 1 } "
      "entries { iteration: 1 global_best_utility: 2 utility_weight_version: 1 } "
      "entries { iteration: 1 global_best_utility: 20 utility_weight_version: 2 } "
      "entries { iteration: 0 global_best_utility: 10 utility_weight_version: 2 }");
  EXPECT_EQ(GlobalBestHistory(h), (std::vector<double>{10, 20}));
  const std::string csv = RenderHistoryCsv(h);
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "weight_version,iteration,global_best_utility,global_worst_utility,mean_utility,"
            "step_length,restarts,reports,closed_time");
  EXPECT_NE(csv.find("\n1,0,1,0,0.5,0,0,0,-\n"), std::string::npos) << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5);
  const std::string table = RenderHistoryTable(h);
  EXPECT_EQ(table.rfind("WEIGHTS  ITER  G", 0), 0u) << table;
  const std::string svg = RenderHistorySvg("q4", h);
  EXPECT_NE(svg.find("(weights v1 -&gt; v2)"), std::string::npos) << svg;
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 10, true);
  // Both readings of g, the older dashed, and a marker after iteration 1 (the last read
  // under v1), halfway to 2.
  EXPECT_NE(svg.find(">g (weights v1)</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">g (weights v2)</text>"), std::string::npos) << svg;
  EXPECT_EQ(CountOf(svg, "<polyline"), 4) << "g v1, g v2, mean, g_w";
  EXPECT_EQ(CountOf(svg,
                    "<polyline fill=\"none\" stroke=\"#9467bd\" stroke-width=\"2\" "
                    "stroke-dasharray"),
            1)
      << svg;
  EXPECT_EQ(CountOf(svg, ">weights v2</text>"), 1) << svg;
  EXPECT_EQ(CountOf(svg, "stroke-dasharray=\"2,3\""), 1) << "one marker";

  // One version: one g, no marker, the legend as it always was.
  const auto one = Parse<v1::GetHistoryResponse>(
      "entries { iteration: 0 global_best_utility: 1 utility_weight_version: 1 } "
      "entries { iteration: 1 global_best_utility: 2 utility_weight_version: 1 }");
  const std::string plain = RenderHistorySvg("q5", one);
  EXPECT_NE(plain.find(">g (best)</text>"), std::string::npos);
  EXPECT_EQ(CountOf(plain, "<polyline"), 3);
  EXPECT_EQ(plain.find("stroke-dasharray"), std::string::npos);
}

TEST(ViewsTest, ParticlesWeightsAndClientsTables) {
  const std::string p =
      RenderParticles(Parse<v1::ListParticlesResponse>(
                          "particles { particle_id: 0 owner: 'firm-a' iteration: 3 utility: -0.5 "
                          "best_utility: -0.25 restarts: 1 last_report_time { seconds: 100 } } "
                          "particles { particle_id: 1 owner: 'firm-b' iteration: -1 }"),
                      absl::FromUnixSeconds(130));
  EXPECT_NE(p.find("0   firm-a  3     -0.5     -0.25  1         30s"), std::string::npos) << p;
  EXPECT_NE(p.find("1   firm-b  -1    -        -      0         -"), std::string::npos) << p;
  const std::string w = RenderWeights(Parse<v1::UtilityWeights>(
      "version: 3 components { name: 'acc' direction: MAXIMIZE weight: 1 min_value: 0 "
      "max_value: 1 } components { name: 'ppl' direction: MINIMIZE weight: 0.01 }"));
  EXPECT_NE(w.find("weight version 3"), std::string::npos) << w;
  EXPECT_NE(w.find("acc        maximize   1       [0, 1]"), std::string::npos) << w;
  EXPECT_NE(w.find("ppl        minimize   0.01    -"), std::string::npos) << w;
  EXPECT_EQ(w.find("scheduled"), std::string::npos) << w;
  const std::string scheduled = RenderWeights(
      Parse<v1::UtilityWeights>("version: 1 components { name: 'acc' weight: 1 } "
                                "scheduled { after_iteration: 4 weights { key: 'ppl' value: 2 } "
                                "weights { key: 'acc' value: 0 } }"));
  EXPECT_NE(scheduled.find("\nscheduled after iteration 4: acc=0 ppl=2\n"), std::string::npos)
      << scheduled;
  const std::string c = RenderClients(
      Parse<v1::ListClientsResponse>("clients { identity: 'firm-a' role: 'agent' revoked: true "
                                     "first_seen { seconds: 0 nanos: 1 } }"),
      absl::Now());
  EXPECT_NE(c.find("firm-a    agent  1970-01-01T00:00:00Z  -          yes"), std::string::npos)
      << c;
  // Audits (SPEC 12): reputation with what it rests on, and a quarantine with its strikes.
  const std::string audited = RenderClients(
      Parse<v1::ListClientsResponse>(
          "clients { identity: 'liar' role: 'agent' audits_confirmed: 1 audits_disputed: 3 "
          "strikes: 3 reputation: 0.25 quarantined: true } "
          "clients { identity: 'new' role: 'agent' }"),
      absl::Now());
  EXPECT_NE(audited.find("0.25 (1/4)  yes (3 disputes)"), std::string::npos) << audited;
  EXPECT_NE(audited.find("QUARANTINED"), std::string::npos) << audited;
  const std::string claims = RenderAuditedClaims(Parse<v1::GetHistoryResponse>(
      "audits { iteration: 2 particle_id: 1 reporter: 'liar' candidate: true "
      "verdict: AUDIT_DISPUTED claimed_scores { key: 'acc' value: 0.9 } "
      "audited_scores { key: 'acc' value: 0.3 } auditor: 'vendor' }"));
  EXPECT_NE(claims.find("liar      g candidate  DISPUTED  acc=0.9  acc=0.3  vendor"),
            std::string::npos)
      << claims;
  EXPECT_EQ(RenderAuditedClaims(v1::GetHistoryResponse()), "");
}

}  // namespace
}  // namespace wxp::admin
