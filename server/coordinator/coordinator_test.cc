// The coordinator drives real Model Swarms: simulated agents (in-process, holding x, v, p
// locally as wxp-agent will) run a swarm through it, and the result must equal the
// in-process runner's for the same seed and experts — trajectory and final bytes.
#include "server/coordinator/coordinator.h"

#include <cstring>
#include <optional>

#include "common/adapter.h"
#include "common/runner.h"
#include "common/swarm_move.h"
#include "common/synthetic.h"
#include "common/testing/fake_clock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/coordinator/testing/federation.h"
#include "server/store/memory_store.h"
#include "server/store/sqlite_store.h"

namespace wxp::server {
namespace {

using coordinator_testing::FakeAgent;
using coordinator_testing::Harness;
using coordinator_testing::JoinThreeExpertsAndStart;
using coordinator_testing::kAdmin;
using coordinator_testing::kDim;
using coordinator_testing::OracleOptions;
using coordinator_testing::Serialize;
using coordinator_testing::Spec;

// Runs a 3-expert sync swarm through the coordinator (restarting the server every
// `restart_every` agent steps if > 0) and checks it against the in-process runner.
// Experts join in `join_order` (indices into the experts); firm-b contributes expert 1,
// firm-a the others.
void RunAndCompareWithRunner(Harness& h, int restart_every,
                             const std::vector<int>& join_order = {0, 1, 2}) {
  const auto experts = MakeRandomExperts(3, kDim, 11);
  const auto optimum = *MakeHiddenOptimum(experts, 11, 0.0005);
  SyntheticEvaluator eval(optimum);

  ASSERT_TRUE(h.coordinator->CreateSwarm(kAdmin, Spec("eq", 5)).ok());
  FakeAgent a("firm-a", &h.coordinator, &h.blobs, &eval);
  FakeAgent b("firm-b", &h.coordinator, &h.blobs, &eval);
  for (int e : join_order) (e == 1 ? b : a).Join("eq", experts[e], 3);
  ASSERT_EQ(h.coordinator->GetSwarmStatus("eq")->state(), wxp::v1::RUNNING);
  a.Start("eq");
  b.Start("eq");
  for (int guard = 0; guard < 1000; ++guard) {
    if (restart_every > 0 && guard % restart_every == restart_every - 1) h.Restart();
    bool progressed = false;
    const bool alive_a = a.Step("eq", &progressed);
    const bool alive_b = b.Step("eq", &progressed);
    if (!alive_a && !alive_b) break;
  }
  auto status = h.coordinator->GetSwarmStatus("eq");
  ASSERT_EQ(status->state(), wxp::v1::FINISHED);
  // A spec that names no space shows the one it runs in, resolved, and no coefficients.
  EXPECT_EQ(status->space(), wxp::v1::WEIGHTS);
  EXPECT_EQ(status->decoder(), wxp::v1::COEFFICIENT_DECODER_UNSPECIFIED);
  EXPECT_EQ(status->svd_rank(), 0);
  EXPECT_FALSE(status->per_module());
  EXPECT_EQ(status->expert_sharing(), wxp::v1::ALLOWED);
  EXPECT_EQ(status->coefficient_dimension(), 0);
  EXPECT_FALSE(status->global_best().blob_id().empty());
  EXPECT_EQ(status->global_best().alpha_size(), 0);
  EXPECT_EQ(status->global_worst().alpha_size(), 0);

  // The oracle: same experts, same seed, same evaluator.
  RunnerOptions o = OracleOptions(experts);
  auto utility = *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}});
  auto oracle = RunSwarm(experts, utility, eval, o);
  ASSERT_TRUE(oracle.ok());

  auto history = h.coordinator->GetHistory("eq");
  ASSERT_EQ(history->entries_size(), static_cast<int>(oracle->history.size()));
  for (int k = 0; k < history->entries_size(); ++k) {
    EXPECT_EQ(history->entries(k).global_best_utility(), oracle->history[k].global_best_utility)
        << "iteration " << k;
    EXPECT_EQ(history->entries(k).global_worst_utility(), oracle->history[k].global_worst_utility);
    EXPECT_EQ(history->entries(k).restarts(), oracle->history[k].restarts) << k;
  }
  EXPECT_EQ(status->termination_reason(), TerminationName(oracle->termination));
  auto best = h.coordinator->Best("eq");
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(best->blob_id, Sha256Hex(Serialize(oracle->best)));  // identical bytes
  EXPECT_EQ(best->utility, oracle->best_utility);
}

