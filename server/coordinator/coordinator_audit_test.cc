// Audits of reported scores (SPEC 12) through the coordinator: an honest swarm with an
// auditor (one that is often away, and a server killed in between) ends exactly as the
// in-process runner does without one; a lying agent never has a claim become g, and is
// quarantined after the policy's number of disputes.
#include <cmath>
#include <cstdio>
#include <map>
#include <regex>
#include <set>

#include "common/evaluator.h"
#include "common/runner.h"
#include "common/synthetic.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/testing/federation.h"

namespace wxp::server {
namespace {

using coordinator_testing::FakeAgent;
using coordinator_testing::FakeAuditor;
using coordinator_testing::Harness;
using coordinator_testing::JoinThreeExpertsAndStart;
using coordinator_testing::kAdmin;
using coordinator_testing::kDim;
using coordinator_testing::OracleOptions;
using coordinator_testing::Serialize;
using coordinator_testing::Spec;

// Candidates for g are always audited, a third of the other reports too. The synthetic
// evaluator is deterministic per (particle, iteration), so honest claims match exactly.
std::string AuditPolicy(int quarantine_after = 3) {
  return absl::StrCat("audit { enabled: true sample_rate: 0.34 tolerance { key: '",
                      kSyntheticComponent, "' value: 1e-6 } quarantine_after: ", quarantine_after,
                      " }");
}

std::string TempDb(const std::string& tag) {
  const std::string path = ::testing::TempDir() + "/audit_" + tag + ".db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  return path;
}

// (particle, iteration) -> utility of every "event=new_global_best" line of the server's log.
std::map<std::pair<int, int>, double> NewGlobalBests(const std::vector<std::string>& log) {
  static const std::regex kLine(
      R"(event=new_global_best .*particle=(\d+) iteration=(\d+) utility=(\S+))");
  std::map<std::pair<int, int>, double> out;
  for (const std::string& line : log) {
    std::smatch m;
    if (std::regex_search(line, m, kLine)) {
      out[{std::stoi(m[1]), std::stoi(m[2])}] = std::stod(m[3]);
    }
  }
  return out;
}

TEST(CoordinatorAuditTest, HonestSwarmWithAnAuditorEqualsTheRunnerWithoutOne) {
  // SQLite, restarted every few steps as after kill -9, so audits pending at a restart
  // must survive it; the auditor only comes by every third step (down in between).
  Harness h(TempDb("honest"));
  const auto experts = MakeRandomExperts(3, kDim, 11);
  SyntheticEvaluator eval(*MakeHiddenOptimum(experts, 11, 0.0005));
  ASSERT_TRUE(h.coordinator->CreateSwarm(kAdmin, Spec("eq", 5, AuditPolicy())).ok());
  FakeAgent a("firm-a", &h.coordinator, &h.blobs, &eval);
  FakeAgent b("firm-b", &h.coordinator, &h.blobs, &eval);
  FakeAuditor auditor("vendor", &h.coordinator, &h.blobs, &eval);
  JoinThreeExpertsAndStart("eq", a, b, experts);
  int audited = 0, waits_for_auditor = 0;
  for (int guard = 0; guard < 3000; ++guard) {
    if (guard % 7 == 6) h.Restart();
    bool progressed = false;
    const bool alive_a = a.Step("eq", &progressed);
    const bool alive_b = b.Step("eq", &progressed);
    if (!alive_a && !alive_b) break;
    if (!progressed) ++waits_for_auditor;
    if (guard % 3 == 2) audited += auditor.AuditAll();
  }
  audited += auditor.AuditAll();  // the last round's sample
  auto status = h.coordinator->GetSwarmStatus("eq");
  ASSERT_EQ(status->state(), wxp::v1::FINISHED);
  EXPECT_GT(audited, 5);
  EXPECT_GT(waits_for_auditor, 0);  // the auditor's absence was felt, as a delay
  for (wxp::v1::AuditVerdict v : auditor.verdicts()) EXPECT_EQ(v, wxp::v1::AUDIT_CONFIRMED);

  RunnerOptions o = OracleOptions(experts);
  auto oracle =
      RunSwarm(experts, *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}}), eval, o);
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  auto history = h.coordinator->GetHistory("eq");
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->entries_size(), static_cast<int>(oracle->history.size()));
  for (int k = 0; k < history->entries_size(); ++k) {
    EXPECT_EQ(history->entries(k).global_best_utility(), oracle->history[k].global_best_utility)
        << "iteration " << k;
    EXPECT_EQ(history->entries(k).global_worst_utility(), oracle->history[k].global_worst_utility);
    EXPECT_EQ(history->entries(k).restarts(), oracle->history[k].restarts) << k;
  }
  auto best = h.coordinator->Best("eq");
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(best->blob_id, Sha256Hex(Serialize(oracle->best)));  // identical bytes
  EXPECT_EQ(best->utility, oracle->best_utility);

  // Every claim is on record, decided, with who decided it; every g was confirmed first.
  ASSERT_EQ(history->audits_size(), audited);
  std::set<std::pair<int, int>> confirmed_candidates;
  for (const wxp::v1::AuditedClaim& c : history->audits()) {
    EXPECT_EQ(c.verdict(), wxp::v1::AUDIT_CONFIRMED);
    EXPECT_EQ(c.auditor(), "vendor");
    EXPECT_EQ(c.claimed_scores().at(kSyntheticComponent),
              c.audited_scores().at(kSyntheticComponent));
    if (c.candidate()) confirmed_candidates.insert({c.particle_id(), c.iteration()});
  }
  for (const auto& [g, utility] : NewGlobalBests(h.log)) {
    EXPECT_EQ(confirmed_candidates.count(g), 1u) << g.first << " " << g.second;
  }
  for (const char* name : {"firm-a", "firm-b"}) {
    auto c = h.store->GetClient(name);
    if (!c.ok()) continue;  // the coordinator alone records only audited reporters
    EXPECT_EQ(c->audits_disputed, 0) << name;
    EXPECT_FALSE(c->quarantined) << name;
  }
  EXPECT_EQ(*h.store->IntegrityCheck(), "ok");
}

