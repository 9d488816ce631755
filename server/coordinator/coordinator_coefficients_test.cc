// Dynamic utility (SPEC 4.2) in the EXPERT_COEFFICIENTS space (SPEC 4.3): a new weight
// version re-chooses every p_i, g and g_w among the reported alphas (the server holds all of
// them in this space), and what it then hands out and exports follows the new choice: the
// targets and the status carry the re-chosen alphas, and the export is the re-chosen g
// decoded. The status shows the space the swarm searches and its dimension.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/adapter.h"
#include "common/alpha_blob.h"
#include "common/particle_space.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/swarm_engine.h"
#include "common/testing/fake_clock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/store/memory_store.h"

namespace wxp::server {
namespace {

// A LoRA expert of one module (in 6, out 5, rank 2) whose entries start at `fill`.
Adapter LoraExpert(float fill) {
  Adapter a;
  a.schema = Schema({{"base_model.model.m.lora_A.weight", DType::kF32, {2, 6}},
                     {"base_model.model.m.lora_B.weight", DType::kF32, {5, 2}}});
  a.values.assign(static_cast<size_t>(a.schema.total_params()), fill);
  for (size_t i = 0; i < a.values.size(); ++i) a.values[i] += 0.01f * static_cast<float>(i);
  return a;
}

std::vector<float> Alpha(const google::protobuf::RepeatedField<float>& alpha) {
  return {alpha.begin(), alpha.end()};
}

class CoefficientDynamicUtilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Coordinator::Create({&store_, &blobs_, &clock_, 64, [](const std::string&) {}});
    ASSERT_TRUE(c.ok()) << c.status();
    c_ = *std::move(c);
  }

  // Joins `expert` for `who` and remembers its bytes.
  void Join(const Caller& who, const Adapter& expert) {
    const std::string bytes = *SerializeAdapter(expert);
    const std::string id = *blobs_.Put(bytes);
    expert_bytes_[id] = bytes;
    wxp::v1::JoinRequest r;
    r.set_swarm("s");
    r.add_expert_blob_ids(id);
    r.set_capacity(4);
    auto out = c_->Join(who, r);
    ASSERT_TRUE(out.ok()) << out.status();
  }

  // A coefficient-space report as the agent sends it: no position_blob_id unless `blob_id`.
  absl::StatusOr<wxp::v1::ReportResponse> Report(int particle, int k,
                                                 const std::vector<float>& alpha, double acc,
                                                 double speed, const std::string& key = "",
                                                 const std::string& blob_id = "") {
    wxp::v1::ReportRequest r;
    r.set_swarm("s");
    r.set_particle_id(particle);
    r.set_iteration(k);
    r.set_idempotency_key(key);
    r.set_position_blob_id(blob_id);
    r.mutable_position_alpha()->Assign(alpha.begin(), alpha.end());
    (*r.mutable_scores())["acc"] = acc;
    (*r.mutable_scores())["speed"] = speed;
    return c_->Report(owner_.at(particle), r);
  }

  absl::StatusOr<wxp::v1::GetTargetsResponse> Targets(int particle, int k) {
    wxp::v1::GetTargetsRequest r;
    r.set_swarm("s");
    r.set_particle_id(particle);
    r.set_iteration(k);
    return c_->GetTargets(owner_.at(particle), r);
  }

  // The space the server decodes with: the experts in pool order, as they were joined.
  std::unique_ptr<ParticleSpace> Space() {
    std::vector<std::string> ids;
    for (const auto& [id, bytes] : expert_bytes_) ids.push_back(id);
    std::vector<Adapter> experts;
    for (int i : PoolOrder(ids)) {
      experts.push_back(AdapterFromSafetensors(*SafetensorsFile::FromBytes(expert_bytes_[ids[i]])));
    }
    auto space = ParticleSpace::Create(
        std::move(experts), {SpaceKind::kExpertCoefficients, LoraDecoder::kLoraProduct, 0, false});
    EXPECT_TRUE(space.ok()) << space.status();
    return space.ok() ? *std::move(space) : nullptr;
  }