// The report an agent would resend for the stored evaluation `e` of `swarm`: the same
// particle, iteration, position and scores.
wxp::v1::ReportRequest RetryOf(const std::string& swarm, const store::EvaluationRecord& e) {
  wxp::v1::ReportRequest r;
  r.set_swarm(swarm);
  r.set_particle_id(e.particle_id);
  r.set_iteration(e.iteration);
  r.set_position_blob_id(e.blob_id);
  for (const auto& [name, v] : e.scores) (*r.mutable_scores())[name] = v;
  return r;
}

TEST(CoordinatorTest, FederatedSyncRunEqualsTheInProcessRunner) {
  Harness h;
  RunAndCompareWithRunner(h, 0);
}

// A weight change scheduled before the run (SetUtilityWeights after_iteration N) happens as
// round N closes, before any target of round N + 1, whatever the agents' timing: the run
// equals the runner's with the change at the start of iteration N + 1. The schedule is
// stored (a restart between it and its time keeps it), and refused once its round is past.
TEST(CoordinatorTest, ScheduledWeightChangeEqualsTheRunnersChange) {
  constexpr int kAfter = 3;
  const std::string path = ::testing::TempDir() + "/coordinator_scheduled.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  Harness h(path);
  const auto experts = MakeRandomExperts(3, kDim, 11);
  SyntheticEvaluator eval(*MakeHiddenOptimum(experts, 11, 0.0005));
  ASSERT_TRUE(h.coordinator->CreateSwarm(kAdmin, Spec("sched", 5)).ok());
  const std::map<std::string, double> doubled = {{kSyntheticComponent, 2.0}};
  auto scheduled = h.coordinator->SetUtilityWeights(kAdmin, "sched", doubled, kAfter);
  ASSERT_TRUE(scheduled.ok()) << scheduled.status();
  EXPECT_EQ(scheduled->version(), 1);
  h.Restart();
  EXPECT_EQ(h.coordinator->GetUtilityWeights("sched")->scheduled().after_iteration(), kAfter);

  FakeAgent a("firm-a", &h.coordinator, &h.blobs, &eval);
  FakeAgent b("firm-b", &h.coordinator, &h.blobs, &eval);
  JoinThreeExpertsAndStart("sched", a, b, experts);
  bool refused_late = false;
  for (int guard = 0; guard < 1000; ++guard) {
    bool progressed = false;
    const bool alive_a = a.Step("sched", &progressed);
    const bool alive_b = b.Step("sched", &progressed);
    if (!alive_a && !alive_b) break;
    auto status = h.coordinator->GetSwarmStatus("sched");
    if (!refused_late && status->state() == wxp::v1::RUNNING && status->iteration() > 1) {
      EXPECT_EQ(h.coordinator->SetUtilityWeights(kAdmin, "sched", doubled, 1).status().code(),
                absl::StatusCode::kFailedPrecondition);
      refused_late = true;
    }
  }
  EXPECT_TRUE(refused_late);
  auto status = h.coordinator->GetSwarmStatus("sched");
  ASSERT_EQ(status->state(), wxp::v1::FINISHED);
  EXPECT_EQ(status->utility_weight_version(), 2);
  auto weights = h.coordinator->GetUtilityWeights("sched");
  EXPECT_FALSE(weights->has_scheduled());
  EXPECT_EQ(weights->components(0).weight(), 2.0);
  EXPECT_EQ(h.coordinator->SetUtilityWeights(kAdmin, "sched", doubled, 20).status().code(),
            absl::StatusCode::kFailedPrecondition);  // over

  RunnerOptions o = OracleOptions(experts);
  o.utility_changes = {{kAfter + 1, doubled}};
  auto oracle =
      RunSwarm(experts, *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}}), eval, o);
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  // Each round's live reading (the version in force as it closed, and g then).
  std::map<int, std::pair<int, double>> live;
  auto history = h.coordinator->GetHistory("sched");
  ASSERT_TRUE(history.ok()) << history.status();
  for (const auto& e : history->entries()) {
    auto it = live.find(e.iteration());
    if (it == live.end() || e.utility_weight_version() < it->second.first) {
      live[e.iteration()] = {e.utility_weight_version(), e.global_best_utility()};
    }
  }
  ASSERT_EQ(live.size(), oracle->history.size());
  for (const IterationSummary& k : oracle->history) {
    EXPECT_EQ(live[k.iteration], std::make_pair(k.utility_version, k.global_best_utility))
        << "iteration " << k.iteration;
  }
  EXPECT_EQ(live[kAfter].first, 1);
  EXPECT_EQ(live[kAfter + 1].first, 2);
  auto best = h.coordinator->Best("sched");
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(best->blob_id, Sha256Hex(Serialize(oracle->best)));
  EXPECT_EQ(best->utility, oracle->best_utility);
  // The audit log says who scheduled it and that the server made it.
  bool by_admin = false, by_server = false;
  auto audit = h.store->ListAudit("sched");
  ASSERT_TRUE(audit.ok()) << audit.status();
  for (const auto& entry : *audit) {
    by_admin |= entry.action == "schedule utility weights" && entry.actor == kAdmin.name;
    by_server |= entry.action == "set utility weights" && entry.actor == "wxp-server";
  }
  EXPECT_TRUE(by_admin);
  EXPECT_TRUE(by_server);
}

