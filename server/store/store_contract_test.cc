// One contract (testing/store_contract.h), three stores here: the SQLite file store (the
// product), SQLite in memory, and the in-memory fake; postgres_store_test.cc runs it on
// PostgreSQL. Below the suite, what only one of these stores promises.
#include "server/store/testing/store_contract.h"

#include <cstdio>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "server/db/sqlite.h"
#include "server/store/memory_store.h"
#include "server/store/sqlite_store.h"

namespace wxp::store {
namespace {

using testing::Audit;
using testing::Eval;
using testing::StoreContractTest;
using testing::StoreFactory;
using testing::Swarm;

std::string TempDb(const std::string& tag) {
  const std::string path = ::testing::TempDir() + "/contract_" + tag + ".db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  return path;
}

std::unique_ptr<SwarmStore> MakeSqlite(const std::string& path) {
  auto s = SqliteStore::Open({path});
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(
    AllStores, StoreContractTest,
    ::testing::Values(
        StoreFactory{"sqlite_file", [](const std::string& tag) { return MakeSqlite(TempDb(tag)); }},
        StoreFactory{"sqlite_memory", [](const std::string&) { return MakeSqlite(":memory:"); }},
        StoreFactory{"memory",
                     [](const std::string&) -> std::unique_ptr<SwarmStore> {
                       return std::make_unique<MemoryStore>();
                     }}),
    [](const ::testing::TestParamInfo<StoreFactory>& info) { return info.param.name; });

// Only the file store is durable: what Apply acknowledged is there after reopening.
TEST(SqliteStoreTest, AcknowledgedUpdatesSurviveReopen) {
  const std::string path = TempDb("reopen");
  {
    auto store = MakeSqlite(path);
    ASSERT_TRUE(store->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
    SwarmUpdate u;
    u.swarm = "s";
    u.evaluation = Eval(0, 1, 0.25);
    ASSERT_TRUE(store->Apply(u).ok());
  }
  auto store = MakeSqlite(path);
  EXPECT_EQ(store->GetEvaluation("s", 0, 1)->utility, 0.25);
  EXPECT_EQ(*store->IntegrityCheck(), "ok");
}

// The role column is text; a role the server does not know (a file written by something
// else) is refused when read, never mapped to some default.
TEST(SqliteStoreTest, AnUnknownStoredRoleIsDataLoss) {
  const std::string path = TempDb("role");
  {
    auto store = MakeSqlite(path);
    ASSERT_TRUE(store->TouchClient({"firm-a", Role::kAgent}, 10).ok());
    ASSERT_TRUE(store->TouchClient({"audit-1", Role::kAuditor}, 10).ok());
  }
  {
    auto db = db::Database::Open({path});
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE(
        (*db)->Execute("UPDATE clients SET role = 'wizard' WHERE identity = 'firm-a'").ok());
  }
  auto store = MakeSqlite(path);
  EXPECT_EQ(store->GetClient("audit-1")->client.role, Role::kAuditor);
  absl::StatusOr<ClientRecord> bad = store->GetClient("firm-a");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("'firm-a'"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("unknown role 'wizard'"), std::string::npos)
      << bad.status();
  EXPECT_EQ(store->ListClients().status().code(), absl::StatusCode::kDataLoss);
}

// A failed batch (a full disk, here simulated) fails every update queued behind it and every
// later one until the writer resumes: nothing built on the lost updates may commit.
TEST(MemoryStoreTest, AFailedBatchFailsWhatFollowsUntilResumed) {
  MemoryStore store;
  ASSERT_TRUE(store.CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  auto eval = [](int particle) {
    SwarmUpdate u;
    u.swarm = "s";
    u.evaluation = Eval(particle, 1, 0.5);
    return u;
  };
  store.FailCommitsWith(absl::ResourceExhaustedError("the disk is full"));
  const SwarmStore::Ticket a = store.Enqueue(eval(0));
  const SwarmStore::Ticket b = store.Enqueue(eval(1));
  EXPECT_EQ(store.WaitDurable(a).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(store.WaitDurable(b).code(), absl::StatusCode::kResourceExhausted);
  store.FailCommitsWith(absl::OkStatus());
  EXPECT_EQ(store.Apply(eval(2)).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(store.ListEvaluations("s")->empty());
  EXPECT_EQ(store.Failures(), 3u);
  store.ResumeAfterFailure();
  EXPECT_TRUE(store.Apply(eval(3)).ok());
  EXPECT_EQ(store.ListEvaluations("s")->size(), 1u);
}

}  // namespace
}  // namespace wxp::store
