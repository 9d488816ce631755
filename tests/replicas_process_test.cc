// Several wxp-server replicas on one real PostgreSQL (SPEC 6.1, 10): real wxp-agent
// processes given every replica's address run a SYNC swarm while the leading replica is
// killed with SIGKILL at random moments, ten times; another replica takes the swarm over each
// time, nothing acknowledged is lost, and the swarm ends exactly as the in-process runner
// does. A leader stopped with SIGSTOP past its lease and then resumed writes nothing. A
// PostgreSQL restarted mid-run (cleanly, then as a crash) loses nothing either.
//
// Every wait is bounded (it only ends a broken run) and nothing asserts on timing.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/net/connection.h"
#include "common/file_util.h"
#include "common/runner.h"
#include "common/sha256.h"
#include "common/synthetic.h"
#include "gtest/gtest.h"
#include "server/db/postgres.h"
#include "server/store/postgres_store.h"
#include "server/store/testing/postgres_server.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_admin.h"
#include "tests/testing/synthetic_experts.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;
using proc::ChildProcess;
using proc::ServerProcess;

class ReplicasProcessTest : public ::testing::Test {
 protected:
  // A failed run says what each process last logged: the logs live in the test's
  // temporary directory, which does not outlive it.
  void TearDown() override {
    if (!HasFailure()) return;
    for (const auto& r : replicas_) {
      std::cerr << "---- " << r->log_path() << "\n" << proc::Tail(r->log_path(), 3000) << "\n";
    }
    for (const char* agent : {"firm-a", "firm-b"}) {
      const std::string log = absl::StrCat(root_, "/", agent, ".log");
      std::cerr << "---- " << log << "\n" << proc::Tail(log, 3000) << "\n";
    }
  }

