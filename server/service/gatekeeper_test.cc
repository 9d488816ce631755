#include "server/service/gatekeeper.h"

#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"
#include "server/store/memory_store.h"

namespace wxp::server {
namespace {

// A store whose client-record writes fail on demand, as on a full disk.
class FailingTouchStore : public store::MemoryStore {
 public:
  bool fail_touch = false;
  absl::Status TouchClient(const Identity& client, int64_t now_ms) override {
    if (fail_touch) return absl::ResourceExhaustedError("the disk is full");
    return MemoryStore::TouchClient(client, now_ms);
  }
};

class GatekeeperTest : public ::testing::Test {
 protected:
  absl::StatusOr<Identity> Admit(const std::string& name, Role role) {
    Gatekeeper gate(
        [&](const grpc::ServerContextBase&) {
          return Identity{name, role};
        },
        &store_, &clock_);
    grpc::ServerContext ctx;
    return gate.Admit(ctx, {role}, "Heartbeat");
  }
  FailingTouchStore store_;
  FakeClock clock_;
};

TEST_F(GatekeeperTest, RecordsClientsAndRefusesWrongRolesAndRevoked) {
  ASSERT_TRUE(Admit("firm-a", Role::kAgent).ok());
  auto record = store_.GetClient("firm-a");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->client.role, Role::kAgent);

  Gatekeeper gate(
      [](const grpc::ServerContextBase&) {
        return Identity{"firm-a", Role::kAgent};
      },
      &store_, &clock_);
  grpc::ServerContext ctx;
  absl::StatusOr<Identity> wrong = gate.Admit(ctx, {Role::kAdmin}, "CreateSwarm");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(wrong.status().message().find("CreateSwarm needs role admin"), std::string::npos);

  ASSERT_TRUE(store_.SetRevoked("firm-a", true, {}).ok());
  EXPECT_EQ(Admit("firm-a", Role::kAgent).status().code(), absl::StatusCode::kPermissionDenied);
}

// SPEC 12: disputed audits quarantine a client (refused like a revoked one) until an admin
// lifts it; an auditor is a role like the others.
TEST_F(GatekeeperTest, AQuarantinedClientIsRefusedUntilLifted) {
  ASSERT_TRUE(Admit("firm-a", Role::kAgent).ok());
  ASSERT_TRUE(Admit("vendor", Role::kAuditor).ok());
  ASSERT_TRUE(store_.CreateSwarm({"s"}, {}).ok());
  store::SwarmUpdate u;
  u.swarm = "s";
  u.standings.push_back({"firm-a", true, 1, 0});
  ASSERT_TRUE(store_.Apply(u).ok());
  absl::StatusOr<Identity> refused = Admit("firm-a", Role::kAgent);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("quarantined after 1 disputed audits"),
            std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find("wxpctl clients unquarantine firm-a"),
            std::string::npos);
  ASSERT_TRUE(store_.LiftQuarantine("firm-a", {}).ok());
  EXPECT_TRUE(Admit("firm-a", Role::kAgent).ok());
}

TEST_F(GatekeeperTest, AKnownClientIsAdmittedWhenItsRecordCannotBeUpdated) {
  ASSERT_TRUE(Admit("firm-a", Role::kAgent).ok());
  const int64_t seen = store_.GetClient("firm-a")->last_seen_ms;
  store_.fail_touch = true;
  clock_.Advance(absl::Minutes(5));
  EXPECT_TRUE(Admit("firm-a", Role::kAgent).ok());
  EXPECT_EQ(store_.GetClient("firm-a")->last_seen_ms, seen);
  // A first contact that cannot be recorded is refused with the store's status.
  absl::StatusOr<Identity> stranger = Admit("firm-b", Role::kAgent);
  EXPECT_EQ(stranger.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(store_.GetClient("firm-b").ok());
}

}  // namespace
}  // namespace wxp::server
