#include "server/spec/swarm_spec.h"

#include <map>

#include "common/safetensors.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace wxp::server {
namespace {

wxp::v1::SwarmSpec Parse(const std::string& text) {
  wxp::v1::SwarmSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &spec)) << text;
  return spec;
}

constexpr char kMinimal[] = R"(name: "s1" utility { name: "acc" weight: 1 })";

TEST(SwarmSpecTest, MinimalSpecGetsEveryDocumentedDefault) {
  auto r = ResolveSwarmSpec(Parse(kMinimal), 99);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& h = r->spec.hyperparameters();
  EXPECT_EQ(h.inertia(), 0.2);
  EXPECT_EQ(h.cognitive(), 0.3);
  EXPECT_EQ(h.social(), 0.4);
  EXPECT_EQ(h.repel(), 0.05);
  EXPECT_TRUE(h.repel_enabled());
  EXPECT_EQ(h.step_length(), 0.5);
  EXPECT_EQ(h.step_decay(), 0.95);
  EXPECT_EQ(h.min_step_length(), 0.1);
  EXPECT_EQ(h.patience(), 5);
  EXPECT_EQ(h.restart_patience(), 3);
  EXPECT_EQ(h.restart_cooldown(), 3);
  EXPECT_EQ(h.max_iterations(), 50);
  EXPECT_TRUE(h.weight_randomness());
  EXPECT_EQ(h.seed(), 99u);
  EXPECT_EQ(h.initial_velocity(), wxp::v1::RANDOM_PEER);
  EXPECT_EQ(r->spec.mode(), wxp::v1::SYNC);
  EXPECT_EQ(r->spec.quorum(), 0.5);
  EXPECT_EQ(r->spec.round_deadline_seconds(), 600);
  EXPECT_EQ(r->spec.upload_policy(), wxp::v1::ON_DEMAND);
  EXPECT_EQ(r->spec.min_experts(), 2);
  EXPECT_EQ(r->spec.utility(0).direction(), wxp::v1::UtilityComponent::MAXIMIZE);
  EXPECT_EQ(r->params.seed, 99u);
  EXPECT_EQ(r->params.ResolvedPoolSize(3), 6);
  EXPECT_FALSE(r->schema.has_value());
}

TEST(SwarmSpecTest, ExplicitValuesAndSeedAreKept) {
  auto r = ResolveSwarmSpec(Parse(std::string(kMinimal) +
                                  R"( hyperparameters { seed: 0 repel_enabled: false
                                       step_length: 0.05 initial_velocity: ZERO })"),
                            99);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->params.seed, 0u);  // an explicit 0 is a seed like any other
  EXPECT_FALSE(r->params.repel_enabled);
  EXPECT_EQ(r->params.initial_velocity, InitialVelocityMode::kZero);
  // min_step_length defaults to min(0.1, step_length) so a small step stays valid.
  EXPECT_EQ(r->params.min_step_length, 0.05);
}