  void StartReplicas(int n) {
    root_ = proc::FreshDir(::testing::TempDir() + "/" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto pg = store::testing::SharedPostgresServer();
    ASSERT_TRUE(pg.ok()) << pg.status();
    pg_ = *pg;
    // A database of its own: the replicas' store names no schema.
    std::string db = "r_";
    for (char c : std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())) {
      db += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    auto admin = db::pg::Connection::Open((*pg)->ConnectionString());
    ASSERT_TRUE(admin.ok()) << admin.status();
    ASSERT_TRUE((*admin)->Execute(absl::StrCat("DROP DATABASE IF EXISTS ", db)).ok());
    ASSERT_TRUE((*admin)->Execute(absl::StrCat("CREATE DATABASE ", db)).ok());
    uri_ = (*pg)->Uri(db);

    auto experts = proc::SaveRandomExperts(proc::SmallLoraSchema(), 3, 2024, root_);
    ASSERT_TRUE(experts.ok()) << experts.status();
    experts_ = experts->values;
    expert_dirs_ = experts->dirs;
    optimum_path_ = root_ + "/optimum.safetensors";
    auto optimum = proc::SaveHiddenOptimum(proc::SmallLoraSchema(), experts_, 2024, optimum_path_);
    ASSERT_TRUE(optimum.ok()) << optimum.status();
    optimum_ = *optimum;
    // Quick failover for the agents: short calls (a stopped replica does not answer) and
    // a short backoff.
    agent_config_ = root_ + "/agent.textproto";
    ASSERT_TRUE(WriteFileAtomically(agent_config_,
                                    "rpc_deadline_seconds: 3 reconnect_initial_seconds: 0.1 "
                                    "reconnect_max_seconds: 1\n")
                    .ok());

    blob_dir_ = root_ + "/shared-blobs";
    for (int i = 0; i < n; ++i) {
      const int port = proc::FreeLoopbackPort();
      ASSERT_GT(port, 0);
      replicas_.push_back(std::make_unique<ServerProcess>(
          absl::StrCat(root_, "/replica-", i),
          std::vector<std::string>{"--plaintext", "--store=" + uri_,
                                   absl::StrCat("--replica_id=r", i),
                                   absl::StrCat("--advertise_address=127.0.0.1:", port),
                                   "--lease_seconds=1", "--blob_dir=" + blob_dir_},
          port));
      ASSERT_GT(replicas_.back()->Start(), 0) << proc::Tail(replicas_.back()->log_path());
    }
  }

  std::string Addresses() const {
    std::vector<std::string> a;
    for (const auto& r : replicas_) a.push_back(r->address());
    return absl::StrJoin(a, ",");
  }

  std::unique_ptr<client::Connection> Admin(const std::string& address) {
    return proc::ConnectAs(address, "ops", Role::kAdmin);
  }

  // The replica that answers the swarm's status itself (the others redirect), -1 if none
  // does now; `skip` is left alone (a stopped replica would hold the call up).
  int Leader(wxp::v1::SwarmStatus* status, int skip = -1) {
    for (int i = 0; i < static_cast<int>(replicas_.size()); ++i) {
      if (i == skip || !replicas_[i]->child().Running()) continue;
      auto admin = Admin(replicas_[i]->address());
      if (admin && proc::GetSwarmStatus(*admin, "swarm", status).ok()) return i;
    }
    return -1;
  }

  int WaitForLeader(wxp::v1::SwarmStatus* status, int skip = -1) {
    int leader = -1;
    proc::PollUntil([&] { return (leader = Leader(status, skip)) >= 0; }, absl::Seconds(60),
                    absl::Milliseconds(50));
    return leader;
  }

  void CreateSwarm(const std::string& hyperparameters) {
    hyperparameters_ = hyperparameters;
    auto admin = Admin(replicas_[0]->address());
    ASSERT_TRUE(admin);
    grpc::Status s = proc::CreateSwarm(
        *admin, proc::SyntheticSwarmSpec("swarm", hyperparameters, "upload_policy: ON_DEMAND"));
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  std::vector<std::string> AgentArgs(const std::string& name, std::vector<int> experts) {
    std::vector<std::string> argv =
        proc::AgentArgv(Addresses(), "swarm", name, proc::Pick(expert_dirs_, experts),
                        root_ + "/" + name, {"--synthetic_optimum=" + optimum_path_});
    argv.push_back("--config=" + agent_config_);
    return argv;
  }

  void StartAgents() {
    ASSERT_TRUE(a_.Start(AgentArgs("firm-a", {0, 1}), root_ + "/firm-a.log"));
    ASSERT_TRUE(b_.Start(AgentArgs("firm-b", {2}), root_ + "/firm-b.log"));
  }

  void WaitForAgents() {
    const int sa = a_.Wait(absl::Minutes(4)), sb = b_.Wait(absl::Minutes(4));
    ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(root_ + "/firm-a.log");
    ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(root_ + "/firm-b.log");
  }

  // The federated result equals the in-process runner's: g's trajectory and bytes.
  void ExpectSameAsRunner(uint64_t seed, int max_iterations, int patience) {
    RunnerOptions o;
    o.params.seed = seed;
    o.params.max_iterations = max_iterations;
    o.params.patience = patience;
    o.params.pool_size = 5;
    for (const auto& e : experts_) {
      o.expert_ids.push_back(*proc::BlobIdOf(proc::SmallLoraSchema(), e));
    }
    SyntheticEvaluator eval(optimum_);
    auto oracle =
        RunSwarm(experts_, *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}}), eval, o);
    ASSERT_TRUE(oracle.ok()) << oracle.status();
    wxp::v1::SwarmStatus status;
    const int leader = WaitForLeader(&status);
    ASSERT_GE(leader, 0);
    auto admin = Admin(replicas_[leader]->address());
    EXPECT_EQ(proc::GlobalBestHistoryOf(*admin, "swarm"), proc::GlobalBestHistoryOf(*oracle));
    EXPECT_EQ(status.state(), wxp::v1::FINISHED);
    EXPECT_EQ(status.global_best().utility(), oracle->best_utility);
    EXPECT_EQ(status.global_best().blob_id(),
              *proc::BlobIdOf(proc::SmallLoraSchema(), oracle->best));
  }

  // In PostgreSQL: every particle reported every iteration exactly once, with no gap (a
  // report acknowledged before a kill is there, none twice); every held position's blob
  // is in the shared blob store, whole.
  void ExpectNothingLostOrPartial() {
    auto store = store::PostgresStore::Open({uri_});
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(*(*store)->IntegrityCheck(), "ok");
    auto evals = (*store)->ListEvaluations("swarm");
    ASSERT_TRUE(evals.ok()) << evals.status();
    std::map<int, std::vector<int>> iterations;
    for (const auto& e : *evals) iterations[e.particle_id].push_back(e.iteration);
    ASSERT_EQ(iterations.size(), 5u);
    for (auto& [p, its] : iterations) {
      std::sort(its.begin(), its.end());
      for (size_t i = 0; i < its.size(); ++i) EXPECT_EQ(its[i], static_cast<int>(i)) << p;
    }
    int blobs = 0;
    for (const auto& f : fs::recursive_directory_iterator(blob_dir_)) {
      const std::string name = f.path().filename().string();
      if (f.is_regular_file() && name.size() == 64) {
        EXPECT_EQ(*Sha256File(f.path().string()), name);
        ++blobs;
      }
    }
    EXPECT_GT(blobs, 0);
  }

  std::string root_, uri_, blob_dir_, optimum_path_, agent_config_, hyperparameters_;
  std::vector<std::vector<float>> experts_;
  std::vector<float> optimum_;
  std::vector<std::string> expert_dirs_;
  store::testing::PostgresServer* pg_ = nullptr;
  std::vector<std::unique_ptr<ServerProcess>> replicas_;
  ChildProcess a_, b_;
};