TEST(CoordinatorAuditTest, ALiarsClaimNeverBecomesGAndItIsQuarantined) {
  constexpr int kQuarantineAfter = 2;
  Harness h;
  const auto experts = MakeRandomExperts(3, kDim, 11);
  SyntheticEvaluator eval(*MakeHiddenOptimum(experts, 11, 0.0005));
  // Short rounds: once the liar is refused, the deadline closes rounds without it.
  ASSERT_TRUE(h.coordinator
                  ->CreateSwarm(kAdmin, Spec("liar", 5,
                                             AuditPolicy(kQuarantineAfter) +
                                                 " quorum_count: 1 round_deadline_seconds: 1"))
                  .ok());
  FakeAgent a("firm-a", &h.coordinator, &h.blobs, &eval);
  FakeAgent liar("firm-b", &h.coordinator, &h.blobs, &eval);
  FakeAuditor auditor("vendor", &h.coordinator, &h.blobs, &eval);
  // The utility is a negative distance: halving it claims to be twice as close.
  liar.MultiplyScores(0.5);
  JoinThreeExpertsAndStart("liar", a, liar, experts);
  bool quarantined = false;
  for (int guard = 0; guard < 3000; ++guard) {
    bool progressed = false;
    const bool alive_a = a.Step("liar", &progressed);
    // The gatekeeper refuses a quarantined client's every call (gatekeeper_test); here the
    // liar simply stops calling.
    if (!quarantined) liar.Step("liar", &progressed);
    auditor.AuditAll();
    auto c = h.store->GetClient("firm-b");
    quarantined = c.ok() && c->quarantined;
    if (quarantined) {
      h.clock.Advance(absl::Seconds(2));
      ASSERT_TRUE(h.coordinator->Tick().ok());
    }
    if (!alive_a) break;
  }
  ASSERT_EQ(h.coordinator->GetSwarmStatus("liar")->state(), wxp::v1::FINISHED);
  auto liar_record = h.store->GetClient("firm-b");
  ASSERT_TRUE(liar_record.ok()) << liar_record.status();
  EXPECT_TRUE(liar_record->quarantined);
  // Its reports of one step are audited together: it may pass the threshold by more than one.
  const int strikes = liar_record->strikes;
  EXPECT_GE(strikes, kQuarantineAfter);
  EXPECT_EQ(liar_record->audits_confirmed, 0);

  auto history = h.coordinator->GetHistory("liar");
  ASSERT_TRUE(history.ok()) << history.status();
  std::map<std::pair<int, int>, double> disputed;  // -> the audited utility
  for (const wxp::v1::AuditedClaim& c : history->audits()) {
    if (c.reporter() == "firm-b") {
      EXPECT_EQ(c.verdict(), wxp::v1::AUDIT_DISPUTED);
    } else {
      EXPECT_EQ(c.verdict(), wxp::v1::AUDIT_CONFIRMED);
    }
    if (c.verdict() == wxp::v1::AUDIT_DISPUTED) {
      disputed[{c.particle_id(), c.iteration()}] = c.audited_scores().at(kSyntheticComponent);
    }
  }
  EXPECT_EQ(disputed.size(), static_cast<size_t>(strikes));
  // No disputed claim, and no claim of the liar's, was ever g.
  auto particles = h.coordinator->ListParticles("liar");
  ASSERT_TRUE(particles.ok());
  std::set<int> owned_by_liar;
  int disputed_shown = 0;
  for (const auto& p : particles->particles()) {
    if (p.owner() == "firm-b") owned_by_liar.insert(p.particle_id());
    disputed_shown += p.disputed_claims();
  }
  EXPECT_EQ(disputed_shown, strikes);
  for (const auto& [g, utility] : NewGlobalBests(h.log)) {
    auto d = disputed.find(g);
    if (d != disputed.end()) {
      // Only an initial position, which the pool must rank, counts with a disputed claim:
      // with the auditor's utility, never the claimed one.
      EXPECT_EQ(g.second, 0) << g.first;
      EXPECT_NEAR(utility, d->second, 1e-5 * std::fabs(d->second)) << g.first;
    }
    if (g.second > 0) {
      EXPECT_EQ(owned_by_liar.count(g.first), 0u) << g.first << " " << g.second;
    }
  }
  // The disputes and the quarantine are in the audit log.
  int disputes_logged = 0, quarantines_logged = 0;
  auto audit_log = h.store->ListAudit("liar");
  ASSERT_TRUE(audit_log.ok()) << audit_log.status();
  for (const auto& entry : *audit_log) {
    disputes_logged += entry.action == "audit disputed";
    quarantines_logged += entry.action == "quarantine client";
  }
  EXPECT_EQ(disputes_logged, strikes);
  EXPECT_EQ(quarantines_logged, 1);
}