TEST(SwarmSpecTest, EveryInvalidFieldIsNamed) {
  const struct {
    const char* extra;
    const char* needle;
  } cases[] = {
      {R"(hyperparameters { inertia: -1 })", "inertia"},
      {R"(hyperparameters { step_decay: 1.5 })", "step_decay"},
      {R"(hyperparameters { patience: 0 })", "patience"},
      {R"(hyperparameters { pool_size: -2 })", "pool_size"},
      {R"(hyperparameters { pool_size: 1 } min_experts: 3)", "pool_size"},
      {R"(quorum: 0)", "quorum"},
      {R"(quorum: 1.5)", "quorum"},
      {R"(quorum_count: 0)", "quorum_count"},
      {R"(round_deadline_seconds: -5)", "round_deadline_seconds"},
      {R"(audit_sample_rate: 2)", "audit_sample_rate"},
      {R"(min_experts: 0)", "min_experts"},
      {R"(min_experts: 1)", "min_experts"},
      {R"(transport_dtype: DTYPE_F64)", "transport_dtype"},
      {R"(template_blob_id: "abc")", "template_blob_id"},
      {R"(utility { name: "acc" weight: 2 })", "declared twice"},
      {R"(schema { tensors { name: "a" dtype: DTYPE_F32 shape: -1 } })", "schema.tensors[0]"},
      {R"(schema { tensors { name: "a" shape: 1 } })", "schema.tensors[0]"},
      {R"(schema { tensors { name: "a" dtype: DTYPE_F32 } tensors { name: "a" dtype: DTYPE_F32 } })",
       "repeats"},
      {R"(schema { fingerprint: "ab" })", "no tensors"},
      {R"(schema { tensors { name: "a\tb" dtype: DTYPE_F32 shape: 2 } })", "tab or newline"},
      {R"(schema { tensors { name: "a" dtype: DTYPE_F32 shape: 4611686018427387904 }
                   tensors { name: "b" dtype: DTYPE_F32 shape: 4611686018427387904 } })",
       "2^63"},
      {R"(schema { tensors { name: "a" dtype: DTYPE_F32 shape: 2 } fingerprint: "00" })",
       "fingerprint"},
  };
  for (const auto& c : cases) {
    auto r = ResolveSwarmSpec(Parse(std::string(kMinimal) + " " + c.extra), 1);
    ASSERT_FALSE(r.ok()) << c.extra;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.extra;
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos)
        << c.extra << " -> " << r.status().message();
  }
  EXPECT_FALSE(ResolveSwarmSpec(Parse(R"(name: "s1")"), 1).ok());  // no utility
  EXPECT_FALSE(ResolveSwarmSpec(Parse(R"(name: "" utility { name: "a" weight: 1 })"), 1).ok());
}

TEST(SwarmSpecTest, AuditPolicyIsOffByDefaultAndGetsItsDefaultsWhenOn) {
  auto off = ResolveSwarmSpec(Parse(kMinimal), 1);
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->spec.has_audit());
  // Off is off: what an off policy says is dropped, not judged.
  auto off_with_junk = ResolveSwarmSpec(
      Parse(std::string(kMinimal) + R"( audit { enabled: false sample_rate: 7 })"), 1);
  ASSERT_TRUE(off_with_junk.ok()) << off_with_junk.status();
  EXPECT_FALSE(off_with_junk->spec.has_audit());
  auto on =
      ResolveSwarmSpec(Parse(std::string(kMinimal) +
                             R"( audit { enabled: true tolerance { key: "acc" value: 0.01 } })"),
                       1);
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->spec.audit().enabled());
  EXPECT_EQ(on->spec.audit().quarantine_after(), 3);
  EXPECT_EQ(on->spec.audit().sample_rate(), 0);
  EXPECT_EQ(on->spec.audit().tolerance().at("acc"), 0.01);
}

TEST(SwarmSpecTest, AuditPolicyRefusalsNameTheField) {
  const struct {
    const char* audit;
    const char* needle;
  } cases[] = {
      {R"(enabled: true)", "has no entry for utility component 'acc'"},
      {R"(enabled: true tolerance { key: "acc" value: -1 })", "must be finite and >= 0"},
      {R"(enabled: true tolerance { key: "acc" value: inf })", "must be finite and >= 0"},
      {R"(enabled: true tolerance { key: "acc" value: 0 } tolerance { key: "lossy" value: 1 })",
       "'lossy', which is not a utility component"},
      {R"(enabled: true tolerance { key: "acc" value: 0 } sample_rate: 1.5)", "audit.sample_rate"},
      {R"(enabled: true tolerance { key: "acc" value: 0 } quarantine_after: 0)",
       "audit.quarantine_after"},
  };
  for (const auto& c : cases) {
    auto r = ResolveSwarmSpec(Parse(std::string(kMinimal) + " audit { " + c.audit + " }"), 1);
    ASSERT_FALSE(r.ok()) << c.audit;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.audit;
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos)
        << c.audit << " -> " << r.status().message();
  }
}

TEST(SwarmSpecTest, AnUnknownTransportDtypeNamesTheField) {
  wxp::v1::SwarmSpec spec = Parse(kMinimal);
  spec.set_transport_dtype(static_cast<wxp::v1::DType>(7));  // a newer client's value
  auto r = ResolveSwarmSpec(spec, 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("transport_dtype"), std::string::npos) << r.status();
}