// Metrics hear of every round as it closes, in order, with how long it was open.
TEST(CoordinatorTest, EveryClosedRoundIsToldOnce) {
  Harness h;
  std::vector<int> closed;
  Coordinator::Options o{h.store.get(), &h.blobs, &h.clock, 64, [](const std::string&) {}};
  o.on_round_closed = [&](const std::string& swarm, int iteration, double seconds) {
    EXPECT_EQ(swarm, "eq");
    EXPECT_GE(seconds, 0);
    closed.push_back(iteration);
  };
  h.coordinator.reset();
  h.coordinator = *Coordinator::Create(o);
  RunAndCompareWithRunner(h, 0);
  auto history = h.coordinator->GetHistory("eq");
  ASSERT_EQ(closed.size(), static_cast<size_t>(history->entries_size()));
  for (size_t k = 0; k < closed.size(); ++k) EXPECT_EQ(closed[k], static_cast<int>(k));
}

// SPEC 4 step 1: the pool is in a stable order. The same experts joining in another order
// give the same particles (positions and owners) and the same run.
TEST(CoordinatorTest, JoinOrderChangesNeitherThePoolNorTheResult) {
  std::vector<std::vector<store::ParticleRow>> pools;
  for (const std::vector<int>& order :
       {std::vector<int>{0, 1, 2}, std::vector<int>{2, 1, 0}, std::vector<int>{1, 2, 0}}) {
    Harness h;
    RunAndCompareWithRunner(h, 0, order);  // each run equals the one oracle
    auto rows = h.store->ListParticles("eq");
    ASSERT_TRUE(rows.ok()) << rows.status();
    pools.push_back(*rows);
  }
  for (size_t r = 1; r < pools.size(); ++r) {
    ASSERT_EQ(pools[r].size(), pools[0].size());
    for (size_t i = 0; i < pools[0].size(); ++i) {
      EXPECT_EQ(pools[r][i].initial_blob_id, pools[0][i].initial_blob_id) << r << " " << i;
      EXPECT_EQ(pools[r][i].owner, pools[0][i].owner) << r << " " << i;
    }
  }
  // Experts first, by blob id.
  EXPECT_LT(pools[0][0].initial_blob_id, pools[0][1].initial_blob_id);
  EXPECT_LT(pools[0][1].initial_blob_id, pools[0][2].initial_blob_id);
}

