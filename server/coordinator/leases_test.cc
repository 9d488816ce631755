// Several replicas (SPEC 6.1; leases.cc): swarms spread over the replicas alive, a replica
// that stops renewing loses its swarms to the others once its leases run out, and calls for
// a swarm another replica leads are refused with a typed redirect. Two coordinators on one
// store and one lease table, under one fake clock: no real time passes.
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/leader_redirect.h"
#include "common/testing/fake_clock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/store/memory_store.h"
#include "server/store/testing/memory_leases.h"

namespace wxp::server {
namespace {

using store::testing::MemoryLeases;
using store::testing::MemoryLeaseTable;
using Names = std::vector<std::string>;

class LeasesTest : public ::testing::Test {
 protected:
  std::unique_ptr<Coordinator> Replica(MemoryLeases* leases) {
    Coordinator::Options o{&store_, &blobs_, &clock_, 64, [](const std::string&) {}};
    o.leases = leases;
    o.lease_duration = absl::Seconds(3);
    auto c = Coordinator::Create(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  wxp::v1::SwarmSpec Spec(const std::string& name) {
    wxp::v1::SwarmSpec spec;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
        "name: '" + name +
            "' min_experts: 2 hyperparameters { seed: 3 pool_size: 3 } "
            "utility { name: 'acc' weight: 1 min_value: 0 max_value: 1 }",
        &spec));
    return spec;
  }

  // Where `c` sends a caller asking about `swarm`: "" if it answers itself, the leader's
  // address if it redirects, "unavailable" if it refuses without one.
  std::string Answer(Coordinator& c, const std::string& swarm) {
    absl::StatusOr<wxp::v1::SwarmStatus> s = c.GetSwarmStatus(swarm);
    if (s.ok()) return "";
    if (std::optional<wxp::v1::LeaderRedirect> r = LeaderRedirectOf(s.status())) {
      EXPECT_EQ(r->swarm(), swarm);
      return r->leader_address();
    }
    EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable) << s.status();
    return "unavailable";
  }

  store::MemoryStore store_;
  MemoryBlobs blobs_;
  FakeClock clock_;
  MemoryLeaseTable table_;
  const Caller admin_{"ops", Role::kAdmin};
};

TEST_F(LeasesTest, SwarmsSpreadFailOverAndRedirect) {
  MemoryLeases la(&table_, "a", "a.example:7443"), lb(&table_, "b", "b.example:7443");
  auto a = Replica(&la);
  ASSERT_TRUE(a->MaintainLeases().ok());
  ASSERT_TRUE(a->CreateSwarm(admin_, Spec("s1")).ok());
  ASSERT_TRUE(a->CreateSwarm(admin_, Spec("s2")).ok());
  EXPECT_EQ(a->LedSwarms(), (Names{"s1", "s2"}));

  // B joins: both leases are A's and live, so B takes nothing and redirects to A.
  auto b = Replica(&lb);
  ASSERT_TRUE(b->MaintainLeases().ok());
  EXPECT_EQ(b->LedSwarms(), Names{});
  EXPECT_EQ(Answer(*b, "s1"), "a.example:7443");
  EXPECT_EQ(b->GetSwarmStatus("nope").status().code(), absl::StatusCode::kNotFound);
  // A, over its share of one, gives one back; B takes it on its next round.
  ASSERT_TRUE(a->MaintainLeases().ok());
  EXPECT_EQ(a->LedSwarms(), Names{"s1"});
  ASSERT_TRUE(b->MaintainLeases().ok());
  EXPECT_EQ(b->LedSwarms(), Names{"s2"});
  ASSERT_TRUE(a->MaintainLeases().ok());
  EXPECT_EQ(Answer(*a, "s2"), "b.example:7443");
  EXPECT_EQ(Answer(*b, "s2"), "");
  // Leases hold while renewed.
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(a->MaintainLeases().ok());
    ASSERT_TRUE(b->MaintainLeases().ok());
  }
  EXPECT_EQ(a->LedSwarms(), Names{"s1"});
  EXPECT_EQ(b->LedSwarms(), Names{"s2"});

  // A stops renewing (paused). Past its lease it answers nothing from memory, and B, alone
  // alive, takes s1 over.
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(Answer(*a, "s1"), "unavailable");
  ASSERT_TRUE(b->MaintainLeases().ok());
  EXPECT_EQ(b->LedSwarms(), (Names{"s1", "s2"}));
  EXPECT_EQ(Answer(*b, "s1"), "");
  // A resumes: its renewal fails, it forgets s1 and redirects to B.
  ASSERT_TRUE(a->MaintainLeases().ok());
  EXPECT_EQ(a->LedSwarms(), Names{});
  EXPECT_EQ(Answer(*a, "s1"), "b.example:7443");
  // ListSwarms on a replica leading nothing still lists every swarm.
  auto listed = a->ListSwarms();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->swarms_size(), 2);
  EXPECT_EQ(listed->swarms(0).name(), "s1");
  EXPECT_EQ(listed->swarms(0).state(), wxp::v1::PENDING_EXPERTS);
}

// A replica shut down gracefully gives its leases back: the others take over at once.
TEST_F(LeasesTest, ReleasedLeasesAreTakenAtOnce) {
  MemoryLeases la(&table_, "a", "a.example:7443"), lb(&table_, "b", "b.example:7443");
  auto a = Replica(&la);
  auto b = Replica(&lb);
  ASSERT_TRUE(a->CreateSwarm(admin_, Spec("s1")).ok());
  ASSERT_TRUE(b->MaintainLeases().ok());
  EXPECT_EQ(Answer(*b, "s1"), "a.example:7443");
  a->ReleaseLeases();
  EXPECT_EQ(a->LedSwarms(), Names{});
  ASSERT_TRUE(b->MaintainLeases().ok());
  EXPECT_EQ(b->LedSwarms(), Names{"s1"});
}

}  // namespace
}  // namespace wxp::server