TEST(SwarmSpecTest, SwarmNames) {
  EXPECT_TRUE(ValidateSwarmName("legal-q4_v2.1").ok());
  EXPECT_TRUE(ValidateSwarmName("7up").ok());
  EXPECT_FALSE(ValidateSwarmName("").ok());
  EXPECT_FALSE(ValidateSwarmName("-lead").ok());
  EXPECT_FALSE(ValidateSwarmName("has space").ok());
  EXPECT_FALSE(ValidateSwarmName("../etc").ok());
  EXPECT_FALSE(ValidateSwarmName(std::string(65, 'a')).ok());
}

TEST(SwarmSpecTest, SchemaGetsItsFingerprint) {
  auto r = ResolveSwarmSpec(
      Parse(std::string(kMinimal) +
            R"( schema { tensors { name: "l.lora_A" dtype: DTYPE_BF16 shape: 2 shape: 3 } })"),
      1);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->schema.has_value());
  EXPECT_EQ(r->schema->total_params(), 6);
  EXPECT_EQ(r->spec.schema().fingerprint(), r->schema->Fingerprint());
  auto back = SchemaFromProto(SchemaToProto(*r->schema));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, *r->schema);
}

TEST(SwarmSpecTest, UtilityRoundTripsThroughProto) {
  auto u = UtilityFunction::Create({{"acc", true, 2, 0.0, 1.0}, {"ppl", false, 0.5}}, 3);
  ASSERT_TRUE(u.ok());
  auto back = UtilityFromProto(UtilityToProto(*u));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->version(), 3);
  EXPECT_DOUBLE_EQ(*back->Combine({{"acc", 0.5}, {"ppl", 2}}), 2 * 0.5 - 0.5 * 2);
  EXPECT_FALSE(back->Combine({{"acc", 1.5}, {"ppl", 2}}).ok());  // range survived
}

// ---- template adapters (SwarmSpec.template_blob_id) ----

constexpr char kTemplateId[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

// A two-tensor F32 adapter's safetensors bytes (zeros: the weights are not used).
std::string TemplateBytes(int64_t rows = 2) {
  static const std::string zeros(64 * 4, '\0');
  return *SerializeSafetensors(
      {{"w.lora_A.weight", DType::kF32, {rows, 4}, absl::string_view(zeros.data(), rows * 16)},
       {"w.lora_B.weight", DType::kF32, {4, 2}, absl::string_view(zeros.data(), 32)}});
}

ResolvedSpec WithTemplate(const std::string& extra = "") {
  auto r = ResolveSwarmSpec(
      Parse(std::string(kMinimal) + " template_blob_id: \"" + kTemplateId + "\" " + extra), 1);
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

TEST(SwarmSpecTemplateTest, TheTemplatesSchemaBecomesTheSwarmsSchema) {
  ResolvedSpec r = WithTemplate();
  std::map<std::string, std::string> blobs = {{kTemplateId, TemplateBytes()}};
  ASSERT_TRUE(
      ResolveTemplate(
          [&](const std::string& id) -> absl::StatusOr<std::string> { return blobs.at(id); }, r)
          .ok());
  ASSERT_TRUE(r.schema.has_value());
  ASSERT_EQ(r.schema->size(), 2u);
  EXPECT_EQ(r.schema->tensor(0).name, "w.lora_A.weight");
  EXPECT_EQ(r.spec.schema().tensors_size(), 2);
  EXPECT_EQ(r.spec.schema().fingerprint(), r.schema->Fingerprint());
  EXPECT_EQ(r.spec.template_blob_id(), kTemplateId);
}

TEST(SwarmSpecTemplateTest, NoTemplateChangesNothing) {
  auto r = ResolveSwarmSpec(Parse(kMinimal), 1);
  ASSERT_TRUE(r.ok());
  bool read = false;
  ASSERT_TRUE(ResolveTemplate(
                  [&](const std::string&) -> absl::StatusOr<std::string> {
                    read = true;
                    return absl::NotFoundError("no");
                  },
                  *r)
                  .ok());
  EXPECT_FALSE(read);
  EXPECT_FALSE(r->schema.has_value());
}

TEST(SwarmSpecTemplateTest, AMissingTemplateIsNotFoundNamingIt) {
  ResolvedSpec r = WithTemplate();
  absl::Status s = ResolveTemplate(
      [](const std::string& id) -> absl::StatusOr<std::string> { return absl::NotFoundError(id); },
      r);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find(kTemplateId), std::string::npos) << s;
  EXPECT_NE(s.message().find("template_blob_id"), std::string::npos) << s;
}

TEST(SwarmSpecTemplateTest, ATemplateThatIsNotSafetensorsIsRefused) {
  ResolvedSpec r = WithTemplate();
  absl::Status s = ResolveTemplate(
      [](const std::string&) -> absl::StatusOr<std::string> { return std::string("junk"); }, r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("template_blob_id"), std::string::npos) << s;
}

TEST(SwarmSpecTemplateTest, TemplateAndExplicitSchemaMustAgree) {
  const std::string same = R"(schema { tensors { name: "w.lora_A.weight" dtype: DTYPE_F32
      shape: [2, 4] } tensors { name: "w.lora_B.weight" dtype: DTYPE_F32 shape: [4, 2] } })";
  ResolvedSpec agree = WithTemplate(same);
  auto read = [](const std::string&) -> absl::StatusOr<std::string> { return TemplateBytes(); };
  EXPECT_TRUE(ResolveTemplate(read, agree).ok());

  ResolvedSpec differ = WithTemplate(same);
  auto read3 = [](const std::string&) -> absl::StatusOr<std::string> { return TemplateBytes(3); };
  absl::Status s = ResolveTemplate(read3, differ);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("template_blob_id"), std::string::npos) << s;
  EXPECT_NE(s.message().find("[3, 4]"), std::string::npos) << s;
}

