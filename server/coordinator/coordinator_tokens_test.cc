// TOKEN_MIXTURE (SPEC 4.5) in the coordinator: experts are whole models, so a join is
// checked for the expert's base model (uploaded, a safetensors file whose architecture
// description is well formed, of an accepted family) rather than for one schema; experts of
// any shapes make one pool of unit vectors; assignments carry the combination and every
// expert's config; the export of g is a manifest.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/adapter.h"
#include "common/model_description.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/testing/fake_clock.h"
#include "common/token_manifest.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/store/memory_store.h"

namespace wxp::server {
namespace {

// A LoRA of one module with rank `r` (shapes differ between experts on purpose).
Adapter LoraExpert(int64_t r, float fill) {
  Adapter a;
  a.schema = Schema({{"base_model.model.m.lora_A.weight", DType::kF32, {r, 6}},
                     {"base_model.model.m.lora_B.weight", DType::kF32, {5, r}}});
  a.values.assign(static_cast<size_t>(a.schema.total_params()), fill);
  return a;
}

// A base model file with `architecture` and `config` in its metadata.
std::string BaseModelBytes(const std::string& architecture, const std::string& config) {
  Adapter base;
  base.schema = Schema({{"w", DType::kF32, {2}}});
  base.values = {1, 2};
  base.metadata = {{kModelArchitectureKey, architecture}, {kModelConfigKey, config}};
  return *SerializeAdapter(base);
}

const char kMlp[] = "wxp-legal-lm-v1 context=8 embed=8";
const char kTransformer[] = "wxp-legal-transformer-v1 context=16 layers=1";

class CoordinatorTokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Coordinator::Create({&store_, &blobs_, &clock_, 64, [](const std::string&) {}});
    ASSERT_TRUE(c.ok()) << c.status();
    c_ = *std::move(c);
    wxp::v1::SwarmSpec spec;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        "name: 's' min_experts: 2 mode: SYNC hyperparameters { seed: 3 pool_size: 3 "
        "max_iterations: 10 patience: 10 } utility { name: 'acc' weight: 1 } "
        "space: TOKEN_MIXTURE combination: LOG_LINEAR "
        "expert_families: 'fam-mlp' expert_families: 'fam-tf'",
        &spec));
    ASSERT_TRUE(c_->CreateSwarm(admin_, spec).ok());
  }

  // Joins `expert` whose config names `family` and base model blob `base_id`.
  absl::StatusOr<wxp::v1::JoinResponse> Join(const Caller& who, const Adapter& expert,
                                             const std::string& family,
                                             const std::string& base_id) {
    const std::string id = *blobs_.Put(*SerializeAdapter(expert));
    wxp::v1::JoinRequest r;
    r.set_swarm("s");
    r.add_expert_blob_ids(id);
    r.add_expert_adapter_configs(absl::StrCat(R"({"r": 2, "base_model_name_or_path": ")", family,
                                              R"(", "wxp_base_model_blob_id": ")", base_id,
                                              R"("})"));
    r.set_capacity(4);
    return c_->Join(who, r);
  }

  store::MemoryStore store_;
  MemoryBlobs blobs_;
  FakeClock clock_;
  std::unique_ptr<Coordinator> c_;
  const Caller admin_{"ops", Role::kAdmin};
  const Caller a_{"firm-a", Role::kAgent};
  const Caller b_{"firm-b", Role::kAgent};
};

TEST_F(CoordinatorTokensTest, JoinChecksEachExpertsBaseModelLikeASchema) {
  const std::string good = *blobs_.Put(BaseModelBytes("mlp", kMlp));
  auto expect = [&](absl::StatusOr<wxp::v1::JoinResponse> r, absl::StatusCode code,
                    const std::string& why) {
    ASSERT_EQ(r.status().code(), code) << why << ": " << r.status();
    EXPECT_NE(r.status().message().find(why), std::string::npos) << r.status();
  };
  // Not uploaded.
  expect(Join(a_, LoraExpert(2, 0.1f), "fam-mlp", std::string(64, 'e')),
         absl::StatusCode::kNotFound, "is not stored");
  // Not safetensors.
  const std::string junk = *blobs_.Put("not a model");
  expect(Join(a_, LoraExpert(2, 0.1f), "fam-mlp", junk), absl::StatusCode::kInvalidArgument,
         "not a safetensors file");
  // Malformed descriptions.
  expect(Join(a_, LoraExpert(2, 0.1f), "fam-mlp", *blobs_.Put(BaseModelBytes("rnn", kMlp))),
         absl::StatusCode::kInvalidArgument, "unknown architecture 'rnn'");
  expect(Join(a_, LoraExpert(2, 0.1f), "fam-mlp", *blobs_.Put(BaseModelBytes("transformer", kMlp))),
         absl::StatusCode::kInvalidArgument, "not of architecture 'transformer'");
  expect(Join(a_, LoraExpert(2, 0.1f), "fam-mlp",
              *blobs_.Put(BaseModelBytes("mlp", "wxp-legal-lm-v1 context=x"))),
         absl::StatusCode::kInvalidArgument, "'context' is not a number");
  // Not an accepted family; no base model named at all.
  expect(Join(a_, LoraExpert(2, 0.1f), "fam-other", good), absl::StatusCode::kInvalidArgument,
         "'fam-other'");
  wxp::v1::JoinRequest bare;
  bare.set_swarm("s");
  bare.add_expert_blob_ids(*blobs_.Put(*SerializeAdapter(LoraExpert(2, 0.1f))));
  bare.set_capacity(1);
  expect(c_->Join(a_, bare), absl::StatusCode::kInvalidArgument, "base model");
  // Nothing joined meanwhile.
  EXPECT_EQ(c_->GetSwarmStatus("s")->experts_joined(), 0);
}