  store::MemoryStore store_;
  MemoryBlobs blobs_;
  FakeClock clock_;
  std::unique_ptr<Coordinator> c_;
  const Caller admin_{"ops", Role::kAdmin};
  const Caller a_{"firm-a", Role::kAgent};
  const Caller b_{"firm-b", Role::kAgent};
  std::map<std::string, std::string> expert_bytes_;  // by blob id
  std::map<int, Caller> owner_;
};

TEST_F(CoefficientDynamicUtilityTest, NewWeightsRechoosePersonalBestsAndGlobalBest) {
  wxp::v1::SwarmSpec spec;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      "name: 's' min_experts: 3 mode: SYNC hyperparameters { seed: 3 pool_size: 4 "
      "max_iterations: 10 patience: 10 } utility { name: 'acc' weight: 1 } "
      "utility { name: 'speed' weight: 0 } space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT",
      &spec));
  ASSERT_TRUE(c_->CreateSwarm(admin_, spec).ok());
  Join(a_, LoraExpert(0.1f));
  // The space shows before the pool exists; its dimension only once it does.
  auto pending = c_->GetSwarmStatus("s");
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_EQ(pending->state(), wxp::v1::PENDING_EXPERTS);
  EXPECT_EQ(pending->space(), wxp::v1::EXPERT_COEFFICIENTS);
  EXPECT_EQ(pending->decoder(), wxp::v1::LORA_PRODUCT);
  EXPECT_EQ(pending->svd_rank(), 0);
  EXPECT_FALSE(pending->per_module());
  EXPECT_EQ(pending->expert_sharing(), wxp::v1::ALLOWED);
  EXPECT_EQ(pending->coefficient_dimension(), 0);
  Join(a_, LoraExpert(-0.2f));
  Join(b_, LoraExpert(0.3f));
  ASSERT_EQ(c_->GetSwarmStatus("s")->state(), wxp::v1::RUNNING);
  EXPECT_EQ(c_->GetSwarmStatus("s")->coefficient_dimension(), 3);

  // x0[i]: the initial alphas (three unit vectors and a crossover child).
  std::map<int, std::vector<float>> x0, x1;
  for (const Caller* who : {&a_, &b_}) {
    auto assignment = c_->GetAssignment(*who, "s");
    ASSERT_TRUE(assignment.ok()) << assignment.status();
    for (const auto& p : assignment->particles()) {
      owner_.emplace(p.particle_id(), *who);
      x0[p.particle_id()] = Alpha(p.initial_alpha());
    }
  }
  ASSERT_EQ(x0.size(), 4u);
  // Iteration 0 is best on acc, iteration 1 on speed, for every particle; particle 0 is the
  // best on acc (0.6 at iteration 0), particle 3 on speed (0.5 at iteration 1).
  for (const auto& [i, alpha] : x0) {
    auto r = Report(i, 0, alpha, 0.6 - 0.1 * i, 0.05 * i);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  for (const auto& [i, alpha] : x0) {
    auto t = Targets(i, 1);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_EQ(t->status(), wxp::v1::GetTargetsResponse::READY);
    // Where the agent's move took it; the coordinator does not redo the arithmetic.
    x1[i] = alpha;
    for (size_t j = 0; j < x1[i].size(); ++j) x1[i][j] += 0.25f * static_cast<float>(i + j + 1);
    auto r = Report(i, 1, x1[i], 0.1, 0.2 + 0.1 * i);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->upload_requested());  // the server holds every alpha already
  }

  auto status = c_->GetSwarmStatus("s");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->iteration(), 1);
  EXPECT_EQ(status->global_best().particle_id(), 0);
  EXPECT_EQ(status->global_best().iteration(), 0);
  EXPECT_EQ(status->global_best().blob_id(), *AlphaBlobId(x0[0]));
  EXPECT_EQ(Alpha(status->global_best().alpha()), x0[0]);
  EXPECT_DOUBLE_EQ(status->global_best().utility(), 0.6);
  ASSERT_FALSE(status->global_worst().blob_id().empty());
  EXPECT_EQ(*AlphaBlobId(Alpha(status->global_worst().alpha())), status->global_worst().blob_id());
  auto particles = c_->ListParticles("s");
  ASSERT_TRUE(particles.ok()) << particles.status();
  ASSERT_EQ(particles->particles_size(), 4);
  for (const auto& p : particles->particles()) {
    EXPECT_DOUBLE_EQ(p.best_utility(), 0.6 - 0.1 * p.particle_id()) << p.particle_id();
  }

  auto weights = c_->SetUtilityWeights(admin_, "s", {{"acc", 0}, {"speed", 1}});
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ(weights->version(), 2);

  // g is now particle 3 at iteration 1, named by its alpha's canonical blob; g_w is
  // particle 0's initial position (speed 0).
  status = c_->GetSwarmStatus("s");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->utility_weight_version(), 2);
  EXPECT_EQ(status->global_best().particle_id(), 3);
  EXPECT_EQ(status->global_best().iteration(), 1);
  EXPECT_EQ(status->global_best().blob_id(), *AlphaBlobId(x1[3]));
  EXPECT_EQ(Alpha(status->global_best().alpha()), x1[3]);
  EXPECT_DOUBLE_EQ(status->global_best().utility(), 0.5);
  EXPECT_EQ(status->global_worst().particle_id(), 0);
  EXPECT_EQ(status->global_worst().iteration(), 0);
  EXPECT_EQ(status->global_worst().blob_id(), *AlphaBlobId(x0[0]));
  EXPECT_EQ(Alpha(status->global_worst().alpha()), x0[0]);
  auto listed = c_->ListSwarms();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->swarms_size(), 1);
  EXPECT_EQ(Alpha(listed->swarms(0).global_best().alpha()), x1[3]);
  // Every p_i moved to its iteration-1 position.
  particles = c_->ListParticles("s");
  ASSERT_TRUE(particles.ok()) << particles.status();
  ASSERT_EQ(particles->particles_size(), 4);
  for (const auto& p : particles->particles()) {
    EXPECT_DOUBLE_EQ(p.best_utility(), 0.2 + 0.1 * p.particle_id()) << p.particle_id();
  }
  auto history = c_->GetHistory("s");
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_GE(history->entries_size(), 1);
  const auto& last = history->entries(history->entries_size() - 1);
  EXPECT_EQ(last.utility_weight_version(), 2);
  EXPECT_DOUBLE_EQ(last.global_best_utility(), 0.5);

  // Iteration 2's targets carry the re-chosen alphas inline: g's, g_w's and p_i's, with no
  // blob ids (alpha is the position; its id follows from it).
  for (const auto& [i, alpha] : x1) {
    auto t = Targets(i, 2);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_EQ(t->status(), wxp::v1::GetTargetsResponse::READY) << i;
    EXPECT_EQ(t->utility_weight_version(), 2);
    EXPECT_EQ(t->global_best().particle_id(), 3);
    EXPECT_EQ(Alpha(t->global_best().alpha()), x1[3]) << i;
    EXPECT_DOUBLE_EQ(t->global_best().utility(), 0.5);
    EXPECT_EQ(Alpha(t->global_worst().alpha()), x0[0]) << i;
    EXPECT_EQ(t->personal_best().iteration(), 1) << i;
    EXPECT_EQ(t->global_best().blob_id(), "") << i;
    EXPECT_EQ(t->global_worst().blob_id(), "") << i;
    EXPECT_EQ(t->personal_best().blob_id(), "") << i;
    EXPECT_EQ(Alpha(t->personal_best().alpha()), alpha) << i;
    EXPECT_DOUBLE_EQ(t->personal_best().utility(), 0.2 + 0.1 * i) << i;
  }

  // The export is the re-chosen g decoded.
  auto best = c_->Best("s");
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(best->position_blob_id, *AlphaBlobId(x1[3]));
  EXPECT_DOUBLE_EQ(best->utility, 0.5);
  auto space = Space();
  ASSERT_NE(space, nullptr);
  auto decoded = space->Decode(x1[3]);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(best->blob_id, Sha256Hex(*SerializeAdapter(*decoded)));
  EXPECT_EQ(*blobs_.ReadAll(best->blob_id), *SerializeAdapter(*decoded));

  // The status a control answers with is the same view.
  auto stopped = c_->Stop(admin_, "s", "done");
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->state(), wxp::v1::STOPPED);
  EXPECT_EQ(stopped->space(), wxp::v1::EXPERT_COEFFICIENTS);
  EXPECT_EQ(stopped->coefficient_dimension(), 3);
  EXPECT_EQ(Alpha(stopped->global_best().alpha()), x1[3]);
  EXPECT_EQ(Alpha(stopped->global_worst().alpha()), x0[0]);
}