int AgentsOnline(Harness& h, const std::string& swarm) {
  auto status = h.coordinator->GetSwarmStatus(swarm);
  EXPECT_TRUE(status.ok()) << status.status();
  return status.ok() ? status->agents_online() : -1;
}

// "Online" means heard from within the window (60 s by default) on the coordinator's
// clock, after a restart too: a finished swarm's agents do not stay online for good.
TEST(CoordinatorTest, AgentsOnlineMeansHeardFromWithinTheWindow) {
  Harness h;
  const auto experts = MakeRandomExperts(3, kDim, 13);
  SyntheticEvaluator eval(*MakeHiddenOptimum(experts, 13, 0.0005));
  ASSERT_TRUE(h.coordinator->CreateSwarm(kAdmin, Spec("on", 5)).ok());
  FakeAgent a("firm-a", &h.coordinator, &h.blobs, &eval);
  FakeAgent b("firm-b", &h.coordinator, &h.blobs, &eval);
  EXPECT_EQ(AgentsOnline(h, "on"), 0);
  a.Join("on", experts[0], 3);
  b.Join("on", experts[1], 3);
  EXPECT_EQ(AgentsOnline(h, "on"), 2);
  h.clock.Advance(absl::Seconds(40));
  a.Join("on", experts[2], 3);  // the pool is built
  h.clock.Advance(absl::Seconds(20));
  EXPECT_EQ(AgentsOnline(h, "on"), 2);  // b: 60 s ago, still inside the window
  h.clock.Advance(absl::Seconds(1));
  EXPECT_EQ(AgentsOnline(h, "on"), 1);  // b: 61 s
  ASSERT_TRUE(h.coordinator->Heartbeat(b.caller(), "on").ok());
  EXPECT_EQ(AgentsOnline(h, "on"), 2);
  h.clock.Advance(absl::Seconds(61));
  EXPECT_EQ(AgentsOnline(h, "on"), 0);

  // Reports are contact; after a restart the stored report times stand in for it.
  a.Start("on");
  b.Start("on");
  EXPECT_EQ(AgentsOnline(h, "on"), 2);
  h.clock.Advance(absl::Seconds(10));
  h.Restart();
  EXPECT_EQ(AgentsOnline(h, "on"), 2);
  h.clock.Advance(absl::Seconds(55));
  EXPECT_EQ(AgentsOnline(h, "on"), 0);

  for (int guard = 0; guard < 1000; ++guard) {
    bool progressed = false;
    const bool alive_a = a.Step("on", &progressed);
    const bool alive_b = b.Step("on", &progressed);
    if (!alive_a && !alive_b) break;
  }
  ASSERT_EQ(h.coordinator->GetSwarmStatus("on")->state(), wxp::v1::FINISHED);
  EXPECT_EQ(AgentsOnline(h, "on"), 2);
  // Every agent stopped; sixteen minutes later, and after a restart, none is online.
  h.clock.Advance(absl::Minutes(16));
  EXPECT_EQ(AgentsOnline(h, "on"), 0);
  h.Restart();
  EXPECT_EQ(AgentsOnline(h, "on"), 0);
}

TEST(CoordinatorTest, ServerRestartsOnSqliteLoseNothingAndChangeNothing) {
  const std::string path = ::testing::TempDir() + "/coordinator_restart.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  Harness h(path);
  RunAndCompareWithRunner(h, 2);  // a restart every other step of the agents
  EXPECT_EQ(*h.store->IntegrityCheck(), "ok");
}

