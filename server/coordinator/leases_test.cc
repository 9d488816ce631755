// Several replicas (SPEC 6.1; leases.cc): swarms spread over the replicas alive, a replica
// that stops renewing loses its swarms to the others once its leases run out, and calls for
// a swarm another replica leads are refused with a typed redirect; a new leader records an
// upload its predecessor stored but never recorded, and retries that on every lease round
// until it sticks. Two coordinators on one store and one lease table, under one fake clock:
// no real time passes. The store checks fences as PostgreSQL does.
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/adapter.h"
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
  LeasesTest() {
    store_.RequireFences([this](const std::string& swarm) { return table_.Token(swarm); });
  }

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

  // A swarm of three particles, ON_DEMAND uploads, on `c`: two experts join, iteration 0 is
  // reported, and iteration 1, in which particle 1 becomes g. Its position's bytes reach
  // the blob store only if `store_g`, and no OnBlobStored records them: the leader died in
  // between (or, storing them late, had lost the swarm already). Returns g's blob id.
  std::string RunToAnUnrecordedUpload(Coordinator& c, bool store_g) {
    wxp::v1::SwarmSpec spec = Spec("s");
    spec.set_mode(wxp::v1::SYNC);
    spec.set_upload_policy(wxp::v1::ON_DEMAND);
    EXPECT_TRUE(c.CreateSwarm(admin_, spec).ok());
    for (int e = 0; e < 2; ++e) {
      wxp::v1::JoinRequest j;
      j.set_swarm("s");
      j.add_expert_blob_ids(*blobs_.Put(Position(e)));
      j.set_capacity(3);
      auto joined = c.Join(agents_[e], j);
      EXPECT_TRUE(joined.ok()) << joined.status();
    }
    for (const Caller& agent : agents_) {
      auto a = c.GetAssignment(agent, "s");
      EXPECT_TRUE(a.ok()) << a.status();
      for (const auto& p : a->particles()) {
        owner_[p.particle_id()] = agent;
        Report(c, p.particle_id(), 0, p.initial_position_blob_id(), 0.1);
      }
    }
    EXPECT_EQ(owner_.size(), 3u);
    std::string g;
    for (const auto& [i, agent] : owner_) {
      EXPECT_EQ(Targets(c, i, 1), wxp::v1::GetTargetsResponse::READY);
      const std::string bytes = Position(10 + i);
      const std::string id = Sha256Hex(bytes);
      if (Report(c, i, 1, id, i == 1 ? 0.9 : 0.05)) {
        if (i == 1) {
          g = id;
          if (store_g) {
            EXPECT_EQ(*blobs_.Put(bytes), id);
          }
        } else {
          EXPECT_EQ(*blobs_.Put(bytes), id);
          EXPECT_TRUE(c.OnBlobStored(id).ok());
        }
      }
    }
    EXPECT_FALSE(g.empty()) << "g's upload was not requested";
    return g;
  }

  // Valid adapter bytes, different for each `seed`.
  static std::string Position(int seed) {
    Adapter a;
    a.schema = Schema({{"m.lora_A.weight", DType::kF32, {2, 3}}});
    for (int i = 0; i < 6; ++i) a.values.push_back(0.01f * static_cast<float>(seed * 6 + i));
    return *SerializeAdapter(a);
  }

  // Reports `utility` for particle `i` at iteration `k`; whether an upload was requested.
  bool Report(Coordinator& c, int i, int k, const std::string& blob_id, double utility) {
    wxp::v1::ReportRequest r;
    r.set_swarm("s");
    r.set_particle_id(i);
    r.set_iteration(k);
    r.set_position_blob_id(blob_id);
    (*r.mutable_scores())["acc"] = utility;
    auto out = c.Report(owner_[i], r);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() && out->upload_requested();
  }

  wxp::v1::GetTargetsResponse::Status Targets(Coordinator& c, int i, int k,
                                              std::string* g = nullptr) {
    wxp::v1::GetTargetsRequest r;
    r.set_swarm("s");
    r.set_particle_id(i);
    r.set_iteration(k);
    auto t = c.GetTargets(owner_[i], r);
    EXPECT_TRUE(t.ok()) << t.status();
    if (!t.ok()) return wxp::v1::GetTargetsResponse::STATUS_UNSPECIFIED;
    if (g != nullptr) *g = t->global_best().blob_id();
    return t->status();
  }

  // Every particle gets its targets for iteration `k` from `c` and reports it.
  void RunIteration(Coordinator& c, int k) {
    for (const auto& [i, agent] : owner_) {
      ASSERT_EQ(Targets(c, i, k), wxp::v1::GetTargetsResponse::READY) << "particle " << i;
      const std::string bytes = Position(100 * k + i);
      ASSERT_EQ(*blobs_.Put(bytes), Sha256Hex(bytes));
      Report(c, i, k, Sha256Hex(bytes), 0.05);
    }
  }

  bool HeldInStore(int particle, int iteration) {
    auto e = store_.GetEvaluation("s", particle, iteration);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() && e->blob_held;
  }

  const Caller agents_[2] = {{"firm-a", Role::kAgent}, {"firm-b", Role::kAgent}};
  std::map<int, Caller> owner_;  // particle -> its agent
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