// Two LoRA modules of rank `rank` (so experts of different ranks share one space).
Adapter TwoModuleExpert(float fill, int rank) {
  Adapter a;
  a.schema = Schema({{"base_model.model.m.lora_A.weight", DType::kF32, {rank, 6}},
                     {"base_model.model.m.lora_B.weight", DType::kF32, {5, rank}},
                     {"base_model.model.n.lora_A.weight", DType::kF32, {rank, 4}},
                     {"base_model.model.n.lora_B.weight", DType::kF32, {3, rank}}});
  a.values.assign(static_cast<size_t>(a.schema.total_params()), fill);
  for (size_t i = 0; i < a.values.size(); ++i) a.values[i] += 0.01f * static_cast<float>(i);
  return a;
}

TEST_F(CoefficientDynamicUtilityTest, StatusShowsTheSpaceAndThePerModuleDimension) {
  wxp::v1::SwarmSpec spec;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      "name: 's' min_experts: 3 hyperparameters { seed: 3 pool_size: 4 } "
      "utility { name: 'acc' weight: 1 } space: EXPERT_COEFFICIENTS "
      "decoder: LORA_PRODUCT_SVD svd_rank: 2 per_module: true",
      &spec));
  ASSERT_TRUE(c_->CreateSwarm(admin_, spec).ok());
  Join(a_, TwoModuleExpert(0.1f, 1));
  Join(a_, TwoModuleExpert(-0.2f, 2));
  Join(b_, TwoModuleExpert(0.3f, 3));
  // Pause answers with the same view as GetSwarmStatus.
  auto paused = c_->Pause(admin_, "s", "");
  ASSERT_TRUE(paused.ok()) << paused.status();
  EXPECT_EQ(paused->state(), wxp::v1::PAUSED);
  EXPECT_EQ(paused->space(), wxp::v1::EXPERT_COEFFICIENTS);
  EXPECT_EQ(paused->decoder(), wxp::v1::LORA_PRODUCT_SVD);
  EXPECT_EQ(paused->svd_rank(), 2);
  EXPECT_TRUE(paused->per_module());
  EXPECT_EQ(paused->expert_sharing(), wxp::v1::ALLOWED);
  EXPECT_EQ(paused->coefficient_dimension(), 3 * 2);  // experts x modules
  // Nothing evaluated yet: no g, so no alpha either.
  EXPECT_EQ(paused->global_best().particle_id(), -1);
  EXPECT_EQ(paused->global_best().alpha_size(), 0);
  auto resumed = c_->Resume(admin_, "s", "");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->coefficient_dimension(), 6);
  EXPECT_EQ(c_->GetSwarmStatus("s")->coefficient_dimension(), 6);
}