// proto/swarm_spec.proto, expert_families: a refused expert is named (its blob id, not only
// an index that a one-config join does not have) together with the families.
TEST_F(CoordinatorTokensTest, FamilyRefusalsNameTheExpert) {
  const std::string base = *blobs_.Put(BaseModelBytes("mlp", kMlp));
  const std::string good = *blobs_.Put(*SerializeAdapter(LoraExpert(2, 0.1f)));
  const std::string bad = *blobs_.Put(*SerializeAdapter(LoraExpert(3, 0.2f)));
  auto config = [&](const std::string& family) {
    return absl::StrCat(R"({"r": 2, "base_model_name_or_path": ")", family,
                        R"(", "wxp_base_model_blob_id": ")", base, R"("})");
  };
  wxp::v1::JoinRequest per_expert;
  per_expert.set_swarm("s");
  per_expert.add_expert_blob_ids(good);
  per_expert.add_expert_blob_ids(bad);
  per_expert.add_expert_adapter_configs(config("fam-mlp"));
  per_expert.add_expert_adapter_configs(config("fam-other"));
  per_expert.set_capacity(2);
  absl::StatusOr<wxp::v1::JoinResponse> r = c_->Join(a_, per_expert);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  for (const std::string& part : {bad, std::string("expert_adapter_configs[1]"),
                                  std::string("'fam-other'"), std::string("fam-mlp, fam-tf")}) {
    EXPECT_NE(r.status().message().find(part), std::string::npos) << part << ": " << r.status();
  }
  EXPECT_EQ(r.status().message().find(good), std::string::npos) << r.status();

  wxp::v1::JoinRequest one_config;  // an older client: one config for its only expert
  one_config.set_swarm("s");
  one_config.add_expert_blob_ids(bad);
  one_config.set_adapter_config_json(config("fam-other"));
  one_config.set_capacity(1);
  r = c_->Join(a_, one_config);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  for (const std::string& part : {bad, std::string("adapter_config_json"),
                                  std::string("'fam-other'"), std::string("fam-mlp, fam-tf")}) {
    EXPECT_NE(r.status().message().find(part), std::string::npos) << part << ": " << r.status();
  }
  one_config.set_adapter_config_json("");  // no config: no family either
  r = c_->Join(a_, one_config);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status();
  EXPECT_EQ(c_->GetSwarmStatus("s")->experts_joined(), 0);
}

TEST_F(CoordinatorTokensTest, ExpertsOfAnyShapeMakeAPoolAndExportAManifest) {
  const std::string mlp = *blobs_.Put(BaseModelBytes("mlp", kMlp));
  const std::string tf = *blobs_.Put(BaseModelBytes("transformer", kTransformer));
  ASSERT_TRUE(Join(a_, LoraExpert(2, 0.1f), "fam-mlp", mlp).ok());
  auto joined = Join(b_, LoraExpert(4, 0.2f), "fam-tf", tf);  // another rank: no schema
  ASSERT_TRUE(joined.ok()) << joined.status();
  auto status = c_->GetSwarmStatus("s");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state(), wxp::v1::RUNNING);
  EXPECT_EQ(status->space(), wxp::v1::TOKEN_MIXTURE);
  EXPECT_EQ(status->combination(), wxp::v1::LOG_LINEAR);
  EXPECT_EQ(status->coefficient_dimension(), 2);

  std::map<int, std::pair<Caller, std::vector<float>>> x0;
  for (const Caller* who : {&a_, &b_}) {
    auto assignment = c_->GetAssignment(*who, "s");
    ASSERT_TRUE(assignment.ok()) << assignment.status();
    EXPECT_EQ(assignment->space(), wxp::v1::TOKEN_MIXTURE);
    EXPECT_EQ(assignment->combination(), wxp::v1::LOG_LINEAR);
    ASSERT_EQ(assignment->expert_blob_ids_size(), 2);
    ASSERT_EQ(assignment->expert_adapter_configs_size(), 2);
    for (const std::string& config : assignment->expert_adapter_configs()) {
      EXPECT_NE(config.find(kBaseModelBlobKey), std::string::npos);
    }
    for (const auto& p : assignment->particles()) {
      x0[p.particle_id()] = {*who, {p.initial_alpha().begin(), p.initial_alpha().end()}};
    }
  }
  ASSERT_EQ(x0.size(), 3u);
  for (const auto& [i, owner_alpha] : x0) {
    wxp::v1::ReportRequest r;
    r.set_swarm("s");
    r.set_particle_id(i);
    r.set_iteration(0);
    r.set_idempotency_key(absl::StrCat(i, ":0"));
    r.mutable_position_alpha()->Assign(owner_alpha.second.begin(), owner_alpha.second.end());
    (*r.mutable_scores())["acc"] = 0.1 * (i + 1);
    ASSERT_TRUE(c_->Report(owner_alpha.first, r).ok());
  }
  auto best = c_->Best("s");
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(best->export_file, kTokenManifestFile);
  absl::StatusOr<TokenManifest> m = ParseTokenManifest(*blobs_.ReadAll(best->blob_id));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->combination, TokenCombination::kLogLinear);
  EXPECT_EQ(m->alpha, x0[2].second);
  EXPECT_DOUBLE_EQ(m->utility, 0.3);
  ASSERT_EQ(m->experts.size(), 2u);
  std::map<std::string, std::string> arch_of_base;
  for (const TokenManifestExpert& e : m->experts) {
    arch_of_base[e.base_model_blob_id] = e.architecture.architecture;
  }
  EXPECT_EQ(arch_of_base[mlp], "mlp");
  EXPECT_EQ(arch_of_base[tf], "transformer");
}

