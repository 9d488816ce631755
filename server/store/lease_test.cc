// Leases and fencing on a real PostgreSQL server (lease.h; SPEC 6.1): one replica leads a
// swarm at a time, another takes over only once the lease expired (or was released), and a
// write computed under a lost lease is refused in its own transaction and leaves nothing.
// Times are given explicitly: no test here waits on a clock.
#include "server/store/lease.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/store/postgres_store.h"
#include "server/store/testing/postgres_server.h"
#include "server/store/testing/store_contract.h"

namespace wxp::store {
namespace {

using testing::Audit;
using testing::Eval;
using testing::SharedPostgresServer;
using testing::Swarm;

constexpr int64_t kTtl = 5000;

class LeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = SharedPostgresServer();
    ASSERT_TRUE(server.ok()) << server.status();
    auto conninfo =
        (*server)->NewSchema(::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(conninfo.ok()) << conninfo.status();
    conninfo_ = *conninfo;
    auto store = PostgresStore::Open({conninfo_, /*require_fence=*/true});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    ASSERT_TRUE(store_->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
    a_ = Replica("a");
    b_ = Replica("b");
  }

  std::unique_ptr<PostgresLeases> Replica(const std::string& id) {
    auto leases = PostgresLeases::Open({conninfo_, id, id + ".example:7443"});
    EXPECT_TRUE(leases.ok()) << leases.status();
    return leases.ok() ? *std::move(leases) : nullptr;
  }

  SwarmUpdate Report(int particle, int64_t fence) {
    SwarmUpdate u;
    u.swarm = "s";
    u.evaluation = Eval(particle, 0, 0.5);
    u.fence = fence;
    return u;
  }

  std::string conninfo_;
  std::unique_ptr<PostgresStore> store_;
  std::unique_ptr<PostgresLeases> a_, b_;
};

TEST_F(LeaseTest, OneHolderAtATimeAndTheTokenGrowsWithEveryTakeover) {
  auto first = a_->TryAcquire("s", 1000, kTtl);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->mine);
  EXPECT_EQ(first->token, 1);
  // B sees A's lease, with A's address, until it expires.
  auto refused = b_->TryAcquire("s", 1000 + kTtl - 1, kTtl);
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_FALSE(refused->mine);
  EXPECT_EQ(refused->replica_id, "a");
  EXPECT_EQ(refused->address, "a.example:7443");
  // A renewal keeps the token.
  auto renewed = a_->TryAcquire("s", 3000, kTtl);
  ASSERT_TRUE(renewed.ok());
  EXPECT_TRUE(renewed->mine);
  EXPECT_EQ(renewed->token, 1);
  // Past the renewed expiry B takes it, with a new token; A's renewal then fails.
  auto taken = b_->TryAcquire("s", 3000 + kTtl, kTtl);
  ASSERT_TRUE(taken.ok());
  EXPECT_TRUE(taken->mine);
  EXPECT_EQ(taken->token, 2);
  auto lost = a_->TryAcquire("s", 3000 + kTtl + 1, kTtl);
  ASSERT_TRUE(lost.ok());
  EXPECT_FALSE(lost->mine);
  EXPECT_EQ(lost->replica_id, "b");
  auto listed = a_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->count("s"), 1u);
  EXPECT_EQ(listed->at("s").token, 2);
  EXPECT_FALSE(listed->at("s").mine);
  EXPECT_TRUE(b_->List()->at("s").mine);
  // A lease of a swarm that does not exist is refused.
  EXPECT_FALSE(a_->TryAcquire("nope", 1000, kTtl).ok());
}

TEST_F(LeaseTest, AWriteUnderALostLeaseIsRefusedAndLeavesNothing) {
  ASSERT_EQ(a_->TryAcquire("s", 1000, kTtl)->token, 1);
  ASSERT_TRUE(store_->Apply(Report(0, 1)).ok());
  // A pauses past its lease; B takes over and writes.
  ASSERT_EQ(b_->TryAcquire("s", 1000 + kTtl, kTtl)->token, 2);
  ASSERT_TRUE(store_->Apply(Report(1, 2)).ok());
  // A resumes and writes as if it still led: refused, that update alone.
  const uint64_t failures = store_->Failures();
  const SwarmStore::Ticket stale = store_->Enqueue(Report(2, 1));
  const SwarmStore::Ticket fresh = store_->Enqueue(Report(3, 2));
  const absl::Status s = store_->WaitDurable(stale);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(LeaseLostSwarm(s), "s");
  EXPECT_TRUE(store_->WaitDurable(fresh).ok());
  EXPECT_GT(store_->Failures(), failures);
  // Without a token at all, a replicated store refuses too.
  EXPECT_EQ(LeaseLostSwarm(store_->Apply(Report(4, 0))), "s");
  auto evals = store_->ListEvaluations("s");
  ASSERT_TRUE(evals.ok());
  ASSERT_EQ(evals->size(), 3u);
  EXPECT_EQ((*evals)[0].particle_id, 0);
  EXPECT_EQ((*evals)[1].particle_id, 1);
  EXPECT_EQ((*evals)[2].particle_id, 3);
}

TEST_F(LeaseTest, ReleaseHandsOverAtOnceAndARestartedReplicaStartsAnew) {
  ASSERT_EQ(a_->TryAcquire("s", 1000, kTtl)->token, 1);
  ASSERT_TRUE(a_->Release("s", 1).ok());
  auto taken = b_->TryAcquire("s", 1001, kTtl);
  ASSERT_TRUE(taken.ok());
  EXPECT_TRUE(taken->mine);
  EXPECT_EQ(taken->token, 2);
  // B's process dies; B restarted (same replica_id) is another incarnation: it must wait
  // for the old lease to expire, and takes the swarm under a new token.
  b_.reset();
  auto b2 = Replica("b");
  EXPECT_FALSE(b2->TryAcquire("s", 1002, kTtl)->mine);
  auto again = b2->TryAcquire("s", 1001 + kTtl, kTtl);
  EXPECT_TRUE(again->mine);
  EXPECT_EQ(again->token, 3);
}

TEST_F(LeaseTest, HeartbeatsCountTheReplicasAlive) {
  EXPECT_EQ(*a_->Heartbeat(1000, kTtl), 1);
  EXPECT_EQ(*b_->Heartbeat(2000, kTtl), 2);
  // A stopped renewing: once its announcement is past, B counts itself alone.
  EXPECT_EQ(*b_->Heartbeat(1000 + kTtl, kTtl), 1);
}

}  // namespace
}  // namespace wxp::store