TEST(SwarmSpecLimitsTest, FreeFormTextFieldsHaveTheirDocumentedLimits) {
  wxp::v1::SwarmSpec spec = Parse(kMinimal);
  spec.set_base_model(std::string(256, 'b'));
  spec.set_description(std::string(1024, 'd'));
  EXPECT_TRUE(CheckSwarmSpecLimits(spec).ok());
  spec.set_base_model(std::string(257, 'b'));
  absl::Status s = CheckSwarmSpecLimits(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("base_model"), std::string::npos) << s;
  spec.set_base_model("gpt2");
  spec.set_description(std::string(1025, 'd'));
  s = CheckSwarmSpecLimits(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("description"), std::string::npos) << s;
}

TEST(SwarmSpecBaseModelTest, AnExpertForAnotherBaseModelIsRefused) {
  wxp::v1::SwarmSpec spec = Parse(std::string(kMinimal) + R"( base_model: "gpt2")");
  const std::string gpt2 = R"({"peft_type": "LORA", "base_model_name_or_path": "gpt2"})";
  const std::string llama = R"({"peft_type": "LORA", "base_model_name_or_path": "llama-7b"})";
  const std::string unnamed = R"({"peft_type": "LORA"})";
  EXPECT_TRUE(CheckExpertBaseModel(spec, gpt2).ok());
  EXPECT_TRUE(CheckExpertBaseModel(spec, unnamed).ok());
  EXPECT_TRUE(CheckExpertBaseModel(spec, "").ok());
  absl::Status s = CheckExpertBaseModel(spec, llama);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'llama-7b'"), std::string::npos) << s;
  EXPECT_NE(s.message().find("'gpt2'"), std::string::npos) << s;
  spec.clear_base_model();  // empty: no check
  EXPECT_TRUE(CheckExpertBaseModel(spec, llama).ok());
}

