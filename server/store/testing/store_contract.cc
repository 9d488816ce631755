#include "server/store/testing/store_contract.h"

#include <limits>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace wxp::store::testing {

void StoreContractTest::SetUp() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string tag = info->name();
  for (char& c : tag) c = c == '/' ? '_' : c;  // parameterised names contain '/'
  store_ = GetParam().make(tag);
  ASSERT_NE(store_, nullptr);
}

SwarmRecord Swarm(const std::string& name) {
  SwarmRecord s;
  s.name = name;
  s.spec = std::string("spec\0bytes", 10);
  s.state = SwarmState::kPendingExperts;
  s.created_ms = 1000;
  s.utility = "weights-v1";
  return s;
}

AuditRecord Audit(const std::string& swarm, const std::string& action) {
  return {5, "admin-1", action, swarm, "detail"};
}

ParticleRow Particle(int id, const std::string& owner) {
  ParticleRow p;
  p.particle_id = id;
  p.owner = owner;
  p.initial_blob_id = std::string(64, 'a');
  p.engine.evaluated = true;
  p.engine.utility = 0.5 + id;
  p.engine.best_utility = 0.75;
  p.engine.personal_best = {id, 2};
  p.engine.stale_iterations = 1;
  p.engine.cooldown = 2;
  p.engine.restart_at_started = true;
  return p;
}

EvaluationRecord Eval(int particle, int iteration, double score) {
  EvaluationRecord e;
  e.particle_id = particle;
  e.iteration = iteration;
  e.blob_id = std::string(64, 'b');
  e.scores = {{"acc", score}, {"ppl", 1.0 / 3.0}};
  e.utility = score;
  e.time_ms = 77;
  return e;
}