// The hot path names positions by alpha alone (SPEC 4.3): targets carry g, g_w and p_i as
// alpha with an empty blob_id, reports carry no position_blob_id and a short key, and a
// repeat of an acknowledged report (an agent restarted before it saved the answer) is
// recognised by its payload whatever its key or whether it names alpha's id.
TEST_F(CoefficientDynamicUtilityTest, HotPathNamesPositionsByAlphaAlone) {
  wxp::v1::SwarmSpec spec;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      "name: 's' min_experts: 2 mode: SYNC hyperparameters { seed: 5 pool_size: 2 "
      "max_iterations: 10 patience: 10 } utility { name: 'acc' weight: 1 } "
      "utility { name: 'speed' weight: 0 } space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT",
      &spec));
  ASSERT_TRUE(c_->CreateSwarm(admin_, spec).ok());
  Join(a_, LoraExpert(0.1f));
  Join(b_, LoraExpert(-0.2f));
  ASSERT_EQ(c_->GetSwarmStatus("s")->state(), wxp::v1::RUNNING);
  std::map<int, std::vector<float>> x0;
  for (const Caller* who : {&a_, &b_}) {
    auto assignment = c_->GetAssignment(*who, "s");
    ASSERT_TRUE(assignment.ok()) << assignment.status();
    for (const auto& p : assignment->particles()) {
      owner_.emplace(p.particle_id(), *who);
      x0[p.particle_id()] = Alpha(p.initial_alpha());
    }
  }
  ASSERT_EQ(x0.size(), 2u);
  for (const auto& [i, alpha] : x0) {
    auto r = Report(i, 0, alpha, 0.6 - 0.1 * i, 0, absl::StrCat(i, ":0"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->duplicate());
  }
  auto status = c_->GetSwarmStatus("s");
  ASSERT_TRUE(status.ok()) << status.status();
  for (const auto& [i, alpha] : x0) {
    auto t = Targets(i, 1);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_EQ(t->status(), wxp::v1::GetTargetsResponse::READY);
    for (const wxp::v1::PositionRef* ref :
         {&t->global_best(), &t->global_worst(), &t->personal_best()}) {
      EXPECT_EQ(ref->blob_id(), "") << i;
      EXPECT_EQ(ref->alpha_size(), 2) << i;
    }
    EXPECT_EQ(Alpha(t->global_best().alpha()), x0[0]);
    EXPECT_EQ(Alpha(t->global_worst().alpha()), x0[1]);
    EXPECT_EQ(Alpha(t->personal_best().alpha()), alpha);
    // The id an agent derives from alpha is the one the admin paths report.
    EXPECT_EQ(*AlphaBlobId(Alpha(t->global_best().alpha())), status->global_best().blob_id());
    EXPECT_EQ(*AlphaBlobId(Alpha(t->global_worst().alpha())), status->global_worst().blob_id());
  }

  std::vector<float> x1 = x0[1];
  x1[0] += 0.5f;
  auto first = Report(1, 1, x1, 0.7, 0, "1:1");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->duplicate());
  EXPECT_TRUE(first->new_global_best());
  EXPECT_FALSE(first->upload_requested());
  // The same report again, as a restarted agent sends it; as an agent built before alpha
  // alone named positions sends it (alpha's id and the long key); under any key.
  for (const auto& [key, id] : std::vector<std::pair<std::string, std::string>>{
           {"1:1", ""}, {absl::StrCat("1:1:", *AlphaBlobId(x1)), *AlphaBlobId(x1)}, {"x", ""}}) {
    auto again = Report(1, 1, x1, 0.7, 0, key, id);
    ASSERT_TRUE(again.ok()) << key << ": " << again.status();
    EXPECT_TRUE(again->duplicate()) << key;
    EXPECT_TRUE(again->new_personal_best()) << key;
    EXPECT_DOUBLE_EQ(again->utility(), 0.7) << key;
  }
  // Another payload under the same key is not a repeat.
  EXPECT_EQ(Report(1, 1, x1, 0.8, 0, "1:1").status().code(), absl::StatusCode::kAlreadyExists);
  std::vector<float> other = x1;
  other[1] += 0.5f;
  EXPECT_EQ(Report(1, 1, other, 0.7, 0, "1:1").status().code(), absl::StatusCode::kAlreadyExists);
  // An id that is not alpha's is still refused.
  EXPECT_EQ(Report(1, 1, x1, 0.7, 0, "1:1", *AlphaBlobId(other)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c_->GetSwarmStatus("s")->global_best().blob_id(), *AlphaBlobId(x1));
}

}  // namespace
}  // namespace wxp::server
