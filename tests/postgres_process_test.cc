// The real wxp-server binary with its state in PostgreSQL (--store=postgresql://...; SPEC
// 6.1), on a server the test starts itself (server/store/testing/postgres_server.h): a small
// swarm, the server killed with SIGKILL mid-run and restarted, must finish with exactly the
// in-process runner's result, with every acknowledged report in PostgreSQL.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <string>

#include "common/runner.h"
#include "common/sha256.h"
#include "common/synthetic.h"
#include "gtest/gtest.h"
#include "proto/wxp.grpc.pb.h"
#include "server/store/postgres_store.h"
#include "server/store/testing/postgres_server.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_driver.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;

using ::wxp::proc::Agent;
using ::wxp::proc::Client;
using ::wxp::proc::kDim;
using ::wxp::proc::Serialize;
using ::wxp::proc::ServerProcess;
using ::wxp::proc::StartSwarm;

TEST(PostgresProcessTest, SwarmSurvivesKillNineAndMatchesTheRunner) {
  auto pg = store::testing::SharedPostgresServer();
  ASSERT_TRUE(pg.ok()) << pg.status();
  const std::string dir = ::testing::TempDir() + "/postgres_process";
  fs::remove_all(dir);
  ServerProcess server(dir, {"--plaintext", "--store=" + (*pg)->Uri()});
  int port = server.Start();
  ASSERT_GT(port, 0) << proc::Tail(server.log_path());

  const auto experts = MakeRandomExperts(3, kDim, 31);
  const auto optimum = *MakeHiddenOptimum(experts, 31, 0.0005);
  SyntheticEvaluator eval(optimum);
  Agent a("firm-a", &eval), b("firm-b", &eval);
  StartSwarm(port, "seed: 77 max_iterations: 8 patience: 3", "", experts, a, b);
  port = proc::RunKillingOnce(server, port, /*kill_at=*/5, a, b);
  ASSERT_GT(port, 0);
  RunnerOptions o;
  o.params.seed = 77;
  o.params.max_iterations = 8;
  o.params.patience = 3;
  EXPECT_FALSE(proc::ExpectFinishedAsTheRunner(port, experts, eval, o).empty());

  const int exit_status = server.Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(exit_status));
  EXPECT_EQ(WEXITSTATUS(exit_status), 0);
  // Nothing of the state went to the data directory's SQLite file.
  EXPECT_FALSE(fs::exists(dir + "/wxp.db"));
  auto store = store::PostgresStore::Open({(*pg)->Uri()});
  ASSERT_TRUE(store.ok()) << store.status();
  proc::ExpectDurableState(**store, dir, {&a, &b});
}

// A --store that is neither empty nor a PostgreSQL URI is refused without being echoed (it
// may hold a password); an unreachable PostgreSQL is named.
TEST(PostgresProcessTest, ABadStoreIsRefusedClearly) {
  const std::string dir = ::testing::TempDir() + "/postgres_bad_store";
  fs::remove_all(dir);
  {
    ServerProcess server(dir, {"--plaintext", "--store=mysql://root:hunter2@db/wxp"});
    EXPECT_EQ(server.Start(), 0);
    const std::string log = proc::Tail(server.log_path());
    EXPECT_NE(log.find("postgresql://"), std::string::npos) << log;
    EXPECT_EQ(log.find("hunter2"), std::string::npos) << log;
  }
  fs::remove(dir + ".log");
  ServerProcess server(dir, {"--plaintext", "--store=postgresql://wxp:hunter2@127.0.0.1:1/wxp"});
  EXPECT_EQ(server.Start(), 0);
  const std::string log = proc::Tail(server.log_path());
  EXPECT_NE(log.find("127.0.0.1:1"), std::string::npos) << log;
  EXPECT_EQ(log.find("hunter2"), std::string::npos) << log;
}

}  // namespace
}  // namespace wxp