TEST(SwarmSpecTest, SpaceDefaultsToWeightsAndCoefficientSettingsAreKept) {
  auto r = ResolveSwarmSpec(Parse(kMinimal), 99);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spec.space(), wxp::v1::WEIGHTS);
  EXPECT_EQ(r->spec.expert_sharing(), wxp::v1::ALLOWED);
  EXPECT_EQ(r->spec.decoder(), wxp::v1::COEFFICIENT_DECODER_UNSPECIFIED);
  auto c = ResolveSwarmSpec(
      Parse(std::string(kMinimal) +
            " space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT_SVD svd_rank: 4 per_module: true"),
      99);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->spec.space(), wxp::v1::EXPERT_COEFFICIENTS);
  EXPECT_EQ(c->spec.decoder(), wxp::v1::LORA_PRODUCT_SVD);
  EXPECT_EQ(c->spec.svd_rank(), 4);
  EXPECT_TRUE(c->spec.per_module());
  // A stored resolved spec resolves to itself (the restart path).
  auto again = ResolveSwarmSpec(c->spec, 1);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->spec.SerializeAsString(), c->spec.SerializeAsString());
}

TEST(SwarmSpecTest, SpaceRefusalsNameTheField) {
  const std::map<std::string, std::string> refused = {
      {"decoder: LINEAR_AB", "decoder"},
      {"svd_rank: 2", "svd_rank"},
      {"per_module: true", "per_module"},
      {"space: EXPERT_COEFFICIENTS", "decoder"},
      {"space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT_SVD", "svd_rank"},
      {"space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT svd_rank: 2", "svd_rank"},
      {"space: EXPERT_COEFFICIENTS decoder: LINEAR_AB svd_rank: -1", "svd_rank"},
      {"space: EXPERT_COEFFICIENTS decoder: LINEAR_AB expert_sharing: FORBIDDEN", "expert_sharing"},
      {"space: EXPERT_COEFFICIENTS decoder: LINEAR_AB transport_dtype: DTYPE_F16",
       "transport_dtype"},
      {"space: EXPERT_COEFFICIENTS decoder: LINEAR_AB template_blob_id: '" + std::string(64, 'a') +
           "'",
       "template_blob_id"},
      {"space: EXPERT_COEFFICIENTS decoder: LINEAR_AB schema { tensors { name: 'a' dtype: "
       "DTYPE_F32 shape: 2 } }",
       "schema"},
  };
  for (const auto& [extra, field] : refused) {
    auto r = ResolveSwarmSpec(Parse(std::string(kMinimal) + " " + extra), 1);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << extra;
    EXPECT_NE(r.status().message().find(field), std::string::npos) << extra << ": " << r.status();
  }
  // FORBIDDEN is fine with WEIGHTS.
  EXPECT_TRUE(
      ResolveSwarmSpec(Parse(std::string(kMinimal) + " expert_sharing: FORBIDDEN"), 1).ok());
}

TEST(SwarmSpecTest, LocalTrainingIsKeptAndJudgedLikeTheRunner) {
  auto off = ResolveSwarmSpec(Parse(kMinimal), 1);
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->spec.has_local_training());
  auto on = ResolveSwarmSpec(
      Parse(std::string(kMinimal) +
            " local_training { every_k: 2 steps: 10 learning_rate: 0.005 batch: 64 }"),
      1);
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_EQ(on->spec.local_training().every_k(), 2);
  EXPECT_EQ(on->spec.local_training().steps(), 10);
  EXPECT_EQ(on->spec.local_training().learning_rate(), 0.005);
  EXPECT_EQ(on->spec.local_training().batch(), 64);
  auto again = ResolveSwarmSpec(on->spec, 7);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->spec.SerializeAsString(), on->spec.SerializeAsString());
  // every_k 0 is off, whatever the rest says.
  EXPECT_TRUE(
      ResolveSwarmSpec(Parse(std::string(kMinimal) + " local_training { steps: -3 }"), 1).ok());
  const std::map<std::string, std::string> refused = {
      {"local_training { every_k: -1 }", "every_k"},
      {"local_training { every_k: 1 learning_rate: 0.1 batch: 4 }", "steps"},
      {"local_training { every_k: 1 steps: 2 batch: 4 }", "learning rate"},
      {"local_training { every_k: 1 steps: 2 learning_rate: inf batch: 4 }", "learning rate"},
      {"local_training { every_k: 1 steps: 2 learning_rate: 0.1 }", "batch"},
      {"space: EXPERT_COEFFICIENTS decoder: LINEAR_AB local_training { every_k: 1 steps: 2 "
       "learning_rate: 0.1 batch: 4 }",
       "WEIGHTS"},
  };
  for (const auto& [extra, what] : refused) {
    auto r = ResolveSwarmSpec(Parse(std::string(kMinimal) + " " + extra), 1);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << extra;
    EXPECT_NE(r.status().message().find("local_training"), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find(what), std::string::npos) << extra << ": " << r.status();
  }
  // Off is fine in a coefficient space.
  EXPECT_TRUE(ResolveSwarmSpec(
                  Parse(std::string(kMinimal) + " space: EXPERT_COEFFICIENTS decoder: LINEAR_AB "
                                                "local_training { every_k: 0 }"),
                  1)
                  .ok());
}