TEST(CoordinatorTest, AsyncRunFinishesAndImproves) {
  const auto experts = MakeRandomExperts(3, kDim, 21);
  const auto optimum = *MakeHiddenOptimum(experts, 21, 0.0005);
  SyntheticEvaluator eval(optimum);
  Harness h;
  ASSERT_TRUE(h.coordinator->CreateSwarm(kAdmin, Spec("as", 9, "mode: ASYNC")).ok());
  FakeAgent a("firm-a", &h.coordinator, &h.blobs, &eval);
  FakeAgent b("firm-b", &h.coordinator, &h.blobs, &eval);
  a.Join("as", experts[0], 4);
  b.Join("as", experts[1], 4);
  b.Join("as", experts[2], 4);
  a.Start("as");
  b.Start("as");
  // Agent a runs three steps for every one of b's: no barrier holds it back.
  for (int guard = 0; guard < 1000; ++guard) {
    bool progressed = false;
    bool alive = false;
    for (int j = 0; j < 3; ++j) alive |= a.Step("as", &progressed);
    alive |= b.Step("as", &progressed);
    if (!alive) break;
  }
  auto status = h.coordinator->GetSwarmStatus("as");
  EXPECT_EQ(status->state(), wxp::v1::FINISHED);
  auto history = h.coordinator->GetHistory("as");
  ASSERT_GE(history->entries_size(), 3);
  for (int k = 1; k < history->entries_size(); ++k) {
    EXPECT_GE(history->entries(k).global_best_utility(),
              history->entries(k - 1).global_best_utility());
  }
  EXPECT_GT(status->global_best().utility(), history->entries(0).global_best_utility());
}

// Memory must not grow with the number of reports: the coordinator keeps only recent
// evaluations, and what it let go of still answers from the store (a late identical retry,
// a re-weighting of the utility, a restart).
TEST(CoordinatorTest, LongRunKeepsOnlyRecentEvaluationsInMemory) {
  const std::string path = ::testing::TempDir() + "/coordinator_long.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  Harness h(path);
  const auto experts = MakeRandomExperts(3, kDim, 31);
  SyntheticEvaluator eval(*MakeHiddenOptimum(experts, 31, 0.0005));
  wxp::v1::SwarmSpec spec = Spec("long", 4, "mode: ASYNC");
  spec.mutable_hyperparameters()->set_max_iterations(80);
  spec.mutable_hyperparameters()->set_patience(80);
  ASSERT_TRUE(h.coordinator->CreateSwarm(kAdmin, spec).ok());
  FakeAgent a("firm-a", &h.coordinator, &h.blobs, &eval);
  a.Join("long", experts[0], 8);
  a.Join("long", experts[1], 8);
  a.Join("long", experts[2], 8);
  a.Start("long");
  const int pool = h.coordinator->GetSwarmStatus("long")->particles();
  const size_t bound = 4 * static_cast<size_t>(pool) + 64;
  bool reweighted = false;
  for (int guard = 0; guard < 1000; ++guard) {
    bool progressed = false;
    if (!a.Step("long", &progressed)) break;
    EXPECT_LE(*h.coordinator->EvaluationsInMemory("long"), bound);
    if (!reweighted && h.coordinator->GetSwarmStatus("long")->iteration() >= 40) {
      ASSERT_TRUE(
          h.coordinator->SetUtilityWeights(kAdmin, "long", {{kSyntheticComponent, 2.0}}).ok());
      reweighted = true;
    }
  }
  ASSERT_TRUE(reweighted);
  EXPECT_EQ(h.coordinator->GetSwarmStatus("long")->state(), wxp::v1::FINISHED);
  EXPECT_GE(h.store->ListEvaluations("long")->size(), 80u * pool);

  // A late identical retry of an early report is still acknowledged, a changed one refused.
  auto early = h.store->GetEvaluation("long", 0, 1);
  ASSERT_TRUE(early.ok()) << early.status();
  wxp::v1::ReportRequest r = RetryOf("long", *early);
  auto again = h.coordinator->Report(a.caller(), r);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate());
  (*r.mutable_scores())[kSyntheticComponent] += 1;
  EXPECT_EQ(h.coordinator->Report(a.caller(), r).status().code(), absl::StatusCode::kAlreadyExists);

  h.Restart();
  EXPECT_LE(*h.coordinator->EvaluationsInMemory("long"), bound);
  auto best = h.coordinator->Best("long");
  ASSERT_TRUE(best.ok()) << best.status();
}

