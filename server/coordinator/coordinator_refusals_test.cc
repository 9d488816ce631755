// SPEC 5.4: every refusal has its specific status code and changes nothing in the store.
// Also: sync round deadlines with a fake clock, and async runs.
#include <cmath>

#include "common/adapter.h"
#include "common/alpha_blob.h"
#include "common/sha256.h"
#include "common/synthetic.h"
#include "common/testing/fake_clock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/store/memory_store.h"

namespace wxp::server {
namespace {

using ::absl::StatusCode;

Schema TestSchema() { return Schema({{"m.lora_A.weight", DType::kF32, {4, 5}}}); }

std::string Blob(float fill, Schema schema = TestSchema()) {
  Adapter a;
  a.schema = schema;
  a.values.assign(static_cast<size_t>(schema.total_params()), fill);
  for (size_t i = 0; i < a.values.size(); ++i) a.values[i] += 0.01f * static_cast<float>(i);
  return *SerializeAdapter(a);
}

struct Snapshot {
  store::SwarmRecord swarm;
  std::vector<store::ParticleRow> particles;
  std::vector<store::EvaluationRecord> evaluations;
  std::vector<store::HistoryRecord> history;
  std::vector<store::ExpertRecord> experts;
  std::vector<store::BlobRecord> blobs;
  bool operator==(const Snapshot& o) const {
    return swarm == o.swarm && particles == o.particles && evaluations == o.evaluations &&
           history == o.history && experts == o.experts && blobs == o.blobs;
  }
};

class RefusalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Coordinator::Create({&store_, &blobs_, &clock_, 64, [](const std::string&) {}});
    ASSERT_TRUE(c.ok());
    c_ = *std::move(c);
  }

  void CreateSwarm(const std::string& extra = "") {
    wxp::v1::SwarmSpec spec;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        "name: 's' min_experts: 2 hyperparameters { seed: 3 pool_size: 3 } "
        "utility { name: 'acc' weight: 1 min_value: 0 max_value: 1 } " +
            extra,
        &spec));
    ASSERT_TRUE(c_->CreateSwarm(admin_, spec).ok());
  }

  absl::StatusOr<wxp::v1::JoinResponse> Join(const Caller& who, const std::string& bytes,
                                             int capacity = 2) {
    wxp::v1::JoinRequest r;
    r.set_swarm("s");
    r.add_expert_blob_ids(*blobs_.Put(bytes));
    r.set_capacity(capacity);
    return c_->Join(who, r);
  }

  absl::StatusOr<wxp::v1::ReportResponse> Report(const Caller& who, int particle, int k,
                                                 const std::string& blob,
                                                 std::map<std::string, double> scores) {
    wxp::v1::ReportRequest r;
    r.set_swarm("s");
    r.set_particle_id(particle);
    r.set_iteration(k);
    r.set_position_blob_id(blob);
    for (const auto& [n, v] : scores) (*r.mutable_scores())[n] = v;
    return c_->Report(who, r);
  }

  // A running swarm: two agents, pool of 3, every initial evaluation reported.
  void Running(const std::string& extra = "") {
    CreateSwarm(extra);
    ASSERT_TRUE(Join(a_, Blob(0.1f)).ok());
    ASSERT_TRUE(Join(b_, Blob(0.5f)).ok());
    auto as = c_->GetAssignment(a_, "s");
    auto bs = c_->GetAssignment(b_, "s");
    ASSERT_EQ(as->particles_size() + bs->particles_size(), 3);
    for (const auto* s : {&*as, &*bs}) {
      for (const auto& p : s->particles()) {
        const Caller& who = s == &*as ? a_ : b_;
        owner_[p.particle_id()] = who;
        initial_[p.particle_id()] = p.initial_position_blob_id();
        ASSERT_TRUE(Report(who, p.particle_id(), 0, p.initial_position_blob_id(),
                           {{"acc", 0.1 + 0.1 * p.particle_id()}})
                        .ok());
      }
    }
  }

  // The request for particle `i`'s first move in swarm "s".
  static wxp::v1::GetTargetsRequest Targets(int i) {
    wxp::v1::GetTargetsRequest t;
    t.set_swarm("s");
    t.set_particle_id(i);
    t.set_iteration(1);
    return t;
  }

  Snapshot Take() {
    return {*store_.GetSwarm("s"),    *store_.ListParticles("s"), *store_.ListEvaluations("s"),
            *store_.ListHistory("s"), *store_.ListExperts("s"),   *store_.ListBlobs()};
  }

  void ExpectRefused(const absl::Status& status, StatusCode code, const Snapshot& before,
                     const std::string& what) {
    EXPECT_EQ(status.code(), code) << what << ": " << status;
    EXPECT_FALSE(status.message().empty()) << what;
    EXPECT_TRUE(Take() == before) << what << " changed the store";
  }

  store::MemoryStore store_;
  MemoryBlobs blobs_;
  FakeClock clock_;
  std::unique_ptr<Coordinator> c_;
  const Caller admin_{"ops", Role::kAdmin}, a_{"firm-a", Role::kAgent}, b_{"firm-b", Role::kAgent};
  std::map<int, Caller> owner_;
  std::map<int, std::string> initial_;
};