TEST(SwarmSpecTest, TokenMixtureTakesACombinationAndExpertFamilies) {
  auto r = ResolveSwarmSpec(
      Parse(std::string(kMinimal) + " space: TOKEN_MIXTURE combination: LOG_LINEAR "
                                    "expert_families: 'fam-a' expert_families: 'fam-b'"),
      9);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spec.space(), wxp::v1::TOKEN_MIXTURE);
  EXPECT_EQ(r->spec.combination(), wxp::v1::LOG_LINEAR);
  auto again = ResolveSwarmSpec(r->spec, 1);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->spec.SerializeAsString(), r->spec.SerializeAsString());
  // Families instead of one base model: an expert's config must name one of them.
  const std::string a = R"({"r": 2, "base_model_name_or_path": "fam-a"})";
  const std::string c = R"({"r": 2, "base_model_name_or_path": "fam-c"})";
  EXPECT_TRUE(CheckExpertBaseModel(r->spec, a).ok());
  absl::Status s = CheckExpertBaseModel(r->spec, c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'fam-c'"), std::string::npos) << s;
  EXPECT_NE(s.message().find("fam-a, fam-b"), std::string::npos) << s;
  // Every expert must name its base model.
  EXPECT_EQ(CheckExpertBaseModel(r->spec, "").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckExpertBaseModel(r->spec, R"({"r": 2})").code(),
            absl::StatusCode::kInvalidArgument);
  r->spec.clear_expert_families();  // any family
  EXPECT_TRUE(CheckExpertBaseModel(r->spec, c).ok());
}

// The default combination is written into the resolved spec, so every reader (agents,
// exports, status) sees the one the swarm runs with.
TEST(SwarmSpecTest, TokenMixtureWithoutACombinationIsAMixture) {
  auto r = ResolveSwarmSpec(Parse(std::string(kMinimal) + " space: TOKEN_MIXTURE"), 9);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spec.combination(), wxp::v1::MIXTURE);
}

TEST(SwarmSpecTest, TokenMixtureRefusalsNameTheField) {
  const std::string tm = "space: TOKEN_MIXTURE combination: MIXTURE ";
  const std::map<std::string, std::string> refused = {
      {"space: TOKEN_MIXTURE combination: 7", "combination"},
      {"combination: MIXTURE", "combination"},
      {"space: EXPERT_COEFFICIENTS decoder: LINEAR_AB combination: MIXTURE", "combination"},
      {"expert_families: 'x'", "expert_families"},
      {tm + "decoder: LINEAR_AB", "decoder"},
      {tm + "per_module: true", "per_module"},
      {tm + "base_model: 'gpt2'", "base_model"},
      {tm + "expert_families: 'x' expert_families: 'x'", "expert_families"},
      {tm + "expert_families: ''", "expert_families"},
      {tm + "expert_sharing: FORBIDDEN", "expert_sharing"},
      {tm + "transport_dtype: DTYPE_BF16", "transport_dtype"},
      {tm + "template_blob_id: '" + std::string(64, 'a') + "'", "template_blob_id"},
      {tm + "local_training { every_k: 1 steps: 2 learning_rate: 0.1 batch: 4 }", "local_training"},
  };
  for (const auto& [extra, field] : refused) {
    auto r = ResolveSwarmSpec(Parse(std::string(kMinimal) + " " + extra), 1);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << extra;
    EXPECT_NE(r.status().message().find(field), std::string::npos) << extra << ": " << r.status();
  }
}

}  // namespace
}  // namespace wxp::server