// The leader dies after g's bytes reached the (shared) blob store and before it recorded
// them. The agent, finding the bytes complete, never uploads them again; the next leader
// records them when it takes the swarm over (a write under its own lease's token), and the
// swarm moves on.
TEST_F(LeasesTest, TheNextLeaderRecordsAnUploadTheDeadOneDidNot) {
  MemoryLeases la(&table_, "a", "a.example:7443"), lb(&table_, "b", "b.example:7443");
  auto a = Replica(&la);
  ASSERT_TRUE(a->MaintainLeases().ok());
  const std::string g = RunToAnUnrecordedUpload(*a, /*store_g=*/true);
  EXPECT_EQ(Targets(*a, 0, 2), wxp::v1::GetTargetsResponse::WAIT);  // waits for g's bytes
  a.reset();  // kill -9: the lease is not given back

  auto b = Replica(&lb);
  clock_.Advance(absl::Seconds(4));
  ASSERT_TRUE(b->MaintainLeases().ok());
  EXPECT_EQ(b->LedSwarms(), Names{"s"});
  EXPECT_TRUE(HeldInStore(1, 1));
  std::string targets_g;
  EXPECT_EQ(Targets(*b, 0, 2, &targets_g), wxp::v1::GetTargetsResponse::READY);
  EXPECT_EQ(targets_g, g);
  const int before = b->GetSwarmStatus("s")->iteration();
  RunIteration(*b, 2);
  EXPECT_EQ(b->GetSwarmStatus("s")->iteration(), before + 1);  // round 2 closed
}

// As above, but the new leader's first attempts to record it fail (a lock its predecessor's
// session still held): on load, on the reload after it, and on the first lease round. The
// swarm waits meanwhile, and the lease round after the fault records it and the swarm moves
// on: a failed reconcile is not given up.
TEST_F(LeasesTest, AFailedReconcileIsRetriedOnTheNextLeaseRound) {
  MemoryLeases la(&table_, "a", "a.example:7443"), lb(&table_, "b", "b.example:7443");
  auto a = Replica(&la);
  ASSERT_TRUE(a->MaintainLeases().ok());
  const std::string g = RunToAnUnrecordedUpload(*a, /*store_g=*/true);
  a.reset();

  std::vector<std::string> b_log;
  Coordinator::Options o{&store_, &blobs_, &clock_, 64,
                         [&](const std::string& l) { b_log.push_back(l); }};
  o.leases = &lb;
  o.lease_duration = absl::Seconds(3);
  auto b = *Coordinator::Create(o);
  clock_.Advance(absl::Seconds(4));
  store_.FailCommitsWith(absl::UnavailableError("canceling statement due to lock timeout"));
  ASSERT_TRUE(b->MaintainLeases().ok());
  EXPECT_EQ(b->LedSwarms(), Names{"s"});
  EXPECT_EQ(Targets(*b, 0, 2), wxp::v1::GetTargetsResponse::WAIT);
  store_.FailCommitsWith(absl::OkStatus());
  // Nothing failed since the last reload: no request reconciles again by itself.
  EXPECT_EQ(Targets(*b, 0, 2), wxp::v1::GetTargetsResponse::WAIT);
  EXPECT_FALSE(HeldInStore(1, 1));
  EXPECT_NE(std::find_if(b_log.begin(), b_log.end(),
                         [](const std::string& l) {
                           return l.find("event=reconcile_failed swarm=s") != std::string::npos;
                         }),
            b_log.end());

  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(b->MaintainLeases().ok());
  EXPECT_TRUE(HeldInStore(1, 1));
  std::string targets_g;
  EXPECT_EQ(Targets(*b, 0, 2, &targets_g), wxp::v1::GetTargetsResponse::READY);
  EXPECT_EQ(targets_g, g);
  const int before = b->GetSwarmStatus("s")->iteration();
  RunIteration(*b, 2);
  EXPECT_EQ(b->GetSwarmStatus("s")->iteration(), before + 1);  // round 2 closed
}

// The old leader, paused past its lease mid-upload, finishes storing g's bytes after the
// new leader loaded the swarm; its own attempt to record them is fenced off. The new
// leader's next lease round notices the bytes, records them, and the swarm moves on.
TEST_F(LeasesTest, BytesAStaleLeaderStoredLateAreRecordedOnTheNextLeaseRound) {
  MemoryLeases la(&table_, "a", "a.example:7443"), lb(&table_, "b", "b.example:7443");
  auto a = Replica(&la);
  ASSERT_TRUE(a->MaintainLeases().ok());
  const std::string g = RunToAnUnrecordedUpload(*a, /*store_g=*/false);
  auto b = Replica(&lb);
  clock_.Advance(absl::Seconds(4));
  ASSERT_TRUE(b->MaintainLeases().ok());
  EXPECT_EQ(b->LedSwarms(), Names{"s"});
  EXPECT_EQ(Targets(*b, 0, 2), wxp::v1::GetTargetsResponse::WAIT);

  // A resumes where it was: the bytes land, and its record of them is refused.
  ASSERT_EQ(*blobs_.Put(Position(11)), g);
  EXPECT_EQ(a->OnBlobStored(g).code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(HeldInStore(1, 1));

  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(b->MaintainLeases().ok());
  EXPECT_TRUE(HeldInStore(1, 1));
  EXPECT_EQ(Targets(*b, 0, 2), wxp::v1::GetTargetsResponse::READY);
  const int before = b->GetSwarmStatus("s")->iteration();
  RunIteration(*b, 2);
  EXPECT_EQ(b->GetSwarmStatus("s")->iteration(), before + 1);  // round 2 closed
}

}  // namespace
}  // namespace wxp::server