TEST_F(RefusalTest, SwarmCreationRefusals) {
  CreateSwarm();
  wxp::v1::SwarmSpec dup;
  dup.set_name("s");
  dup.add_utility()->set_name("acc");
  dup.mutable_utility(0)->set_weight(1);
  EXPECT_EQ(c_->CreateSwarm(admin_, dup).status().code(), StatusCode::kAlreadyExists);
  wxp::v1::SwarmSpec bad = dup;
  bad.set_name("t");
  bad.set_quorum(7);
  EXPECT_EQ(c_->CreateSwarm(admin_, bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_.ListSwarms()->size(), 1u);
  EXPECT_EQ(c_->GetSwarmStatus("nope").status().code(), StatusCode::kNotFound);
}

TEST_F(RefusalTest, JoinRefusals) {
  CreateSwarm();
  ASSERT_TRUE(Join(a_, Blob(0.1f)).ok());
  const Snapshot before = Take();
  Schema other({{"m.lora_A.weight", DType::kF32, {5, 4}}});
  ExpectRefused(Join(b_, Blob(0.2f, other)).status(), StatusCode::kInvalidArgument, before,
                "schema mismatch");
  std::string nan_blob = Blob(std::nanf(""));
  ExpectRefused(Join(b_, nan_blob).status(), StatusCode::kInvalidArgument, before,
                "non-finite weights");
  ExpectRefused(Join(b_, "not safetensors").status(), StatusCode::kInvalidArgument, before,
                "unparsable expert");
  wxp::v1::JoinRequest missing;
  missing.set_swarm("s");
  missing.add_expert_blob_ids(std::string(64, 'e'));
  missing.set_capacity(1);
  ExpectRefused(c_->Join(b_, missing).status(), StatusCode::kNotFound, before, "missing blob");
  wxp::v1::JoinRequest bad_id = missing;
  bad_id.set_expert_blob_ids(0, "xyz");
  ExpectRefused(c_->Join(b_, bad_id).status(), StatusCode::kInvalidArgument, before, "bad id");
  wxp::v1::JoinRequest zero_capacity = missing;
  zero_capacity.set_capacity(0);
  ExpectRefused(c_->Join(b_, zero_capacity).status(), StatusCode::kInvalidArgument, before,
                "capacity 0");
  wxp::v1::JoinRequest bad_config = missing;
  bad_config.set_adapter_config_json("[1]");
  ExpectRefused(c_->Join(b_, bad_config).status(), StatusCode::kInvalidArgument, before,
                "config not an object");
  // An identical retry of a's join is acknowledged without change.
  auto retry = Join(a_, Blob(0.1f));
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->experts_joined(), 1);
  EXPECT_TRUE(Take() == before);
}