// JoinRequest.expert_adapter_configs: a re-join with experts already contributed keeps the
// configs they first joined with, and the Join RPC is idempotent "so a restarted agent can
// always re-join": a token swarm's re-join without configs is answered, not refused for
// naming no base model, before and after the pool exists.
TEST_F(CoordinatorTokensTest, AReJoinWithoutConfigsKeepsTheFirstOnes) {
  const std::string mlp = *blobs_.Put(BaseModelBytes("mlp", kMlp));
  const Adapter expert = LoraExpert(2, 0.1f);
  ASSERT_TRUE(Join(a_, expert, "fam-mlp", mlp).ok());
  wxp::v1::JoinRequest again;
  again.set_swarm("s");
  again.add_expert_blob_ids(*blobs_.Put(*SerializeAdapter(expert)));
  again.set_capacity(4);
  absl::StatusOr<wxp::v1::JoinResponse> r = c_->Join(a_, again);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->experts_joined(), 1);
  ASSERT_TRUE(Join(b_, LoraExpert(3, 0.2f), "fam-mlp", mlp).ok());
  again.add_expert_adapter_configs(R"({"r": 2, "base_model_name_or_path": "fam-other"})");
  r = c_->Join(a_, again);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state(), wxp::v1::RUNNING);
  auto assignment = c_->GetAssignment(a_, "s");
  ASSERT_TRUE(assignment.ok()) << assignment.status();
  for (const std::string& config : assignment->expert_adapter_configs()) {
    EXPECT_NE(config.find(mlp), std::string::npos) << config;  // the configs joined with
  }
  // Another agent's expert is not this agent's to re-join: it is checked as new.
  wxp::v1::JoinRequest theirs;
  theirs.set_swarm("s");
  theirs.add_expert_blob_ids(*blobs_.Put(*SerializeAdapter(expert)));
  theirs.set_capacity(1);
  EXPECT_EQ(c_->Join(b_, theirs).status().code(), absl::StatusCode::kInvalidArgument);
}

// A report that names its position by blob id only is refused in the swarm's own terms:
// alpha is the position in TOKEN_MIXTURE as in EXPERT_COEFFICIENTS (proto/wxp.proto,
// ReportRequest.position_alpha), and the refusal must not call the space anything else.
TEST_F(CoordinatorTokensTest, AReportWithoutAlphaNamesTheTokenSpace) {
  const std::string mlp = *blobs_.Put(BaseModelBytes("mlp", kMlp));
  ASSERT_TRUE(Join(a_, LoraExpert(2, 0.1f), "fam-mlp", mlp).ok());
  ASSERT_TRUE(Join(b_, LoraExpert(3, 0.2f), "fam-mlp", mlp).ok());
  auto assignment = c_->GetAssignment(a_, "s");
  ASSERT_TRUE(assignment.ok()) << assignment.status();
  ASSERT_GT(assignment->particles_size(), 0);
  const auto& p = assignment->particles(0);
  wxp::v1::ReportRequest r;
  r.set_swarm("s");
  r.set_particle_id(p.particle_id());
  r.set_iteration(0);
  r.set_position_blob_id(p.initial_position_blob_id());
  (*r.mutable_scores())["acc"] = 0.5;
  absl::StatusOr<wxp::v1::ReportResponse> refused = c_->Report(a_, r);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  EXPECT_NE(refused.status().message().find("searches TOKEN_MIXTURE"), std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find("position_alpha"), std::string::npos)
      << refused.status();
  EXPECT_EQ(refused.status().message().find("EXPERT_COEFFICIENTS"), std::string::npos)
      << refused.status();
}

}  // namespace
}  // namespace wxp::server