// Ten SIGKILLs of whichever replica leads, each at a random moment; the killed replica
// starts again (a new incarnation, which must win the swarm anew) so three stay in play.
// Under ASan each takeover and restart is several times slower and the run outgrows its
// bound: the sanitizer runs leave it out (the lease logic is covered there by
// server/coordinator:leases_test and server/store:postgres_store_test).
TEST_F(ReplicasProcessTest, TenKillsOfTheLeaderLoseNothing) {
  StartReplicas(3);
  // Iterations to spare: on a quiet machine a synthetic round takes milliseconds, and the
  // swarm must not finish before the tenth kill (each kill waits for the swarm to move on).
  CreateSwarm("seed: 99 max_iterations: 200 patience: 200 pool_size: 5");
  StartAgents();
  std::mt19937 rng(::testing::UnitTest::GetInstance()->random_seed());
  constexpr int kKills = 10;
  int kills = 0;
  std::set<int> killed_at;  // the iterations closed when a leader died: all different
  const absl::Time give_up = absl::Now() + absl::Minutes(6);
  while (kills < kKills && absl::Now() < give_up) {
    wxp::v1::SwarmStatus status;
    const int leader = WaitForLeader(&status);
    ASSERT_GE(leader, 0) << "no replica took the swarm over after kill " << kills;
    ASSERT_NE(status.state(), wxp::v1::FINISHED) << "finished after only " << kills << " kills";
    // Each kill at another point of the run: once the swarm has moved past the last one.
    if (!killed_at.empty() && status.iteration() <= *killed_at.rbegin()) {
      absl::SleepFor(absl::Milliseconds(20));
      continue;
    }
    absl::SleepFor(absl::Milliseconds(rng() % 200));
    replicas_[leader]->Kill(SIGKILL);
    ++kills;
    killed_at.insert(status.iteration());
    ASSERT_GT(replicas_[leader]->Start(), 0) << proc::Tail(replicas_[leader]->log_path());
  }
  ASSERT_EQ(kills, kKills);
  EXPECT_EQ(killed_at.size(), size_t{kKills});
  std::cerr << "leaders killed near iterations " << absl::StrJoin(killed_at, ",") << std::endl;
  WaitForAgents();
  ExpectSameAsRunner(99, 200, 200);
  ExpectNothingLostOrPartial();
  // The agents followed redirects and failed over.
  EXPECT_NE(proc::Tail(root_ + "/firm-a.log", 1 << 20).find("event=failover"), std::string::npos);
}