TEST_F(RefusalTest, ReportAndTargetRefusals) {
  Running();
  const Snapshot before = Take();
  const std::string blob = std::string(64, 'a');
  int pa = -1;  // a particle of firm-a's (the pool orders experts by blob id, not by join)
  for (const auto& [i, who] : owner_) {
    if (who.name == "firm-a") {
      pa = i;
      break;
    }
  }
  ASSERT_GE(pa, 0);
  const Caller& other = a_.name == owner_[pa].name ? b_ : a_;

  ExpectRefused(Report(other, pa, 1, blob, {{"acc", 0.5}}).status(), StatusCode::kPermissionDenied,
                before, "another agent's particle");
  ExpectRefused(Report(a_, 9, 1, blob, {{"acc", 0.5}}).status(), StatusCode::kNotFound, before,
                "unknown particle");
  wxp::v1::ReportRequest unknown_swarm;
  unknown_swarm.set_swarm("zz");
  unknown_swarm.set_position_blob_id(blob);
  ExpectRefused(c_->Report(a_, unknown_swarm).status(), StatusCode::kNotFound, before,
                "unknown swarm");
  ExpectRefused(Report(a_, pa, 1, blob, {{"acc", 0.5}}).status(), StatusCode::kFailedPrecondition,
                before, "report before targets (future)");
  ExpectRefused(Report(a_, pa, 0, initial_[pa], {{"acc", 0.9}}).status(),
                StatusCode::kAlreadyExists, before, "initial report with another payload");
  auto same = Report(a_, pa, 0, initial_[pa], {{"acc", 0.1 + 0.1 * pa}});
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->duplicate());
  EXPECT_TRUE(Take() == before);

  wxp::v1::GetTargetsRequest t = Targets(pa);
  ExpectRefused(c_->GetTargets(other, t).status(), StatusCode::kPermissionDenied, before,
                "targets for another agent's particle");
  auto targets = c_->GetTargets(a_, t);
  ASSERT_TRUE(targets.ok()) << targets.status();
  ASSERT_EQ(targets->status(), wxp::v1::GetTargetsResponse::READY);
  const Snapshot started = Take();  // starting an iteration is state (restart decision)
  ExpectRefused(Report(a_, pa, 1, blob, {{"acc", std::nan("")}}).status(),
                StatusCode::kInvalidArgument, started, "NaN score");
  ExpectRefused(Report(a_, pa, 1, blob, {{"acc", 1.5}}).status(), StatusCode::kInvalidArgument,
                started, "score out of range");
  ExpectRefused(Report(a_, pa, 1, blob, {{"other", 0.5}}).status(), StatusCode::kInvalidArgument,
                started, "missing component");
  ExpectRefused(Report(a_, pa, 1, "nothex", {{"acc", 0.5}}).status(), StatusCode::kInvalidArgument,
                started, "bad blob id");
  ExpectRefused(Report(a_, pa, 2, blob, {{"acc", 0.5}}).status(), StatusCode::kFailedPrecondition,
                started, "future iteration");
  ASSERT_TRUE(Report(a_, pa, 1, blob, {{"acc", 0.5}}).ok());
  ExpectRefused(Report(a_, pa, 1, blob, {{"acc", 0.6}}).status(), StatusCode::kAlreadyExists,
                Take(), "different payload for a reported iteration");
  t.set_iteration(0);
  EXPECT_EQ(c_->GetTargets(a_, t).status().code(), StatusCode::kInvalidArgument);
  // Joins are closed once the pool exists.
  EXPECT_EQ(Join(b_, Blob(0.9f)).status().code(), StatusCode::kFailedPrecondition);
}

// A write the store cannot commit (a full disk) is refused with the store's error and
// changes nothing, although the coordinator had already staged it in memory and queued it:
// the live state is reloaded from the store, reads keep working, and the same request
// succeeds once the store can write again.
TEST_F(RefusalTest, FailedCommitIsRefusedAndForgotten) {
  Running();
  const int pa = owner_.begin()->first;
  const Caller who = owner_.begin()->second;
  const wxp::v1::GetTargetsRequest t = Targets(pa);
  const Snapshot before = Take();
  const auto status_before = c_->GetSwarmStatus("s");
  ASSERT_TRUE(status_before.ok());
  const absl::Status full = absl::ResourceExhaustedError("the disk is full");
  store_.FailCommitsWith(full);
  ExpectRefused(c_->GetTargets(who, t).status(), StatusCode::kResourceExhausted, before,
                "targets on a full disk");
  auto status = c_->GetSwarmStatus("s");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->SerializeAsString(), status_before->SerializeAsString());
  store_.FailCommitsWith(absl::OkStatus());
  auto targets = c_->GetTargets(who, t);
  ASSERT_TRUE(targets.ok()) << targets.status();
  ASSERT_EQ(targets->status(), wxp::v1::GetTargetsResponse::READY);
  const Snapshot started = Take();
  const std::string blob = std::string(64, 'c');
  store_.FailCommitsWith(full);
  ExpectRefused(Report(who, pa, 1, blob, {{"acc", 0.5}}).status(), StatusCode::kResourceExhausted,
                started, "report on a full disk");
  store_.FailCommitsWith(absl::OkStatus());
  auto report = Report(who, pa, 1, blob, {{"acc", 0.5}});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->duplicate());  // the refused one left no trace in memory either
  EXPECT_EQ(store_.GetEvaluation("s", pa, 1)->utility, 0.5);
}