// A report whose local training failed (SPEC 4.4) is an ordinary report to the search, and
// one log line with the agent's reason, written once: a retried report is not logged again.
TEST(CoordinatorTest, FailedLocalTrainingIsLoggedOncePerReport) {
  Harness h;
  const auto experts = MakeRandomExperts(3, kDim, 11);
  SyntheticEvaluator eval(*MakeHiddenOptimum(experts, 11, 0.0005));
  ASSERT_TRUE(h.coordinator->CreateSwarm(kAdmin, Spec("lt", 5)).ok());
  FakeAgent a("firm-a", &h.coordinator, &h.blobs, &eval);
  for (const auto& e : experts) a.Join("lt", e, 8);
  a.Start("lt");
  a.FailTrainings("`train.sh` exited with status 1: \"no GPU\"\nbye");
  bool progressed = false;
  for (int i = 0; i < 3; ++i) a.Step("lt", &progressed);
  auto count = [&] {
    int n = 0;
    for (const std::string& line : h.log) {
      if (line.rfind("event=local_training_failed swarm=lt ", 0) != 0) continue;
      ++n;
      // One line: the reason's quotes and line break are escaped.
      EXPECT_NE(line.find("agent=firm-a reason=\"`train.sh` exited with status 1: "
                          "\\\"no GPU\\\"\\nbye\""),
                std::string::npos)
          << line;
    }
    return n;
  };
  int trained_reports = 0;
  const auto evaluations = h.store->ListEvaluations("lt");  // kept: the loop borrows it
  ASSERT_TRUE(evaluations.ok()) << evaluations.status();
  for (const auto& e : *evaluations) trained_reports += e.iteration > 0;
  ASSERT_GT(trained_reports, 0);
  EXPECT_EQ(count(), trained_reports);

  // The retry of a stored report is a duplicate: no second line.
  auto stored = h.store->GetEvaluation("lt", 0, 1);
  ASSERT_TRUE(stored.ok()) << stored.status();
  wxp::v1::ReportRequest r = RetryOf("lt", *stored);
  r.set_training_failed(true);
  r.set_training_failure_reason("again");
  auto again = h.coordinator->Report(a.caller(), r);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate());
  EXPECT_EQ(count(), trained_reports);
}

// Local training (SPEC 4.4) reaches the agents with the assignment, before and after the
// pool exists, and shows in the status; a swarm without it sends none.
TEST(CoordinatorTest, LocalTrainingReachesAgentsAndStatus) {
  Harness h;
  ASSERT_TRUE(h.coordinator
                  ->CreateSwarm(kAdmin, Spec("lt", 5,
                                             "local_training { every_k: 2 steps: 3 "
                                             "learning_rate: 0.25 batch: 8 }"))
                  .ok());
  ASSERT_TRUE(h.coordinator->CreateSwarm(kAdmin, Spec("plain", 5)).ok());
  const Caller agent{"firm-a", Role::kAgent};
  auto pending = h.coordinator->GetAssignment(agent, "lt");
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_EQ(pending->status(), wxp::v1::GetAssignmentResponse::WAIT);
  EXPECT_EQ(pending->local_training().every_k(), 2);
  EXPECT_EQ(pending->local_training().steps(), 3);
  EXPECT_EQ(pending->local_training().learning_rate(), 0.25);
  EXPECT_EQ(pending->local_training().batch(), 8);
  auto status = h.coordinator->GetSwarmStatus("lt");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->local_training().SerializeAsString(),
            pending->local_training().SerializeAsString());
  auto plain = h.coordinator->GetAssignment(agent, "plain");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->has_local_training());
  EXPECT_FALSE(h.coordinator->GetSwarmStatus("plain")->has_local_training());
}

}  // namespace
}  // namespace wxp::server