// The leader is stopped (as a partition or a long pause would) past its lease; another
// replica takes over and the swarm goes on. Resumed, the old leader must not write: a
// pause sent to it while it was stopped is refused with UNAVAILABLE, the swarm is not
// paused, the audit log has no pause, and it logs that it dropped the swarm. (The fencing
// of a write computed under the lost lease is proven against PostgreSQL by
// server/store:postgres_store_test, LeaseTest.)
TEST_F(ReplicasProcessTest, AResumedLeaderDoesNotWrite) {
  StartReplicas(2);
  CreateSwarm("seed: 7 max_iterations: 30 patience: 30 pool_size: 5");
  StartAgents();
  wxp::v1::SwarmStatus status;
  ASSERT_TRUE(proc::PollUntil([&] { return Leader(&status) >= 0 && status.iteration() >= 2; },
                              absl::Minutes(2), absl::Milliseconds(50)));
  const int old = Leader(&status);
  ASSERT_GE(old, 0);
  const pid_t pid = replicas_[old]->child().pid();
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  // The other replica leads once the lease ran out, and the swarm advances there.
  const int at_stop = status.iteration();
  int now_leader = -1;
  ASSERT_TRUE(proc::PollUntil(
      [&] {
        now_leader = Leader(&status, old);
        return now_leader >= 0 &&
               (status.iteration() > at_stop || status.state() == wxp::v1::FINISHED);
      },
      absl::Minutes(2), absl::Milliseconds(50)));
  ASSERT_NE(now_leader, old);

  // A pause reaches the stopped replica's socket; it is resumed while the call waits.
  grpc::Status paused;
  std::thread call([&] {
    auto admin = Admin(replicas_[old]->address());
    wxp::v1::SwarmControlRequest req;
    req.set_swarm("swarm");
    req.set_reason("sent to a stale leader");
    wxp::v1::SwarmStatus resp;
    paused = admin->admin().PauseSwarm(admin->NewContext().get(), req, &resp);
  });
  absl::SleepFor(absl::Milliseconds(300));  // lets the call reach the socket; not asserted on
  ASSERT_EQ(kill(pid, SIGCONT), 0);
  call.join();
  EXPECT_EQ(paused.error_code(), grpc::StatusCode::UNAVAILABLE) << paused.error_message();
  EXPECT_TRUE(proc::PollUntil(
      [&] {
        return proc::Tail(replicas_[old]->log_path(), 1 << 20)
                   .find("event=lease_dropped swarm=swarm") != std::string::npos;
      },
      absl::Seconds(30), absl::Milliseconds(50)))
      << proc::Tail(replicas_[old]->log_path());

  WaitForAgents();
  ExpectSameAsRunner(7, 30, 30);
  auto store = store::PostgresStore::Open({uri_});
  ASSERT_TRUE(store.ok()) << store.status();
  auto audit = (*store)->ListAudit("swarm");
  ASSERT_TRUE(audit.ok()) << audit.status();
  for (const auto& a : *audit) EXPECT_EQ(a.action.find("pause"), std::string::npos) << a.action;
  ExpectNothingLostOrPartial();
}

// PostgreSQL itself goes away mid-run under two replicas and real agents, twice: a fast
// shutdown (sessions ended, clean checkpoint) and then a crash (no checkpoint: WAL
// recovery on the next start). Each time it comes back on the same port; the replicas
// reconnect, a lease may change hands, and the swarm goes on. Nothing acknowledged is
// lost and the swarm ends as the in-process runner does.
TEST_F(ReplicasProcessTest, APostgresRestartMidRunLosesNothing) {
  StartReplicas(2);
  CreateSwarm("seed: 11 max_iterations: 60 patience: 60 pool_size: 5");
  StartAgents();
  int at = 0;
  std::vector<int> restarted_at;
  for (auto how : {store::testing::PostgresServer::Shutdown::kFast,
                   store::testing::PostgresServer::Shutdown::kImmediate}) {
    wxp::v1::SwarmStatus status;
    ASSERT_TRUE(
        proc::PollUntil([&] { return Leader(&status) >= 0 && status.iteration() >= at + 2; },
                        absl::Minutes(2), absl::Milliseconds(50)))
        << "the swarm did not move on after PostgreSQL came back at iteration " << at;
    ASSERT_NE(status.state(), wxp::v1::FINISHED) << "finished before PostgreSQL went away";
    at = status.iteration();
    restarted_at.push_back(at);
    ASSERT_TRUE(pg_->Stop(how).ok()) << proc::Tail(pg_->log_path());
    // Longer than a lease: renewals fail and the leader stops answering from memory. Not
    // asserted on.
    absl::SleepFor(absl::Seconds(2));
    ASSERT_TRUE(pg_->Restart().ok()) << proc::Tail(pg_->log_path());
  }
  std::cerr << "PostgreSQL restarted near iterations " << absl::StrJoin(restarted_at, ",")
            << std::endl;
  WaitForAgents();
  ExpectSameAsRunner(11, 60, 60);
  ExpectNothingLostOrPartial();
}

}  // namespace
}  // namespace wxp