// Auditor mistakes the server refuses; a failed audit decides nothing; a verdict repeated
// for a decided claim answers what was decided.
TEST(CoordinatorAuditTest, AuditReportsAreCheckedAndIdempotent) {
  Harness h;
  const auto experts = MakeRandomExperts(3, kDim, 11);
  SyntheticEvaluator eval(*MakeHiddenOptimum(experts, 11, 0.0005));
  ASSERT_TRUE(h.coordinator->CreateSwarm(kAdmin, Spec("chk", 5, AuditPolicy())).ok());
  FakeAgent a("firm-a", &h.coordinator, &h.blobs, &eval);
  a.Join("chk", experts[0], 6);
  a.Join("chk", experts[1], 6);
  a.Join("chk", experts[2], 6);
  a.Start("chk");
  const Caller vendor{"vendor", Role::kAuditor};
  auto task = h.coordinator->PullAuditTask(vendor, {});
  ASSERT_TRUE(task.ok()) << task.status();
  ASSERT_EQ(task->status(), wxp::v1::PullAuditTaskResponse::TASK);
  const wxp::v1::AuditTask t = task->task();
  EXPECT_EQ(t.iteration(), 0);  // the initial g is a candidate like any other
  // The initial pool waits for it.
  EXPECT_EQ(h.coordinator->GetSwarmStatus("chk")->iteration(), 0);
  wxp::v1::ReportAuditRequest r;
  r.set_swarm("chk");
  r.set_particle_id(t.particle_id());
  r.set_iteration(t.iteration());
  EXPECT_EQ(h.coordinator->ReportAudit(vendor, r).status().code(),
            absl::StatusCode::kInvalidArgument);  // no scores
  (*r.mutable_scores())[kSyntheticComponent] = std::nan("");
  EXPECT_EQ(h.coordinator->ReportAudit(vendor, r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r.clear_scores();
  r.set_evaluation_failed(true);
  r.set_failure_reason("out of memory");
  auto failed = h.coordinator->ReportAudit(vendor, r);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->verdict(), wxp::v1::AUDIT_PENDING);
  auto again = h.coordinator->PullAuditTask(vendor, {});
  EXPECT_EQ(again->task().particle_id(), t.particle_id());  // still the oldest
  r.set_evaluation_failed(false);
  r.clear_failure_reason();
  (*r.mutable_scores())[kSyntheticComponent] = t.claimed_scores().at(kSyntheticComponent);
  auto ok = h.coordinator->ReportAudit(vendor, r);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->verdict(), wxp::v1::AUDIT_CONFIRMED);
  EXPECT_FALSE(ok->already_decided());
  (*r.mutable_scores())[kSyntheticComponent] = 0;  // a change of mind changes nothing
  auto repeated = h.coordinator->ReportAudit(vendor, r);
  ASSERT_TRUE(repeated.ok()) << repeated.status();
  EXPECT_EQ(repeated->verdict(), wxp::v1::AUDIT_CONFIRMED);
  EXPECT_TRUE(repeated->already_decided());
  r.set_particle_id(99);
  EXPECT_EQ(h.coordinator->ReportAudit(vendor, r).status().code(), absl::StatusCode::kNotFound);
  wxp::v1::PullAuditTaskRequest other;
  other.set_swarm("nope");
  EXPECT_EQ(h.coordinator->PullAuditTask(vendor, other).status().code(),
            absl::StatusCode::kNotFound);
}