// An agent killed after the server acknowledged a report, before it saved the answer,
// resends it: the duplicate's answer must ask for the upload as the first one did, or under
// ALWAYS the server never holds that position.
TEST_F(RefusalTest, RetriedReportRepeatsTheUploadRequest) {
  Running("mode: ASYNC upload_policy: ALWAYS");
  const int pa = owner_.begin()->first;
  const Caller who = owner_[pa];
  const wxp::v1::GetTargetsRequest t = Targets(pa);
  auto targets = c_->GetTargets(who, t);
  ASSERT_TRUE(targets.ok()) << targets.status();
  ASSERT_EQ(targets->status(), wxp::v1::GetTargetsResponse::READY);
  const std::string blob = Sha256Hex(Blob(0.7f));
  // Neither best nor worst: only the policy asks for it.
  auto first = Report(who, pa, 1, blob, {{"acc", 0.2}});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_FALSE(first->new_global_best() || first->new_global_worst());
  EXPECT_TRUE(first->upload_requested());
  auto retry = Report(who, pa, 1, blob, {{"acc", 0.2}});
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->duplicate());
  EXPECT_TRUE(retry->upload_requested());
  // Once held, nobody asks again.
  ASSERT_TRUE(blobs_.Put(Blob(0.7f)).ok());
  ASSERT_TRUE(c_->OnBlobStored(blob).ok());
  auto after = Report(who, pa, 1, blob, {{"acc", 0.2}});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_FALSE(after->upload_requested());
}

// Found by //server/coordinator/fuzz:coordinator_requests_fuzzer: a position blob that
// OnBlobStored refused stays stored (uploads are content-addressed, not undone), and the
// restart path used to mark every evaluation whose bytes are present as held, turning the
// refused blob into a position others move toward.
TEST_F(RefusalTest, RefusedPositionBlobStaysUnheldAcrossRestart) {
  Running();
  const int pa = owner_.begin()->first;
  const Caller who = owner_.begin()->second;
  const wxp::v1::GetTargetsRequest t = Targets(pa);
  ASSERT_EQ(c_->GetTargets(who, t)->status(), wxp::v1::GetTargetsResponse::READY);
  Adapter nan;
  nan.schema = TestSchema();
  nan.values.assign(static_cast<size_t>(nan.schema.total_params()), std::nanf(""));
  const std::string bytes = *SerializeAdapter(nan);
  const std::string id = Sha256Hex(bytes);
  ASSERT_TRUE(Report(who, pa, 1, id, {{"acc", 0.99}}).ok());
  ASSERT_TRUE(blobs_.Put(bytes).ok());
  EXPECT_EQ(c_->OnBlobStored(id).code(), StatusCode::kInvalidArgument);
  const Snapshot before = Take();

  auto restarted = Coordinator::Create({&store_, &blobs_, &clock_, 64, [](const std::string&) {}});
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_TRUE(Take() == before) << "the restart changed the store";
  EXPECT_FALSE(store_.GetEvaluation("s", pa, 1)->blob_held);
}