namespace {

TEST_P(StoreContractTest, CreateGetListSwarms) {
  ASSERT_TRUE(store_->CreateSwarm(Swarm("b"), Audit("b", "create")).ok());
  ASSERT_TRUE(store_->CreateSwarm(Swarm("a"), Audit("a", "create")).ok());
  EXPECT_EQ(store_->CreateSwarm(Swarm("a"), Audit("a", "create")).code(),
            absl::StatusCode::kAlreadyExists);
  auto a = store_->GetSwarm("a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, Swarm("a"));
  EXPECT_EQ(store_->GetSwarm("zzz").status().code(), absl::StatusCode::kNotFound);
  auto all = store_->ListSwarms();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "a");  // ordered by name
  auto audit = store_->ListAudit("a");
  ASSERT_EQ(audit->size(), 1u);  // the duplicate create wrote nothing
  EXPECT_EQ((*audit)[0], Audit("a", "create"));
}

TEST_P(StoreContractTest, ApplyWritesEverythingItCarries) {
  ASSERT_TRUE(store_->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  SwarmUpdate u;
  u.swarm = "s";
  SwarmRecord row = Swarm("s");
  row.state = SwarmState::kRunning;
  row.global_best = {1, 3};
  row.global_best_utility = 0.9;
  row.utility_version = 2;
  row.open_round = 4;
  row.round_best = {1, 2};
  row.round_best_utility = 0.8;
  row.round_worst = {0, 0};
  row.round_worst_utility = -3;
  u.swarm_row = row;
  u.particles = {Particle(0, "firm-a"), Particle(1, "firm-b")};
  u.experts = {{0, "firm-a", std::string(64, 'c'), 10, 2, R"({"r": 8})"}};
  u.evaluation = Eval(1, 3, 0.9);
  u.history = {{3, 2, 0.9, 0.1, 0.5, 0.45, 1, 8, 99}};
  u.audit = {Audit("s", "pool built")};
  u.blob_refs = {{std::string(64, 'c'), 123, 0}};
  ASSERT_TRUE(store_->Apply(u).ok());

  EXPECT_EQ(*store_->GetSwarm("s"), row);
  auto particles = store_->ListParticles("s");
  ASSERT_EQ(particles->size(), 2u);
  EXPECT_EQ((*particles)[1], Particle(1, "firm-b"));
  EXPECT_EQ((*store_->ListExperts("s"))[0],
            (ExpertRecord{0, "firm-a", std::string(64, 'c'), 10, 2, R"({"r": 8})"}));
  auto e = store_->GetEvaluation("s", 1, 3);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(*e, Eval(1, 3, 0.9));  // scores survive exactly, 1/3 included
  EXPECT_EQ((*store_->ListHistory("s"))[0].reports, 8);
  EXPECT_EQ(store_->ListAudit("s")->size(), 2u);
  auto blobs = store_->ListBlobs();
  ASSERT_EQ(blobs->size(), 1u);
  EXPECT_EQ((*blobs)[0], (BlobRecord{std::string(64, 'c'), 123, 1}));
}

TEST_P(StoreContractTest, FailedApplyChangesNothing) {
  ASSERT_TRUE(store_->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  SwarmUpdate first;
  first.swarm = "s";
  first.evaluation = Eval(0, 1, 0.5);
  ASSERT_TRUE(store_->Apply(first).ok());

  // A duplicate evaluation, carried with other changes: all of it must be refused.
  SwarmUpdate dup;
  dup.swarm = "s";
  SwarmRecord row = Swarm("s");
  row.state = SwarmState::kFinished;
  dup.swarm_row = row;
  dup.particles = {Particle(0, "x")};
  dup.audit = {Audit("s", "should not appear")};
  dup.blob_refs = {{std::string(64, 'd'), 1, 0}};
  dup.evaluation = Eval(0, 1, 0.7);
  EXPECT_EQ(store_->Apply(dup).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetSwarm("s")->state, SwarmState::kPendingExperts);
  EXPECT_TRUE(store_->ListParticles("s")->empty());
  EXPECT_EQ(store_->ListAudit("s")->size(), 1u);
  EXPECT_TRUE(store_->ListBlobs()->empty());
  EXPECT_EQ(store_->GetEvaluation("s", 0, 1)->utility, 0.5);

  SwarmUpdate unknown;
  unknown.swarm = "nope";
  EXPECT_EQ(store_->Apply(unknown).code(), absl::StatusCode::kNotFound);
  SwarmUpdate rename;
  rename.swarm = "s";
  rename.swarm_row = Swarm("t");
  EXPECT_EQ(store_->Apply(rename).code(), absl::StatusCode::kInvalidArgument);
  SwarmUpdate held_missing;
  held_missing.swarm = "s";
  held_missing.blobs_now_held = {{5, 5}};
  EXPECT_EQ(store_->Apply(held_missing).code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreContractTest, ParticlesAreReplacedAndBlobsMarkedHeld) {
  ASSERT_TRUE(store_->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  SwarmUpdate u;
  u.swarm = "s";
  u.particles = {Particle(0, "a")};
  u.evaluation = Eval(0, 0, 0.1);
  ASSERT_TRUE(store_->Apply(u).ok());
  SwarmUpdate v;
  v.swarm = "s";
  ParticleRow moved = Particle(0, "a");
  moved.engine.started_iteration = 5;
  moved.current_blob_id = std::string(64, 'e');
  v.particles = {moved};
  v.blobs_now_held = {{0, 0}};
  ASSERT_TRUE(store_->Apply(v).ok());
  EXPECT_EQ((*store_->ListParticles("s"))[0], moved);
  EXPECT_TRUE(store_->GetEvaluation("s", 0, 0)->blob_held);
}

TEST_P(StoreContractTest, BlobRefcountsNeverGoNegative) {
  ASSERT_TRUE(store_->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  const std::string id(64, 'f');
  SwarmUpdate refs;
  refs.swarm = "s";
  refs.blob_refs = {{id, 10, 0}, {id, 10, 0}};
  ASSERT_TRUE(store_->Apply(refs).ok());
  EXPECT_EQ((*store_->ListBlobs())[0].refcount, 2);
  SwarmUpdate unrefs;
  unrefs.swarm = "s";
  unrefs.blob_unrefs = {id, id, id};
  ASSERT_TRUE(store_->Apply(unrefs).ok());
  EXPECT_EQ((*store_->ListBlobs())[0].refcount, 0);
}

TEST_P(StoreContractTest, EvaluationsAndHistoryAreOrdered) {
  ASSERT_TRUE(store_->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  for (auto [p, k] : std::vector<std::pair<int, int>>{{1, 2}, {0, 2}, {1, 1}, {0, 1}}) {
    SwarmUpdate u;
    u.swarm = "s";
    u.evaluation = Eval(p, k, 0);
    u.history = {{k, 3 - k, 0, 0, 0, 0, 0, 0, 0}};
    ASSERT_TRUE(store_->Apply(u).ok());
  }
  auto evals = store_->ListEvaluations("s");
  ASSERT_EQ(evals->size(), 4u);
  EXPECT_EQ(std::make_pair((*evals)[0].iteration, (*evals)[0].particle_id), std::make_pair(1, 0));
  EXPECT_EQ(std::make_pair((*evals)[3].iteration, (*evals)[3].particle_id), std::make_pair(2, 1));
  auto history = store_->ListHistory("s");
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].utility_version, 1);  // (version, iteration) order
  EXPECT_EQ((*history)[0].iteration, 2);
  EXPECT_EQ(store_->GetEvaluation("s", 7, 7).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->ListEvaluations("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreContractTest, EvaluationsOfABlob) {
  ASSERT_TRUE(store_->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  ASSERT_TRUE(store_->CreateSwarm(Swarm("t"), Audit("t", "create")).ok());
  for (auto [swarm, p, k, blob] : std::vector<std::tuple<std::string, int, int, char>>{
           {"s", 1, 2, 'x'}, {"s", 0, 1, 'y'}, {"s", 0, 3, 'x'}, {"t", 0, 1, 'x'}}) {
    SwarmUpdate u;
    u.swarm = swarm;
    u.evaluation = Eval(p, k, 0);
    u.evaluation->blob_id = std::string(64, blob);
    ASSERT_TRUE(store_->Apply(u).ok());
  }
  auto x = store_->ListEvaluationsOfBlob("s", std::string(64, 'x'));
  ASSERT_TRUE(x.ok()) << x.status();
  ASSERT_EQ(x->size(), 2u);
  EXPECT_EQ(std::make_pair((*x)[0].particle_id, (*x)[0].iteration), std::make_pair(1, 2));
  EXPECT_EQ(std::make_pair((*x)[1].particle_id, (*x)[1].iteration), std::make_pair(0, 3));
  EXPECT_TRUE(store_->ListEvaluationsOfBlob("s", std::string(64, 'z'))->empty());
  EXPECT_EQ(store_->ListEvaluationsOfBlob("nope", std::string(64, 'x')).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreContractTest, ClientsAreTrackedAndRevoked) {
  ASSERT_TRUE(store_->TouchClient({"firm-b", Role::kAgent}, 10).ok());
  ASSERT_TRUE(store_->TouchClient({"firm-a", Role::kAgent}, 20).ok());
  ASSERT_TRUE(store_->TouchClient({"firm-b", Role::kAgent}, 30).ok());
  auto b = store_->GetClient("firm-b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (ClientRecord{{"firm-b", Role::kAgent}, 10, 30, false}));
  ASSERT_TRUE(store_->SetRevoked("firm-b", true, Audit("", "revoke firm-b")).ok());
  EXPECT_TRUE(store_->GetClient("firm-b")->revoked);
  ASSERT_TRUE(store_->TouchClient({"firm-b", Role::kAgent}, 40).ok());
  EXPECT_TRUE(store_->GetClient("firm-b")->revoked);  // a reconnect does not un-revoke
  EXPECT_EQ(store_->SetRevoked("nobody", true, Audit("", "x")).code(), absl::StatusCode::kNotFound);
  auto all = store_->ListClients();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].client.name, "firm-a");
  EXPECT_EQ(store_->GetClient("nobody").status().code(), absl::StatusCode::kNotFound);
}

// Audits (SPEC 12): claims are recorded with their evaluation and replaced by their
// verdict; a reporter's standing moves with each verdict, atomically with it, and a
// quarantine lasts until it is lifted.
TEST_P(StoreContractTest, AuditClaimsAndStandingsAreDurable) {
  ASSERT_TRUE(store_->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  ASSERT_TRUE(store_->TouchClient({"liar", Role::kAgent}, 10).ok());
  AuditClaim pending{1, 2, "liar", true, AuditState::kPending, {}, "", 0};
  SwarmUpdate report;
  report.swarm = "s";
  report.evaluation = Eval(1, 2, 0.9);
  report.audits.push_back(pending);
  ASSERT_TRUE(store_->Apply(report).ok());
  // A claim about an evaluation never recorded is refused, and changes nothing.
  SwarmUpdate orphan;
  orphan.swarm = "s";
  orphan.audits.push_back({0, 5, "liar", false, AuditState::kPending, {}, "", 0});
  orphan.standings.push_back({"liar", true, 1, 50});
  EXPECT_EQ(store_->Apply(orphan).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetClient("liar")->strikes, 0);

  auto claims = store_->ListAuditClaims("s");
  ASSERT_TRUE(claims.ok()) << claims.status();
  ASSERT_EQ(claims->size(), 1u);
  EXPECT_EQ((*claims)[0], pending);

  const int kQuarantineAfter = 2;
  AuditClaim disputed = pending;
  disputed.state = AuditState::kDisputed;
  disputed.audited_scores = {{"acc", 0.3}, {"ppl", 1.0 / 3.0}};
  disputed.auditor = "vendor";
  disputed.decided_ms = 60;
  SwarmUpdate verdict;
  verdict.swarm = "s";
  verdict.audits.push_back(disputed);
  verdict.standings.push_back({"liar", true, kQuarantineAfter, 60});
  ASSERT_TRUE(store_->Apply(verdict).ok());
  claims = store_->ListAuditClaims("s");
  ASSERT_EQ(claims->size(), 1u);
  EXPECT_EQ((*claims)[0], disputed);
  auto liar = store_->GetClient("liar");
  ASSERT_TRUE(liar.ok());
  EXPECT_EQ(liar->audits_disputed, 1);
  EXPECT_EQ(liar->strikes, 1);
  EXPECT_FALSE(liar->quarantined);

  // A confirmed claim of an unknown reporter creates it; a second dispute quarantines.
  SwarmUpdate more;
  more.swarm = "s";
  more.evaluation = Eval(0, 3, 0.5);
  more.audits.push_back(
      {0, 3, "honest", false, AuditState::kConfirmed, {{"acc", 0.5}}, "vendor", 70});
  more.standings.push_back({"honest", false, kQuarantineAfter, 70});
  more.standings.push_back({"liar", true, kQuarantineAfter, 70});
  ASSERT_TRUE(store_->Apply(more).ok());
  auto honest = store_->GetClient("honest");
  ASSERT_TRUE(honest.ok()) << honest.status();
  EXPECT_EQ(honest->client.role, Role::kAgent);
  EXPECT_EQ(honest->audits_confirmed, 1);
  EXPECT_FALSE(honest->quarantined);
  liar = store_->GetClient("liar");
  EXPECT_EQ(liar->audits_disputed, 2);
  EXPECT_EQ(liar->strikes, 2);
  EXPECT_TRUE(liar->quarantined);
  EXPECT_TRUE(store_->TouchClient({"liar", Role::kAgent}, 80).ok());
  EXPECT_TRUE(store_->GetClient("liar")->quarantined);  // a reconnect does not lift it
  claims = store_->ListAuditClaims("s");
  ASSERT_EQ(claims->size(), 2u);  // by (iteration, particle)
  EXPECT_EQ((*claims)[0].iteration, 2);
  EXPECT_EQ((*claims)[1].iteration, 3);

  ASSERT_TRUE(store_->LiftQuarantine("liar", Audit("", "unquarantine liar")).ok());
  liar = store_->GetClient("liar");
  EXPECT_FALSE(liar->quarantined);
  EXPECT_EQ(liar->strikes, 0);
  EXPECT_EQ(liar->audits_disputed, 2);  // the record stays
  EXPECT_EQ(store_->LiftQuarantine("nobody", Audit("", "x")).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->ListAuditClaims("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*store_->IntegrityCheck(), "ok");
}

// Group commit: many writers, each waiting for its own update; every update lands, and the
// store's order is the enqueue order.
TEST_P(StoreContractTest, ConcurrentWritersAreAllDurableInEnqueueOrder) {
  ASSERT_TRUE(store_->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  constexpr int kThreads = 8, kEach = 40;
  absl::Mutex order_mu;
  std::vector<std::string> enqueued;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        SwarmUpdate u;
        u.swarm = "s";
        u.evaluation = Eval(t, i, 0.5);
        const std::string action = absl::StrCat(t, "/", i);
        u.audit.push_back(Audit("s", action));
        SwarmStore::Ticket ticket;
        {
          absl::MutexLock lock(&order_mu);
          ticket = store_->Enqueue(u);
          enqueued.push_back(action);
        }
        EXPECT_TRUE(store_->WaitDurable(ticket).ok());
        // Acknowledged means readable.
        EXPECT_TRUE(store_->GetEvaluation("s", t, i).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store_->ListEvaluations("s")->size(), size_t{kThreads * kEach});
  std::vector<std::string> logged;
  const std::vector<AuditRecord> audit = *store_->ListAudit("s");
  for (const AuditRecord& a : audit) {
    if (a.action != "create") logged.push_back(a.action);
  }
  EXPECT_EQ(logged, enqueued);
  EXPECT_EQ(store_->Failures(), 0u);
}

// Updates committed together are each still atomic: a refused one leaves no trace, its
// neighbours in the batch are unaffected, and later updates are accepted.
TEST_P(StoreContractTest, ARefusedUpdateInABatchIsRolledBackAlone) {
  ASSERT_TRUE(store_->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  SwarmUpdate first;
  first.swarm = "s";
  first.evaluation = Eval(0, 1, 0.25);
  first.blob_refs.push_back({"blob-1", 10, 0});
  SwarmUpdate dup = first;  // same evaluation again: refused, and its blob ref with it
  dup.evaluation->utility = 0.75;
  dup.particles.push_back(Particle(3, "agent-a"));
  SwarmUpdate second;
  second.swarm = "s";
  second.evaluation = Eval(1, 1, 0.5);
  const SwarmStore::Ticket a = store_->Enqueue(first);
  const SwarmStore::Ticket b = store_->Enqueue(dup);
  const SwarmStore::Ticket c = store_->Enqueue(second);
  // Not durable yet, so not visible.
  EXPECT_TRUE(absl::IsNotFound(store_->GetEvaluation("s", 0, 1).status()));
  EXPECT_TRUE(store_->WaitDurable(c).ok());
  EXPECT_TRUE(store_->WaitDurable(a).ok());
  EXPECT_EQ(store_->WaitDurable(b).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetEvaluation("s", 0, 1)->utility, 0.25);
  EXPECT_EQ(store_->GetEvaluation("s", 1, 1)->utility, 0.5);
  EXPECT_TRUE(store_->ListParticles("s")->empty());
  ASSERT_EQ(store_->ListBlobs()->size(), 1u);
  EXPECT_EQ(store_->ListBlobs()->at(0).refcount, 1);
  EXPECT_EQ(store_->Failures(), 1u);
  SwarmUpdate third;
  third.swarm = "s";
  third.evaluation = Eval(2, 1, 0.5);
  EXPECT_TRUE(store_->Apply(third).ok());
}

// Utilities and times come back bit for bit, extremes included (not NaN, which SQLite stores
// as NULL, and not -0.0, whose sign SQLite drops; scores are JSON, which has no infinity).
// WhenDurable is WaitDurable without a waiting thread: the same outcomes, given only once
// the update is durable (visible to reads), and at once for what is already known.
TEST_P(StoreContractTest, WhenDurableGivesWaitDurablesOutcomeOnceDurable) {
  ASSERT_TRUE(store_->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  SwarmUpdate first;
  first.swarm = "s";
  first.evaluation = Eval(0, 1, 0.25);
  SwarmUpdate dup = first;  // refused: the same evaluation again
  struct Seen {
    absl::Notification done;
    absl::Status status;
    bool visible = false;  // the first evaluation could be read when the callback ran
  };
  Seen a, b;
  const SwarmStore::Ticket ta = store_->Enqueue(first);
  const SwarmStore::Ticket tb = store_->Enqueue(dup);
  for (auto [ticket, seen] : {std::pair{ta, &a}, std::pair{tb, &b}}) {
    store_->WhenDurable(ticket, [this, seen = seen](absl::Status s) {
      seen->status = std::move(s);
      seen->visible = store_->GetEvaluation("s", 0, 1).ok();
      seen->done.Notify();
    });
  }
  a.done.WaitForNotification();
  b.done.WaitForNotification();
  EXPECT_TRUE(a.status.ok()) << a.status;
  EXPECT_TRUE(a.visible);
  EXPECT_EQ(b.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetEvaluation("s", 0, 1)->utility, 0.25);
  absl::Notification known;
  store_->WhenDurable(ta, [&](absl::Status s) {
    EXPECT_TRUE(s.ok());
    known.Notify();
  });
  EXPECT_TRUE(known.HasBeenNotified());  // answered on this thread, before returning
}

TEST_P(StoreContractTest, DoublesRoundTripExactly) {
  using limits = std::numeric_limits<double>;
  SwarmRecord row = Swarm("s");
  ASSERT_TRUE(store_->CreateSwarm(row, Audit("s", "create")).ok());
  row.global_best_utility = limits::infinity();
  row.global_worst_utility = -limits::infinity();
  row.round_best_utility = limits::denorm_min();
  row.round_worst_utility = limits::max();
  SwarmUpdate u;
  u.swarm = "s";
  u.swarm_row = row;
  u.evaluation = Eval(0, 1, 1.0 / 3.0);
  u.evaluation->utility = limits::lowest();
  u.evaluation->evaluation_seconds = 0.1 + 0.2;
  u.history = {{1, 1, limits::min(), -1e-300, 2.0 / 3.0, 1e300, 0, 1, 2}};
  ASSERT_TRUE(store_->Apply(u).ok());
  EXPECT_EQ(*store_->GetSwarm("s"), row);
  EXPECT_EQ(*store_->GetEvaluation("s", 0, 1), *u.evaluation);
  EXPECT_EQ(store_->ListHistory("s")->at(0), u.history[0]);
}

TEST_P(StoreContractTest, IntegrityCheckIsOk) { EXPECT_EQ(*store_->IntegrityCheck(), "ok"); }

}  // namespace
}  // namespace wxp::store::testing