// Two components: "near", the synthetic utility, and "far", its negation, so new weights
// turn the ranking upside down. Every initial report made before the auditor comes is a
// candidate for g (none is in the engine yet), so the moves are made worse than every
// initial position: none of them is ever a candidate, and the worst are held as g_w,
// unaudited.
class NearFarEvaluator : public Evaluator {
 public:
  explicit NearFarEvaluator(SyntheticEvaluator* inner) : inner_(inner) {}
  absl::StatusOr<Scores> Evaluate(const EvaluationRequest& request) override {
    absl::StatusOr<Scores> s = inner_->Evaluate(request);
    if (!s.ok()) return s.status();
    const double near = s->at(kSyntheticComponent) - (request.iteration > 0 ? 1.0 : 0.0);
    return Scores{{"near", near}, {"far", -near}};
  }

 private:
  SyntheticEvaluator* inner_;
};

// A weight change re-ranks the stored evaluations (SPEC 4.2). Under audits g must still be a
// claim an auditor confirmed: the positions that were never candidates (an initial position
// that was not g, a g_w) were never audited, and new weights must not make one of them g.
TEST(CoordinatorAuditTest, NewWeightsMakeOnlyAConfirmedClaimG) {
  Harness h;
  const auto experts = MakeRandomExperts(3, kDim, 11);
  SyntheticEvaluator synthetic(*MakeHiddenOptimum(experts, 11, 0.0005));
  NearFarEvaluator eval(&synthetic);
  wxp::v1::SwarmSpec spec;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      "name: 'rr' min_experts: 3 utility { name: 'near' weight: 1 } utility { name: 'far' "
      "weight: 0 } hyperparameters { seed: 5 max_iterations: 12 patience: 4 } audit { enabled: "
      "true tolerance { key: 'near' value: 1e-6 } tolerance { key: 'far' value: 1e-6 } }",
      &spec));
  ASSERT_TRUE(h.coordinator->CreateSwarm(kAdmin, spec).ok());
  FakeAgent a("firm-a", &h.coordinator, &h.blobs, &eval);
  FakeAgent b("firm-b", &h.coordinator, &h.blobs, &eval);
  FakeAuditor auditor("vendor", &h.coordinator, &h.blobs, &eval);
  JoinThreeExpertsAndStart("rr", a, b, experts);
  for (int guard = 0; guard < 500 && h.coordinator->GetSwarmStatus("rr")->iteration() < 3;
       ++guard) {
    bool progressed = false;
    a.Step("rr", &progressed);
    b.Step("rr", &progressed);
    auditor.AuditAll();
  }
  ASSERT_EQ(h.coordinator->GetSwarmStatus("rr")->state(), wxp::v1::RUNNING);

  std::set<std::pair<int, int>> confirmed;
  auto history = h.coordinator->GetHistory("rr");
  ASSERT_TRUE(history.ok()) << history.status();
  for (const wxp::v1::AuditedClaim& c : history->audits()) {
    if (c.verdict() == wxp::v1::AUDIT_CONFIRMED) confirmed.insert({c.particle_id(), c.iteration()});
  }
  // What makes the test bite: under the new weights the best position the server holds
  // was never confirmed.
  auto evaluations = h.store->ListEvaluations("rr");
  ASSERT_TRUE(evaluations.ok()) << evaluations.status();
  std::pair<int, int> top{-1, -1};
  double best = -1e300;
  for (const store::EvaluationRecord& e : *evaluations) {
    if (e.failed || !e.blob_held || e.scores.at("far") <= best) continue;
    best = e.scores.at("far");
    top = {e.particle_id, e.iteration};
  }
  ASSERT_GE(top.first, 0);
  ASSERT_EQ(confirmed.count(top), 0u) << "particle " << top.first << " iteration " << top.second;

  ASSERT_TRUE(h.coordinator->SetUtilityWeights(kAdmin, "rr", {{"near", 0}, {"far", 1}}).ok());
  auto status = h.coordinator->GetSwarmStatus("rr");
  ASSERT_TRUE(status.ok()) << status.status();
  const std::pair<int, int> g{status->global_best().particle_id(),
                              status->global_best().iteration()};
  EXPECT_EQ(confirmed.count(g), 1u) << "g is particle " << g.first << " iteration " << g.second;
}

}  // namespace
}  // namespace wxp::server