TEST_F(RefusalTest, SyncRoundClosesAtTheDeadlineWithQuorumAndStragglersRejoin) {
  wxp::v1::SwarmSpec spec;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      "name: 's' min_experts: 2 round_deadline_seconds: 30 quorum: 0.5 "
      "hyperparameters { seed: 3 pool_size: 3 } utility { name: 'acc' weight: 1 }",
      &spec));
  ASSERT_TRUE(c_->CreateSwarm(admin_, spec).ok());
  ASSERT_TRUE(Join(a_, Blob(0.1f), 2).ok());
  ASSERT_TRUE(Join(b_, Blob(0.5f), 2).ok());
  std::map<int, Caller> owners;
  for (const Caller* who : {&a_, &b_}) {
    const auto assignment = c_->GetAssignment(*who, "s");  // outlives the loop below
    ASSERT_TRUE(assignment.ok());
    for (const auto& p : assignment->particles()) {
      owners[p.particle_id()] = *who;
      ASSERT_TRUE(Report(*who, p.particle_id(), 0, p.initial_position_blob_id(),
                         {{"acc", 0.1 * p.particle_id()}})
                      .ok());
    }
  }
  // Round 1: only particles 0 and 1 report; particle 2 is a straggler.
  for (int i : {0, 1}) {
    const wxp::v1::GetTargetsRequest t = Targets(i);
    ASSERT_EQ(c_->GetTargets(owners[i], t)->status(), wxp::v1::GetTargetsResponse::READY);
    const std::string bytes = Blob(0.2f + i);
    auto r = Report(owners[i], i, 1, Sha256Hex(bytes), {{"acc", 0.05 * i}});
    ASSERT_TRUE(r.ok()) << r.status();
  }
  EXPECT_EQ(c_->GetSwarmStatus("s")->iteration(), 0);
  ASSERT_TRUE(c_->Tick().ok());  // before the deadline nothing closes
  EXPECT_EQ(c_->GetSwarmStatus("s")->iteration(), 0);
  clock_.Advance(absl::Seconds(31));
  ASSERT_TRUE(c_->Tick().ok());
  EXPECT_EQ(c_->GetSwarmStatus("s")->iteration(), 1);  // 2 of 3 >= quorum 0.5
  auto history = c_->GetHistory("s");
  EXPECT_EQ(history->entries(1).reports(), 2);
  // The straggler asks for iteration 1 and is moved to the open round 2.
  wxp::v1::GetTargetsRequest late;
  late.set_swarm("s");
  late.set_particle_id(2);
  late.set_iteration(1);
  auto t = c_->GetTargets(owners[2], late);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->status(), wxp::v1::GetTargetsResponse::READY);
  EXPECT_EQ(t->iteration(), 2);
  // Its late report for round 1 is refused as stale.
  EXPECT_EQ(Report(owners[2], 2, 1, std::string(64, 'c'), {{"acc", 0.3}}).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(RefusalTest, PauseResumeStop) {
  Running();
  ASSERT_TRUE(c_->Pause(admin_, "s", "maintenance").ok());
  const wxp::v1::GetTargetsRequest t = Targets(0);
  EXPECT_EQ(c_->GetTargets(owner_[0], t)->status(), wxp::v1::GetTargetsResponse::WAIT);
  EXPECT_EQ(c_->Pause(admin_, "s", "").status().code(), StatusCode::kOk);  // idempotent
  ASSERT_TRUE(c_->Resume(admin_, "s", "").ok());
  EXPECT_EQ(c_->Resume(admin_, "s", "").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(c_->GetTargets(owner_[0], t)->status(), wxp::v1::GetTargetsResponse::READY);
  auto stopped = c_->Stop(admin_, "s", "done");
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->state(), wxp::v1::STOPPED);
  EXPECT_EQ(stopped->termination_reason(), "stopped");
  EXPECT_EQ(c_->GetTargets(owner_[0], t)->status(), wxp::v1::GetTargetsResponse::DONE);
  EXPECT_EQ(c_->Resume(admin_, "s", "").status().code(), StatusCode::kFailedPrecondition);
  auto audit = store_.ListAudit("s");
  bool paused = false;
  for (const auto& a : *audit) paused |= a.action == "pause" && a.detail == "maintenance";
  EXPECT_TRUE(paused);
}

TEST_F(RefusalTest, DynamicUtilityRechoosesBestsWithoutReevaluating) {
  wxp::v1::SwarmSpec spec;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      "name: 's' min_experts: 2 hyperparameters { seed: 3 pool_size: 3 max_iterations: 10 } "
      "utility { name: 'acc' weight: 1 } utility { name: 'speed' weight: 0 }",
      &spec));
  ASSERT_TRUE(c_->CreateSwarm(admin_, spec).ok());
  ASSERT_TRUE(Join(a_, Blob(0.1f), 2).ok());
  ASSERT_TRUE(Join(b_, Blob(0.5f), 2).ok());
  // Particle i scores acc = 0.3 - 0.1 i and speed = 0.1 i: the best flips with the weights.
  for (const Caller* who : {&a_, &b_}) {
    const auto assignment = c_->GetAssignment(*who, "s");
    for (const auto& p : assignment->particles()) {
      const int i = p.particle_id();
      ASSERT_TRUE(Report(*who, i, 0, p.initial_position_blob_id(),
                         {{"acc", 0.3 - 0.1 * i}, {"speed", 0.1 * i}})
                      .ok());
    }
  }
  EXPECT_EQ(c_->GetSwarmStatus("s")->global_best().particle_id(), 0);
  const auto evaluations_before = *store_.ListEvaluations("s");
  const Snapshot before = Take();
  EXPECT_EQ(c_->SetUtilityWeights(admin_, "s", {{"latency", 1}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(Take() == before);
  // A scheduled change is checked as it is made: its weights, and that its iteration can
  // still come. Refused, it leaves nothing scheduled.
  ExpectRefused(c_->SetUtilityWeights(admin_, "s", {{"acc", 0}, {"speed", 1}}, -1).status(),
                StatusCode::kInvalidArgument, before, "a negative after_iteration");
  ExpectRefused(c_->SetUtilityWeights(admin_, "s", {{"latency", 1}}, 2).status(),
                StatusCode::kInvalidArgument, before, "an unknown component, scheduled");
  ExpectRefused(c_->SetUtilityWeights(admin_, "s", {{"acc", 0}, {"speed", 0}}, 2).status(),
                StatusCode::kInvalidArgument, before, "every weight 0, scheduled");
  ExpectRefused(c_->SetUtilityWeights(admin_, "s", {{"speed", 1}}, 10).status(),
                StatusCode::kInvalidArgument, before, "after the last iteration");
  EXPECT_FALSE(c_->GetUtilityWeights("s")->has_scheduled());
  // Scheduled after iteration 2: stored, shown, and nothing else changes yet.
  auto scheduled = c_->SetUtilityWeights(admin_, "s", {{"speed", 1}}, 2);
  ASSERT_TRUE(scheduled.ok()) << scheduled.status();
  EXPECT_EQ(scheduled->version(), 1);
  EXPECT_EQ(scheduled->scheduled().after_iteration(), 2);
  EXPECT_EQ(scheduled->scheduled().weights().at("speed"), 1);
  EXPECT_EQ(c_->GetUtilityWeights("s")->scheduled().after_iteration(), 2);
  EXPECT_EQ(c_->GetSwarmStatus("s")->global_best().particle_id(), 0);
  EXPECT_EQ(*store_.ListHistory("s"), before.history);
  // A change made now leaves the scheduled one pending.

  auto weights = c_->SetUtilityWeights(admin_, "s", {{"acc", 0}, {"speed", 1}});
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ(weights->version(), 2);
  auto status = c_->GetSwarmStatus("s");
  EXPECT_EQ(status->utility_weight_version(), 2);
  EXPECT_EQ(status->global_best().particle_id(), 2);
  EXPECT_DOUBLE_EQ(status->global_best().utility(), 0.2);
  EXPECT_EQ(status->global_worst().particle_id(), 0);
  EXPECT_EQ(*store_.ListEvaluations("s"), evaluations_before);  // nothing re-evaluated
  auto history = c_->GetHistory("s");
  ASSERT_EQ(history->entries_size(), 2);  // round 0 under version 1, and again under 2
  EXPECT_EQ(history->entries(0).utility_weight_version(), 1);
  EXPECT_DOUBLE_EQ(history->entries(0).global_best_utility(), 0.3);
  EXPECT_EQ(history->entries(1).utility_weight_version(), 2);
  EXPECT_DOUBLE_EQ(history->entries(1).global_best_utility(), 0.2);
  EXPECT_EQ(c_->GetUtilityWeights("s")->components(1).weight(), 1);
  EXPECT_EQ(c_->GetUtilityWeights("s")->scheduled().after_iteration(), 2);
  // The targets of iteration 1 move toward the re-chosen g.
  const wxp::v1::GetTargetsRequest t = Targets(0);
  const Caller owner0 = c_->GetAssignment(a_, "s")->particles(0).particle_id() == 0 ? a_ : b_;
  auto targets = c_->GetTargets(owner0, t);
  ASSERT_TRUE(targets.ok()) << targets.status();
  EXPECT_EQ(targets->global_best().particle_id(), 2);
  EXPECT_EQ(targets->utility_weight_version(), 2);
}

// A LoRA expert of one module (in 6, out 5) and rank `rank`.
std::string LoraBlob(int rank, float fill, int64_t in = 6) {
  return Blob(fill, Schema({{"base_model.model.m.lora_A.weight", DType::kF32, {rank, in}},
                            {"base_model.model.m.lora_B.weight", DType::kF32, {5, rank}}}));
}

TEST_F(RefusalTest, CoefficientSpaceJoinAndReportRefusals) {
  CreateSwarm("space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT");
  ASSERT_TRUE(Join(a_, LoraBlob(2, 0.1f)).ok());
  Snapshot before = Take();
  auto other_shape = Join(b_, LoraBlob(3, 0.2f, /*in=*/7));
  ExpectRefused(other_shape.status(), StatusCode::kInvalidArgument, before, "module shape");
  EXPECT_NE(other_shape.status().message().find("EXPERT_COEFFICIENTS"), std::string::npos)
      << other_shape.status();
  // Another rank is fine in this space: the pool is built over alpha.
  ASSERT_TRUE(Join(b_, LoraBlob(3, 0.2f)).ok());
  auto as = c_->GetAssignment(a_, "s");
  ASSERT_TRUE(as.ok()) << as.status();
  EXPECT_EQ(as->space(), wxp::v1::EXPERT_COEFFICIENTS);
  EXPECT_EQ(as->decoder(), wxp::v1::LORA_PRODUCT);
  ASSERT_EQ(as->expert_blob_ids_size(), 2);
  ASSERT_GE(as->particles_size(), 1);
  const auto& p = as->particles(0);
  ASSERT_EQ(p.initial_alpha_size(), 2);
  EXPECT_EQ(p.initial_position_blob_id(), *AlphaBlobId(p.initial_alpha()));

  auto report = [&](std::vector<float> alpha, const std::string& id) {
    wxp::v1::ReportRequest r;
    r.set_swarm("s");
    r.set_particle_id(p.particle_id());
    r.set_iteration(0);
    r.set_position_blob_id(id);
    r.mutable_position_alpha()->Assign(alpha.begin(), alpha.end());
    (*r.mutable_scores())["acc"] = 0.5;
    return c_->Report(a_, r);
  };
  const std::vector<float> alpha(p.initial_alpha().begin(), p.initial_alpha().end());
  before = Take();
  ExpectRefused(report({1.0f}, "").status(), StatusCode::kInvalidArgument, before, "length");
  ExpectRefused(report({1.0f, std::nanf("")}, "").status(), StatusCode::kInvalidArgument, before,
                "NaN");
  ExpectRefused(report({}, p.initial_position_blob_id()).status(), StatusCode::kInvalidArgument,
                before, "no alpha");
  ExpectRefused(report(alpha, std::string(64, 'f')).status(), StatusCode::kInvalidArgument, before,
                "another blob id");
  auto ok = report(alpha, "");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_FALSE(ok->upload_requested());
}

TEST_F(RefusalTest, WeightsSpaceRefusesAlphaInReports) {
  Running();
  const Snapshot before = Take();
  wxp::v1::ReportRequest r;
  r.set_swarm("s");
  r.set_particle_id(0);
  r.set_iteration(1);
  r.mutable_position_alpha()->Add(1.0f);
  (*r.mutable_scores())["acc"] = 0.5;
  ExpectRefused(c_->Report(owner_[0], r).status(), StatusCode::kInvalidArgument, before,
                "alpha in a WEIGHTS swarm");
}

}  // namespace
}  // namespace wxp::server
